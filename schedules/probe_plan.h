#pragma once
// The probe plan of a fork experiment (method.md): one plan shared by every arm — the
// union of every arm's phase boundaries, settled points and perturbation extremes (OLI's
// bump peaks, SGDR's last step before each restart), every `every` steps, and the last
// step — so each probe of one arm has a partner at the same step in every other. A
// single run's plan is the same with one arm.
#include <cstdint>
#include <string>
#include <vector>

#include "schedules/lr_schedule.h"

namespace qf::schedules {

struct NamedSchedule {
  std::string name;
  SchedulePtr schedule;
};

struct ProbePoint {
  int64_t step = 0;
  // Why this step is probed, e.g. {"sgdr:cycle1", "oli:settled0", "oli:peak2", "every",
  // "last"}.
  std::vector<std::string> reasons;
};

// Steps in [begin, end), ascending and unique. `every` <= 0 disables the periodic probes.
std::vector<ProbePoint> probe_plan(const std::vector<NamedSchedule>& arms, int64_t begin,
                                   int64_t end, int64_t every);

}  // namespace qf::schedules
