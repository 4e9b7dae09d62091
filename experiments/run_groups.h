#pragma once
// Run groups: one torchrun / srun job of W ranks runs several experiment runs at once.
// experiment.ranks_per_run R splits the job into W / R groups of R consecutive ranks
// (group g = ranks g·R … g·R + R − 1); group g takes the plan's runs i with
// i mod (W / R) = g, one after another, each a data-parallel `quantfork train` over the
// group's ranks. The job's rank 0 hosts a c10d store at MASTER_ADDR:MASTER_PORT (or
// torchrun's agent does) where every run meets under its own key prefix, so groups never
// see each other's ranks; a run that fails fails only its group's attempt at it, the
// group goes on with its next run, and at the end every rank waits for the whole job and
// exits non-zero when any run of any group failed (rank 0's message lists them). Every
// rank beats a sign of life into the store; one silent for dist.timeout_s (10 s at least)
// ends that wait with an error naming it, instead of a job that never ends.
//
// The Slurm array form runs exactly one plan run per job: `--run-index N`
// (experiment.run_index), or experiment.array: true to take N from SLURM_ARRAY_TASK_ID.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "train/dist_env.h"

namespace qf::experiments {

struct ExperimentPlan;

// experiment.ranks_per_run, experiment.run_index, experiment.array.
void declare_run_group_config(ConfigSchema& schema);

// Reads those keys into plan (ranks_per_run, run_index, timeout_s), once plan.runs is
// known. `array_task_id` is SLURM_ARRAY_TASK_ID (nullopt when unset). ConfigError naming
// the key or variable when the index is not a plan run (the message gives the range).
void configure_run_groups(const Config& config, ExperimentPlan& plan,
                          const std::optional<std::string>& array_task_id);

struct RunGroups {
  int world_size = 1;     // the job's ranks
  int ranks_per_run = 1;  // R
  int count = 1;          // W / R
  int index = 0;          // this rank's group
  int rank_in_group = 0;  // the rank's RANK inside its runs
  bool takes(size_t run) const { return static_cast<int>(run % count) == index; }
};

// This rank's group. `ranks_per_run` 0: the whole job is one group. ConfigError naming
// experiment.ranks_per_run and the world size when R does not divide it.
RunGroups run_groups(const train::DistEnv& env, int ranks_per_run);

// The variables a run's `quantfork train` gets on this rank ("NAME=value", added to the
// inherited environment): RANK (rank_in_group), WORLD_SIZE (R), LOCAL_RANK (unchanged:
// it picks the GPU, train/dist_env.h), MASTER_ADDR, MASTER_PORT (the job's store) and
// QF_STORE_PREFIX. Empty for a job of one process.
std::vector<std::string> run_environment(const train::DistEnv& env, const RunGroups& groups,
                                         const std::string& store_prefix);

}  // namespace qf::experiments
