#include "experiments/run_groups.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "core/errors.h"
#include "experiments/fork.h"

namespace fs = std::filesystem;

namespace qf::experiments {

void declare_run_group_config(ConfigSchema& s) {
  s.optional("experiment.ranks_per_run", FieldType::Int, "0",
             "Ranks per run under torchrun / srun: a job of W ranks becomes W / ranks_per_run "
             "run groups of consecutive ranks, group g taking the plan's runs i with i mod "
             "(W / ranks_per_run) = g, each run data parallel over its group; 0: one group of "
             "the whole job (every rank takes part in every run).")
      .at_least(0)
      .optional("experiment.run_index", FieldType::Int, "-1",
                "Run only this run of the plan (0 = the first arm's first seed, arms outer, "
                "seeds inner; --plan-only lists them), as a Slurm array task does (--run-index); "
                "-1: every run.")
      .optional("experiment.array", FieldType::Bool, "false",
                "Take experiment.run_index from SLURM_ARRAY_TASK_ID (sbatch --array), unless "
                "--run-index is given.");
}

namespace {

int64_t parse_index(const std::string& text, const std::string& what) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    throw ConfigError(what + "='" + text + "' is not a run index");
  }
  return value;
}

}  // namespace

void configure_run_groups(const Config& cfg, ExperimentPlan& plan,
                          const std::optional<std::string>& array_task_id) {
  const int64_t ranks = cfg.get_int("experiment.ranks_per_run");
  plan.ranks_per_run = static_cast<int>(ranks);
  plan.timeout_s = cfg.get_float("dist.timeout_s");
  int64_t index = cfg.get_int("experiment.run_index");
  std::string source = "config " + cfg.where("experiment.run_index");
  if (index == -1 && cfg.get_bool("experiment.array")) {
    if (!array_task_id) {
      throw ConfigError("config " + cfg.where("experiment.array") +
                        ": true, but environment variable SLURM_ARRAY_TASK_ID is not set (submit "
                        "with sbatch --array, or give --run-index N)");
    }
    source = "environment variable SLURM_ARRAY_TASK_ID";
    index = parse_index(*array_task_id, source);
  }
  if (index == -1) return;
  const auto n = static_cast<int64_t>(plan.runs.size());
  if (index < 0 || index >= n) {
    throw ConfigError(source + ": run index " + std::to_string(index) +
                      " is out of range: experiment " + plan.name + " has " + std::to_string(n) +
                      " runs, 0 to " + std::to_string(n - 1) +
                      " (quantfork experiment --plan-only lists them)");
  }
  plan.run_index = static_cast<size_t>(index);
}

RunGroups run_groups(const train::DistEnv& env, int ranks_per_run) {
  RunGroups g;
  g.world_size = env.world_size;
  g.ranks_per_run = ranks_per_run == 0 ? env.world_size : ranks_per_run;
  if (g.ranks_per_run <= 0 || env.world_size % g.ranks_per_run != 0) {
    throw ConfigError("config key experiment.ranks_per_run: " + std::to_string(ranks_per_run) +
                      " does not divide the job's " + std::to_string(env.world_size) +
                      " rank(s) (" + env.launcher +
                      "); the job is split into groups of that many consecutive ranks");
  }
  g.count = env.world_size / g.ranks_per_run;
  g.index = env.rank / g.ranks_per_run;
  g.rank_in_group = env.rank % g.ranks_per_run;
  return g;
}

std::vector<std::string> run_environment(const train::DistEnv& env, const RunGroups& groups,
                                         const std::string& store_prefix) {
  if (env.world_size == 1) return {};
  return {"RANK=" + std::to_string(groups.rank_in_group),
          "WORLD_SIZE=" + std::to_string(groups.ranks_per_run),
          "LOCAL_RANK=" + std::to_string(env.local_rank),
          "MASTER_ADDR=" + env.master_addr,
          "MASTER_PORT=" + std::to_string(env.master_port),
          "QF_STORE_PREFIX=" + store_prefix};
}

}  // namespace qf::experiments
