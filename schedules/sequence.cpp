// sequence: schedules switching at given steps. By default each part counts its own
// steps from 0 at its switch step, as PyTorch's SequentialLR does; `inner_steps: global`
// hands the parts the global step instead (to cut one schedule into another mid-way).
#include <algorithm>
#include <functional>

#include "schedules/registry.h"

namespace qf::schedules {
namespace {

class SequenceSchedule final : public LrSchedule {
 public:
  static constexpr const char* kSummary =
      "parts switching at the milestones (PyTorch SequentialLR); the phases are the running "
      "part's, and every switch is a boundary";
  static std::vector<ParamSpec> params() {
    return {
        schedule_list("parts", "the schedules, in order; part 0 runs from step 0"),
        integer_list("milestones",
                     "the steps where part 1, 2, … take over: one fewer than the "
                     "parts, strictly increasing")
            .at_least(1),
        choice("inner_steps", {"from_switch", "global"},
               "the step a part sees: from_switch counts from 0 at its switch step, global is "
               "the step itself")
            .by_default("from_switch"),
    };
  }

  explicit SequenceSchedule(const Params& p)
      : parts_(p.schedules("parts")), global_(p.choice("inner_steps") == "global") {
    const auto& milestones = p.integers("milestones");
    if (milestones.size() + 1 != parts_.size()) {
      p.fail("milestones", "needs " + std::to_string(parts_.size() - 1) + " steps for " +
                               std::to_string(parts_.size()) + " parts, got " +
                               std::to_string(milestones.size()));
    }
    if (std::adjacent_find(milestones.begin(), milestones.end(), std::greater_equal<>()) !=
        milestones.end()) {
      p.fail("milestones", "must be strictly increasing");
    }
    starts_.push_back(0);
    starts_.insert(starts_.end(), milestones.begin(), milestones.end());
  }

  // the part i with starts[i] ≤ step < starts[i + 1], at step − starts[i] (global: at step)
  double lr(int64_t step) const override {
    const size_t i = part_of(step);
    return parts_[i]->lr(step - offset(i));
  }

  Phase phase(int64_t step) const override {
    const size_t i = part_of(step);
    return parts_[i]->phase(step - offset(i));
  }

  std::vector<int64_t> boundaries(int64_t begin, int64_t end) const override {
    return collect(&LrSchedule::boundaries, begin, end, true);
  }

  std::vector<int64_t> settled_steps(int64_t begin, int64_t end) const override {
    return collect(&LrSchedule::settled_steps, begin, end, false);
  }

  std::vector<int64_t> perturbation_steps(int64_t begin, int64_t end) const override {
    return collect(&LrSchedule::perturbation_steps, begin, end, false);
  }

 private:
  size_t part_of(int64_t step) const {
    return static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), step) -
                               starts_.begin()) -
           1;
  }
  int64_t offset(size_t i) const { return global_ ? 0 : starts_[i]; }

  // Each part's steps inside its own stretch of [begin, end), plus (for boundaries) the
  // switch steps themselves.
  std::vector<int64_t> collect(StepListFn which, int64_t begin, int64_t end,
                               bool with_switches) const {
    std::vector<int64_t> out;
    for (size_t i = 0; i < parts_.size(); ++i) {
      const int64_t lo = std::max(begin, starts_[i]);
      const int64_t hi = i + 1 < parts_.size() ? std::min(end, starts_[i + 1]) : end;
      if (lo >= hi) continue;
      if (with_switches) out.push_back(starts_[i]);
      auto part = shifted_steps(*parts_[i], which, offset(i), lo, hi);
      out.insert(out.end(), part.begin(), part.end());
    }
    return clip_steps(out, begin, end);
  }

  std::vector<SchedulePtr> parts_;
  std::vector<int64_t> starts_;
  bool global_;
};

QF_REGISTER_SCHEDULE("sequence", SequenceSchedule);

}  // namespace
}  // namespace qf::schedules
