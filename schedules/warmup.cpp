// warmup: a linear warmup in front of any schedule, exactly PyTorch's
// SequentialLR([LinearLR(start_factor, 1.0, steps), then], milestones=[steps]): the
// wrapped schedule counts its own steps from 0 at the milestone.
#include "schedules/registry.h"

namespace qf::schedules {
namespace {

class WarmupSchedule final : public LrSchedule {
 public:
  static constexpr const char* kSummary =
      "linear warmup in front of `then` (PyTorch SequentialLR(LinearLR, then)); phase warmup, "
      "then the phases of `then`";
  static std::vector<ParamSpec> params() {
    return {
        integer("steps", "length of the warmup; `then` starts at this step, from its own step 0")
            .at_least(1),
        number("start_factor", "fraction of then(0) at step 0 (PyTorch LinearLR's start_factor)")
            .at_least(0)
            .at_most(1),
        schedule_block("then", "the schedule after the warmup"),
    };
  }

  explicit WarmupSchedule(const Params& p)
      : steps_(p.integer("steps")),
        start_factor_(p.number("start_factor")),
        then_(p.schedule("then")) {}

  // k < steps: then(0)·(start_factor + (1 − start_factor)·k/steps); else then(k − steps)
  double lr(int64_t step) const override {
    if (step >= steps_) return then_->lr(step - steps_);
    return then_->lr(0) *
           (start_factor_ + (1.0 - start_factor_) * static_cast<double>(step) / steps_);
  }

  Phase phase(int64_t step) const override {
    return step < steps_ ? Phase{"warmup", 0} : then_->phase(step - steps_);
  }

  std::vector<int64_t> boundaries(int64_t begin, int64_t end) const override {
    std::vector<int64_t> out = shifted_steps(*then_, &LrSchedule::boundaries, steps_, begin, end);
    out.push_back(0);
    return clip_steps(out, begin, end);
  }

  std::vector<int64_t> settled_steps(int64_t begin, int64_t end) const override {
    return shifted_steps(*then_, &LrSchedule::settled_steps, steps_, begin, end);
  }

  std::vector<int64_t> perturbation_steps(int64_t begin, int64_t end) const override {
    return shifted_steps(*then_, &LrSchedule::perturbation_steps, steps_, begin, end);
  }

 private:
  int64_t steps_;
  double start_factor_;
  SchedulePtr then_;
};

QF_REGISTER_SCHEDULE("warmup", WarmupSchedule);

}  // namespace
}  // namespace qf::schedules
