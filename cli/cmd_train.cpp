// quantfork train: one training run from a config (train/trainer.h), with the probe
// attached at the steps of its plan (experiments/probe_hook.h).
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/command.h"
#include "experiments/fork.h"
#include "experiments/probe_hook.h"
#include "experiments/run_config.h"
#include "experiments/run_status.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace qf::cli {

int run_train(const std::vector<std::string>& args) {
  ArgParser parser(
      "train", "--config FILE [--set key=value ...]",
      "Trains one run: from a Hugging Face checkpoint (model.init, e.g. a Pythia stepN "
      "revision, with the schedule continuing its step) or from scratch (model.preset / "
      "model.config), or resumes run.dir's newest checkpoint. Writes run.dir/config.yaml, "
      "run.h5 (/train, /probe, /probe_tensors), log.txt, checkpoints/step<N>/ and TensorBoard "
      "event files in tb/ (log.tensorboard); error.txt when it fails. SIGINT or "
      "SIGTERM: the update in flight finishes, a checkpoint is written, exit 0. Under "
      "torchrun, srun or mpirun every rank runs this same command (data parallel over c10d).");
  add_config_options(parser);
  if (!parser.parse(args)) return 0;
  ConfigSchema schema;
  experiments::declare_run_config(schema);
  Config cfg;
  if (!load_config(parser, schema, cfg)) return 0;
  train::install_stop_signal_handlers();
  train::Trainer trainer(cfg, train::train_options(cfg));
  // The trainer holds run.dir's lock from here on, so what is recorded is this run's.
  const std::filesystem::path dir = trainer.options().dir;
  if (trainer.is_root()) experiments::clear_run_failure(dir);
  train::TrainSummary s;
  try {
    if (auto hook = experiments::make_probe_hook(cfg, trainer)) trainer.add_hooks(hook);
    s = trainer.run();
  } catch (const std::exception& e) {
    // For `quantfork status`: why the run ended.
    if (trainer.is_root()) experiments::record_run_failure(dir, e.what());
    throw;
  }
  if (trainer.is_root() && !s.stop_reason.empty()) {
    std::cout << "ended after " << s.run_steps << " of " << trainer.options().steps
              << " updates: " << s.stop_reason << "; final loss " << s.final_loss << "; checkpoint "
              << s.last_checkpoint << "\n";
  } else if (trainer.is_root() && s.first_step == trainer.options().steps) {
    std::cout << "nothing to do: " << trainer.options().dir.string() << " already holds all "
              << s.run_steps << " updates; final loss " << s.final_loss << "; checkpoint "
              << s.last_checkpoint << "\n";
  } else if (trainer.is_root()) {
    std::cout << (s.stopped_by_signal ? "stopped by a signal after " : "trained ") << s.run_steps
              << " of " << trainer.options().steps << " updates; final loss " << s.final_loss
              << "; skipped " << s.skipped_steps << "; checkpoint " << s.last_checkpoint << "\n";
  }
  return 0;
}

}  // namespace qf::cli
