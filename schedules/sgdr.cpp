// sgdr: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts (Loshchilov & Hutter's SGDR)
// stepped once per update: cosine cycles from max_lr towards min_lr, cycle k lasting
// t0·t_mult^k steps, the rate jumping back to max_lr at every restart.
#include <algorithm>
#include <limits>

#include "schedules/anneal.h"
#include "schedules/registry.h"

namespace qf::schedules {
namespace {

class SgdrSchedule final : public LrSchedule {
 public:
  static constexpr const char* kSummary =
      "CosineAnnealingWarmRestarts: cosine cycles of t0·t_mult^k steps restarting at max_lr; "
      "phase cycle k, each restart a boundary";
  static std::vector<ParamSpec> params() {
    return {
        number("max_lr", "rate at the start of every cycle (PyTorch: the optimizer's lr)").above(0),
        number("min_lr", "rate the cosine approaches at the end of a cycle (PyTorch: eta_min)")
            .at_least(0)
            .by_default("0"),
        integer("t0", "length of the first cycle in steps (PyTorch: T_0)").at_least(1),
        integer("t_mult",
                "each cycle is t_mult times longer than the one before (PyTorch: "
                "T_mult)")
            .at_least(1)
            .by_default("1"),
    };
  }

  explicit SgdrSchedule(const Params& p)
      : max_lr_(p.number("max_lr")),
        min_lr_(p.number("min_lr")),
        t0_(p.integer("t0")),
        t_mult_(p.integer("t_mult")) {
    if (min_lr_ > max_lr_) p.fail("min_lr", "must be <= max_lr");
  }

  // min + (max − min)·(1 + cos(π·t_cur/T_k))/2, t_cur = steps since the last restart
  double lr(int64_t step) const override {
    const Cycle c = cycle_of(step);
    return cosine_anneal(max_lr_, min_lr_, static_cast<double>(step - c.start) / c.length);
  }

  Phase phase(int64_t step) const override { return {"cycle", cycle_of(step).index}; }

  std::vector<int64_t> boundaries(int64_t begin, int64_t end) const override {
    std::vector<int64_t> out;
    for (Cycle c = cycle_of(std::max<int64_t>(begin, 0)); c.start < end; c = next(c)) {
      if (c.start >= begin) out.push_back(c.start);
      if (c.length > std::numeric_limits<int64_t>::max() - c.start) break;
    }
    return out;
  }

  // The last step of every cycle that a restart ends: the bottom of its anneal.
  std::vector<int64_t> perturbation_steps(int64_t begin, int64_t end) const override {
    std::vector<int64_t> out;
    if (end <= begin || end == std::numeric_limits<int64_t>::max()) return out;
    for (int64_t s : boundaries(begin + 1, end + 1)) out.push_back(s - 1);
    return out;
  }

 private:
  struct Cycle {
    int64_t index, start, length;
  };

  Cycle next(const Cycle& c) const {
    // Past int64 a longer cycle could not end anyway: keep the length and stop growing.
    const bool can_grow = c.length <= std::numeric_limits<int64_t>::max() / t_mult_;
    return {c.index + 1, c.start + c.length, can_grow ? c.length * t_mult_ : c.length};
  }

  // The cycle holding `step`: PyTorch's T_cur/T_i bookkeeping without the state. Cycles
  // grow geometrically, so the walk is O(log step) unless t_mult is 1.
  Cycle cycle_of(int64_t step) const {
    if (t_mult_ == 1) return {step / t0_, step / t0_ * t0_, t0_};
    Cycle c{0, 0, t0_};
    while (step - c.start >= c.length) c = next(c);
    return c;
  }

  double max_lr_, min_lr_;
  int64_t t0_, t_mult_;
};

QF_REGISTER_SCHEDULE("sgdr", SgdrSchedule);

}  // namespace
}  // namespace qf::schedules
