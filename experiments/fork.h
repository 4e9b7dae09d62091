#pragma once
// The fork experiment (method.md, "The fork experiment"; interfaces.md, run directories):
// a base checkpoint, arms (a schedule plus overrides each) × seeds, one probe plan shared
// by all arms, one `quantfork train` run per (arm, seed) in OUT/<experiment>/<arm>/seed<k>/.
//
// Runs are separate processes (`quantfork train --config run_config.yaml`), one after
// another or experiment.parallel at a time with the cores split between them; under
// torchrun / srun the job's ranks form run groups (experiment.ranks_per_run, by default
// one group of the whole job), each run data parallel over one group
// (experiments/run_groups.h). Launching the same experiment again skips finished runs
// and resumes unfinished ones from their newest checkpoint.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "experiments/probe_plan.h"
#include "experiments/run_config.h"

namespace qf::experiments {

// The run's keys (run_config.h) plus experiment.*.
void declare_experiment_config(ConfigSchema& schema);

struct Arm {
  std::string name;
  schedules::SchedulePtr schedule;
  YAML::Node schedule_block;
  YAML::Node overrides;  // {dotted.key: value} applied to this arm's runs
};

struct RunSpec {
  std::string arm;
  int64_t seed = 0;
  std::filesystem::path dir;
  std::filesystem::path config_path;  // the run's full config, written by plan_runs
  bool finished = false;              // a checkpoint with every update is there already
  // A second quantfork command run in the run's slot once training has succeeded (the
  // sweep's audit of the run's checkpoints), its output appended to the same log; empty:
  // none. `followup_done`: it has completed before, so a finished run is skipped.
  std::vector<std::string> followup;
  bool followup_done = true;
  bool done() const { return finished && (followup.empty() || followup_done); }
};

// A planned run of `group` (an experiment's arm, a sweep's point) with `seed`, in
// out/<group>/seed<seed>/.
RunSpec planned_run(const std::filesystem::path& out, const std::string& group, int64_t seed);

// The first layer of every child run's config: the parent command's resolved config
// without the sections only the parent reads (experiment.*, sweep.*, ...).
class ChildConfigs {
 public:
  ChildConfigs(const Config& parent, const std::vector<std::string>& parent_only,
               std::string source);
  // A loader over the run's schema that holds that layer; the caller adds the run's own.
  ConfigLoader loader(const ConfigSchema& run_schema) const;

 private:
  std::string text_, source_;
};

struct ExperimentPlan {
  std::string kind = "experiment";  // what the logs call it: experiment, sweep
  std::string name;
  std::filesystem::path out;  // OUT/<experiment>
  std::filesystem::path base;
  int64_t base_step = 0;
  std::string base_reason;      // how the base was chosen (for logs and the report)
  double continuation_lr = 0;   // experiment.continuation's rate at the base step
  int64_t data_start_item = 0;  // every run's data.start_item
  std::vector<Arm> arms;
  std::vector<int64_t> seeds;
  std::vector<PlannedProbe> probe_plan;
  std::vector<RunSpec> runs;
  int parallel = 1;
  int threads_per_run = 0;
  // Sets parallel (at least 1) and threads_per_run (0 or less: the cores split between
  // the runs in flight, at least 1 each) from the config's values.
  void set_slots(int64_t runs_at_once, int64_t threads);
  int ranks_per_run = 0;            // experiment.ranks_per_run (0: the whole job)
  std::optional<size_t> run_index;  // only this run (--run-index, a Slurm array task)
  double timeout_s = 600;           // dist.timeout_s: reaching the job's store
};

// The arms listed at `key`, from `arms` (that list with the base bound in: $base_step and
// $continuation_lr replaced).
std::vector<Arm> read_arms(const Config& config, const std::string& key, const YAML::Node& arms);

// Resolves the base (a checkpoint, or audit:pre_divergence), computes the shared probe
// plan, and writes every run's config under OUT/<experiment>/<arm>/seed<k>/.
ExperimentPlan plan_experiment(const Config& config);

// The newest checkpoint of a run has all its updates, or the divergence monitor stopped
// the run there for good (trainer_state.json says so).
bool run_finished(const std::filesystem::path& run_dir, int64_t steps);

}  // namespace qf::experiments
