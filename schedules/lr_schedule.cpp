#include "schedules/lr_schedule.h"

#include <algorithm>

namespace qf::schedules {

std::vector<int64_t> LrSchedule::boundaries(int64_t begin, int64_t end) const {
  std::vector<int64_t> out;
  begin = std::max<int64_t>(begin, 0);
  if (begin >= end) return out;
  Phase previous = begin > 0 ? phase(begin - 1) : Phase{};
  for (int64_t s = begin; s < end; ++s) {
    Phase current = phase(s);
    if (s == 0 || current != previous) out.push_back(s);
    previous = std::move(current);
  }
  return out;
}

std::vector<int64_t> LrSchedule::perturbation_steps(int64_t, int64_t) const { return {}; }

std::vector<int64_t> LrSchedule::settled_steps(int64_t, int64_t) const {
  return {};
}

std::vector<int64_t> clip_steps(std::vector<int64_t> starts, int64_t begin, int64_t end) {
  starts.erase(std::remove_if(starts.begin(), starts.end(),
                              [&](int64_t s) { return s < begin || s >= end || s < 0; }),
               starts.end());
  std::sort(starts.begin(), starts.end());
  starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
  return starts;
}

std::vector<int64_t> shifted_steps(const LrSchedule& inner, StepListFn which, int64_t offset,
                                   int64_t begin, int64_t end) {
  // The inner schedule only exists from its own step 0 on, i.e. outer step `offset`.
  const int64_t inner_begin = std::max<int64_t>(begin - offset, 0);
  const int64_t inner_end = end - offset;
  std::vector<int64_t> out;
  if (inner_begin >= inner_end) return out;
  for (int64_t s : (inner.*which)(inner_begin, inner_end)) out.push_back(s + offset);
  return out;
}

}  // namespace qf::schedules
