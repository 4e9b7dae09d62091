#pragma once
// The runner of an experiment's (or a sweep's) planned runs: each run a `quantfork train`
// process (then its follow-up, the sweep's audit, in the same slot), plan.parallel at a
// time on this machine, the runs of this rank's run group only under torchrun / srun
// (run_groups.h), every rank waiting for the whole job at the end.
#include <filesystem>

#include "experiments/fork.h"

namespace qf::experiments {

// Runs the unfinished runs with `program` (the quantfork binary): those of this rank's
// run group (all of them in a job of one process), or plan.run_index alone. Throws Error
// naming the runs that failed and their log files.
void run_experiment(const ExperimentPlan& plan, const std::filesystem::path& program);

}  // namespace qf::experiments
