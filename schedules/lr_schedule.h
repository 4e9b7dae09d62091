#pragma once
// The learning-rate schedule interface (method.md, Schedules). A schedule is a pure
// function of the step: no hidden state, so a resumed run gets exactly the rates of an
// uninterrupted one, and any number of threads may share one schedule.
//
// Steps are 0-based update indices: lr(s) is the rate of optimizer update s, and
// phase(s) the phase that update belongs to. Steps are >= 0.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qf::schedules {

// Which part of a schedule a step is in: a name ("warmup", "cycle", "bump", "cool", …)
// and the occurrence of that name (cycle k of SGDR, cycle k of OLI; 0 for phases that
// happen once).
struct Phase {
  std::string name;
  int64_t index = 0;

  // One word for tables and plots: the name followed by the index, e.g. "cool3".
  std::string label() const { return name + std::to_string(index); }
  bool operator==(const Phase& o) const { return index == o.index && name == o.name; }
  bool operator!=(const Phase& o) const { return !(*this == o); }
};

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;

  virtual double lr(int64_t step) const = 0;
  virtual Phase phase(int64_t step) const = 0;

  // The steps in [begin, end) where a phase starts, ascending; step 0 starts the first
  // phase. The trainer probes at each; an experiment takes the union over its arms.
  // The default scans phase() step by step; built-ins compute theirs directly.
  virtual std::vector<int64_t> boundaries(int64_t begin, int64_t end) const;

  // The steps in [begin, end) at which the schedule wants the model measured because it
  // has settled there (OLI: the last step of each cool phase), ascending. Default: none.
  virtual std::vector<int64_t> settled_steps(int64_t begin, int64_t end) const;
  // The steps in [begin, end) that show a perturbation at its extreme, so a probe there
  // measures the model mid-perturbation rather than after it settled: OLI's bump peaks,
  // SGDR's last step before each restart (the bottom of its anneal). Ascending; default
  // none.
  virtual std::vector<int64_t> perturbation_steps(int64_t begin, int64_t end) const;

  // A schedule that repeats a pattern of `period` steps from `start` on (OLI's cycles):
  // what a control arm matched to it averages over. Default: none.
  struct Cycle {
    int64_t start = 0, period = 0;
  };
  virtual std::optional<Cycle> cycle() const { return std::nullopt; }
};

using SchedulePtr = std::shared_ptr<const LrSchedule>;

// `starts` (any order, duplicates allowed) kept inside [begin, end), sorted and unique:
// the boundaries of schedules whose phase starts are a short fixed list.
std::vector<int64_t> clip_steps(std::vector<int64_t> starts, int64_t begin, int64_t end);

// Maps the boundaries or settled steps of an inner schedule that sees step s - offset
// at outer step s, restricted to outer steps [begin, end): what wrappers (warmup,
// sequence) report for the schedule they run. `which` is &LrSchedule::boundaries or
// &LrSchedule::settled_steps (or &LrSchedule::perturbation_steps).
using StepListFn = std::vector<int64_t> (LrSchedule::*)(int64_t, int64_t) const;
std::vector<int64_t> shifted_steps(const LrSchedule& inner, StepListFn which, int64_t offset,
                                   int64_t begin, int64_t end);

}  // namespace qf::schedules
