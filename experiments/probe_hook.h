#pragma once
// The probe attached to a training run (method.md): the trainer knows nothing of it; this
// hook measures the model after the updates of a probe plan and writes /probe and
// /probe_tensors rows into the run's run.h5, and the /probe row's scalars into its
// TensorBoard log (core/run_events.h).
//
// The plan of a single `quantfork train` run comes from its own schedule (phase
// boundaries and settled points when probe.at_phase_boundaries, every probe.every
// updates, probe.at_steps, the last update); a fork experiment passes the plan it shares
// between all its arms through probe.at_steps with the others off.
#include <memory>
#include <vector>

#include "core/config.h"
#include "train/trainer.h"

namespace qf::experiments {

// probe.enabled, probe.every, probe.at_phase_boundaries, probe.at_steps (besides the
// probe's own keys, quant_probe/probe_config.h, which the caller declares too).
void declare_probe_hook_config(ConfigSchema& schema);

// The update indices the run's probe measures, ascending (empty when probe.enabled is
// false).
std::vector<int64_t> probe_steps(const Config& config, const schedules::LrSchedule& schedule,
                                 int64_t steps);

// The hook, or nullptr when probe.enabled is false. Loads the evaluation set once.
std::shared_ptr<train::TrainerHooks> make_probe_hook(const Config& config,
                                                     const train::Trainer& trainer);

}  // namespace qf::experiments
