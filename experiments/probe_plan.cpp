#include "experiments/probe_plan.h"

#include <map>
#include <stdexcept>

namespace qf::experiments {

std::vector<PlannedProbe> probe_plan(const std::vector<NamedSchedule>& arms, int64_t begin,
                                     int64_t end, int64_t every,
                                     const std::vector<int64_t>& at_steps) {
  std::map<int64_t, std::vector<std::string>> reasons;
  if (end <= begin) return {};
  for (const auto& arm : arms) {
    for (int64_t s : arm.schedule->boundaries(begin, end)) {
      reasons[s].push_back(arm.name + ":" + arm.schedule->phase(s).label());
    }
    for (int64_t s : arm.schedule->settled_steps(begin, end)) {
      reasons[s].push_back(arm.name + ":settled" + std::to_string(arm.schedule->phase(s).index));
    }
    for (int64_t s : arm.schedule->perturbation_steps(begin, end)) {
      reasons[s].push_back(arm.name + ":peak" + std::to_string(arm.schedule->phase(s).index));
    }
  }
  if (every > 0) {
    // Multiples of `every` counted from step 0 of the run, so plans of different windows
    // of the same run line up.
    for (int64_t s = ((begin + every - 1) / every) * every; s < end; s += every) {
      reasons[s].push_back("every");
    }
  }
  for (const int64_t s : at_steps) {
    if (s < begin || s >= end) {
      throw std::out_of_range("probe step " + std::to_string(s) + " outside [" +
                              std::to_string(begin) + ", " + std::to_string(end) + ")");
    }
    reasons[s].push_back("at_steps");
  }
  reasons[end - 1].push_back("last");
  std::vector<PlannedProbe> plan;
  plan.reserve(reasons.size());
  for (auto& [step, why] : reasons) plan.push_back({step, std::move(why)});
  return plan;
}

}  // namespace qf::experiments
