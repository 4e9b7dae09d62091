#include "cli/command.h"

namespace qf::cli {

int run_schedule(const std::vector<std::string>& args);
int run_prepare(const std::vector<std::string>& args);
int run_tokenize(const std::vector<std::string>& args);
int run_analyze(const std::vector<std::string>& args);
int run_report(const std::vector<std::string>& args);
int run_phases(const std::vector<std::string>& args);
#if QF_WITH_TORCH
int run_logits(const std::vector<std::string>& args);
int run_quantize(const std::vector<std::string>& args);
int run_probe(const std::vector<std::string>& args);
int run_audit(const std::vector<std::string>& args);
int run_average(const std::vector<std::string>& args);
int run_train(const std::vector<std::string>& args);
int run_experiment(const std::vector<std::string>& args);
int run_sweep(const std::vector<std::string>& args);
int run_demo(const std::vector<std::string>& args);
int run_status(const std::vector<std::string>& args);
#endif

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"prepare", "text / JSONL / JSONL.zst -> .bin/.idx with a tokenizer", run_prepare},
      {"tokenize", "encode (or --decode) with a tokenizer.json", run_tokenize},
      {"schedule", "print a schedule's learning rate and phase per step (and plot it)",
       run_schedule},
      {"analyze", "statistics over run files -> JSON and Markdown", run_analyze},
      {"report", "plots and a readable report of an audit or experiment", run_report},
      {"phases", "fit the phases of a trajectory table (audit file or CSV) -> text, JSON, HDF5",
       run_phases},
#if QF_WITH_TORCH
      {"logits", "run a model on token ids; write logits and loss", run_logits},
      {"quantize", "fake-quantize tensors or a whole checkpoint", run_quantize},
      {"probe", "FP32 / INT4 / INT8 perplexity, gaps and weight statistics of one checkpoint",
       run_probe},
      {"audit", "probe a trajectory of checkpoints, detect phases -> HDF5", run_audit},
      {"average", "the uniform average (LAWA) of checkpoints -> an HF checkpoint", run_average},
      {"train", "train or continue one run from a config", run_train},
      {"experiment", "run the fork experiment (arms x seeds) from a config", run_experiment},
      {"sweep", "train a grid of configs from scratch, audit each trajectory, tabulate",
       run_sweep},
      {"demo", "the whole study in miniature on this machine, no downloads", run_demo},
      {"status", "where the runs of a run, experiment or sweep directory stand", run_status},
#endif
  };
  return table;
}

}  // namespace qf::cli
