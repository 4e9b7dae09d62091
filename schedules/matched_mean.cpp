// matched_mean: a control arm with another schedule's mean learning rate. It runs
// `schedule` (the cosine continuation) scaled, cycle by cycle, so that its mean rate over
// every cycle of `match` (OLI) equals match's mean rate there, without match's
// oscillation: OLI's cool phases sit at cool_factor·E, so "OLI's gap is lower than the
// continuation's" could come from a lower mean rate alone; this arm tells them apart
// (method.md, "The fork experiment"). The factor is computed from the match block
// itself, never typed in. Before match's first cycle the factor is 1.
//   lr(s) = schedule(s)·r_k,  r_k = Σ_{t ∈ cycle k} match(t) / Σ_{t ∈ cycle k} schedule(t)
#include "schedules/registry.h"

namespace qf::schedules {
namespace {

class MatchedMeanSchedule final : public LrSchedule {
 public:
  static constexpr const char* kSummary =
      "a control arm: `schedule` scaled in every cycle of `match` (e.g. OLI) to match's mean "
      "rate over that cycle; phases: cycle k";
  static std::vector<ParamSpec> params() {
    return {
        schedule_block("schedule", "the schedule to scale (the cosine continuation)"),
        schedule_block("match",
                       "the schedule whose mean rate per cycle to match; it must repeat in "
                       "cycles (oli)"),
    };
  }

  explicit MatchedMeanSchedule(const Params& p)
      : base_(p.schedule("schedule")), match_(p.schedule("match")) {
    const auto c = match_->cycle();
    if (!c) p.fail("match", "is not a schedule that repeats in cycles (use oli)");
    cycle_ = *c;
  }

  double lr(int64_t step) const override { return base_->lr(step) * factor(step); }

  Phase phase(int64_t step) const override {
    if (step < cycle_.start) return {"before", 0};
    return {"cycle", (step - cycle_.start) / cycle_.period};
  }

  std::vector<int64_t> boundaries(int64_t begin, int64_t end) const override {
    std::vector<int64_t> out{0};
    const int64_t first = begin <= cycle_.start ? cycle_.start
                                                : cycle_.start + (begin - cycle_.start) /
                                                                     cycle_.period * cycle_.period;
    for (int64_t s = first; s < end; s += cycle_.period) out.push_back(s);
    return clip_steps(out, begin, end);
  }

  std::optional<Cycle> cycle() const override { return cycle_; }

 private:
  double factor(int64_t step) const {
    if (step < cycle_.start) return 1.0;
    const int64_t first = cycle_.start + (step - cycle_.start) / cycle_.period * cycle_.period;
    double matched = 0, base = 0;
    for (int64_t t = first; t < first + cycle_.period; ++t) {
      matched += match_->lr(t);
      base += base_->lr(t);
    }
    return base > 0 ? matched / base : 1.0;
  }

  SchedulePtr base_, match_;
  Cycle cycle_;
};

QF_REGISTER_SCHEDULE("matched_mean", MatchedMeanSchedule);

}  // namespace
}  // namespace qf::schedules
