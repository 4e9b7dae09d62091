#include "schedules/probe_plan.h"

#include <map>

namespace qf::schedules {

std::vector<ProbePoint> probe_plan(const std::vector<NamedSchedule>& arms, int64_t begin,
                                   int64_t end, int64_t every) {
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
  reasons[end - 1].push_back("last");
  std::vector<ProbePoint> plan;
  plan.reserve(reasons.size());
  for (auto& [step, why] : reasons) plan.push_back({step, std::move(why)});
  return plan;
}

}  // namespace qf::schedules
