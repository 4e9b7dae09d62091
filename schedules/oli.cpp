// oli: Oscillatory Lock-In (method.md). The paper names its parts but gives no formula;
// this is ours. Cycles of `period` steps start at `start_step` (the fork); each cycle k
// begins with a bump of B = round(bump_fraction·period) steps, then cools at
// cool_factor·E for the rest of the cycle. The bump is a raised cosine that leaves the
// cool level and returns to it, so the rate is continuous from the first bump on:
//   factor(t) = c + (1 + a_k − c)·(1 − cos(2πt/B))/2,  t = 0 … B − 1,  a_k = amplitude·lock_decay^k
// It peaks at E·(1 + a_k) at t = B/2 (a step when B is even). The last step of each cool
// phase is the settled point where OLI is measured.
#include <cmath>

#include "schedules/anneal.h"
#include "schedules/registry.h"

namespace qf::schedules {
namespace {

class OliSchedule final : public LrSchedule {
 public:
  static constexpr const char* kSummary =
      "Oscillatory Lock-In: envelope E(step) times decaying raised-cosine bumps and cool "
      "stretches; phases bump k, cool k (settled point: last step of each cool), 'envelope' "
      "before start_step";
  static std::vector<ParamSpec> params() {
    return {
        schedule_block("envelope",
                       "E(step), the rate the bumps and cool phases scale; gets the "
                       "same step as oli")
            .by_default("{name: pythia_cosine}"),
        integer("start_step", "step where cycle 0 starts (the fork); before it the rate is E")
            .at_least(0)
            .by_default("0"),
        integer("period", "steps per cycle (bump + cool)").at_least(2).by_default("1000"),
        number("bump_fraction",
               "fraction of each cycle spent in the bump; B = "
               "round(bump_fraction·period) must be in [1, period − 1]")
            .above(0)
            .below(1)
            .by_default("0.2"),
        number("amplitude", "a_0: the first bump peaks at E·(1 + a_0)")
            .at_least(0)
            .by_default("0.5"),
        number("cool_factor", "c: the cool phase runs at E·c")
            .above(0)
            .at_most(1)
            .by_default("0.5"),
        number("lock_decay", "a_k = amplitude·lock_decay^k")
            .at_least(0)
            .at_most(1)
            .by_default("0.8"),
    };
  }

  explicit OliSchedule(const Params& p)
      : envelope_(p.schedule("envelope")),
        start_(p.integer("start_step")),
        period_(p.integer("period")),
        bump_(std::llround(p.number("bump_fraction") * static_cast<double>(period_))),
        amplitude_(p.number("amplitude")),
        cool_(p.number("cool_factor")),
        lock_decay_(p.number("lock_decay")) {
    if (bump_ < 1 || bump_ > period_ - 1) {
      p.fail("bump_fraction", "gives a bump of " + std::to_string(bump_) +
                                  " steps in a period of " + std::to_string(period_) +
                                  "; it must be 1 to period − 1");
    }
  }

  // E(step)·factor(t) in a bump, E(step)·c in a cool phase, E(step) before start_step
  double lr(int64_t step) const override {
    const double e = envelope_->lr(step);
    if (step < start_) return e;
    const int64_t k = (step - start_) / period_, t = (step - start_) % period_;
    if (t >= bump_) return e * cool_;
    const double a = amplitude_ * std::pow(lock_decay_, static_cast<double>(k));
    return e * (cool_ + (1.0 + a - cool_) *
                            (1.0 - std::cos(2.0 * kPi * static_cast<double>(t) / bump_)) / 2.0);
  }

  Phase phase(int64_t step) const override {
    if (step < start_) return {"envelope", 0};
    const int64_t k = (step - start_) / period_;
    return {(step - start_) % period_ < bump_ ? "bump" : "cool", k};
  }

  std::vector<int64_t> boundaries(int64_t begin, int64_t end) const override {
    std::vector<int64_t> out{0};
    for (int64_t s = first_cycle_start(begin); s < end; s += period_) {
      out.push_back(s);
      out.push_back(s + bump_);
    }
    return clip_steps(out, begin, end);
  }

  std::vector<int64_t> settled_steps(int64_t begin, int64_t end) const override {
    std::vector<int64_t> out;
    for (int64_t s = first_cycle_start(begin); s < end; s += period_)
      out.push_back(s + period_ - 1);
    return clip_steps(out, begin, end);
  }

  // Bump peaks: t = B/2 of every cycle, where the rate is E·(1 + a_k) (B even).
  std::vector<int64_t> perturbation_steps(int64_t begin, int64_t end) const override {
    std::vector<int64_t> out;
    for (int64_t s = first_cycle_start(begin); s < end; s += period_) out.push_back(s + bump_ / 2);
    return clip_steps(out, begin, end);
  }

  std::optional<Cycle> cycle() const override { return Cycle{start_, period_}; }

 private:
  // The start of the cycle holding `step` (or of cycle 0 when step is before it).
  int64_t first_cycle_start(int64_t step) const {
    return step <= start_ ? start_ : start_ + (step - start_) / period_ * period_;
  }

  SchedulePtr envelope_;
  int64_t start_, period_, bump_;
  double amplitude_, cool_, lock_decay_;
};

QF_REGISTER_SCHEDULE("oli", OliSchedule);

}  // namespace
}  // namespace qf::schedules
