#pragma once
// The probe plan (docs/method.md), the one place that decides which updates are probed:
// the union of every arm's phase boundaries, settled points and perturbation extremes
// (OLI's bump peaks, SGDR's last step before each restart), every `every` steps, steps
// asked for by name, and the last step. A fork experiment's plan is shared by every arm,
// so each probe of one arm has a partner at the same step in every other; a single
// training run's plan (probe_hook.cpp) is the same with its schedule as the one arm.
#include <cstdint>
#include <string>
#include <vector>

#include "schedules/lr_schedule.h"

namespace qf::experiments {

using schedules::SchedulePtr;

struct NamedSchedule {
  std::string name;
  SchedulePtr schedule;
};

struct PlannedProbe {
  int64_t step = 0;
  // Why this step is probed, e.g. {"sgdr:cycle1", "oli:settled0", "oli:peak2", "every",
  // "last"}.
  std::vector<std::string> reasons;
};

// Steps in [begin, end), ascending and unique. `every` <= 0 disables the periodic probes;
// `at_steps` (reason "at_steps") must lie in [begin, end) (std::out_of_range otherwise:
// callers check them against their config first).
std::vector<PlannedProbe> probe_plan(const std::vector<NamedSchedule>& arms, int64_t begin,
                                     int64_t end, int64_t every,
                                     const std::vector<int64_t>& at_steps = {});

}  // namespace qf::experiments
