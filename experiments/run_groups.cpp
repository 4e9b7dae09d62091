#include "experiments/run_groups.h"

#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <thread>

#include "core/errors.h"
#include "core/progress.h"
#include "experiments/fork.h"
#include "experiments/subprocess.h"
#include "train/job_store.h"

namespace fs = std::filesystem;

namespace qf::experiments {

void declare_run_group_config(ConfigSchema& s) {
  s.optional("experiment.ranks_per_run", FieldType::Int, "0",
             "Ranks per run under torchrun / srun: a job of W ranks becomes W / ranks_per_run "
             "run groups of consecutive ranks, group g taking the plan's runs i with i mod "
             "(W / ranks_per_run) = g, each run data parallel over its group; 0: one group of "
             "the whole job (every rank takes part in every run).")
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
  if (ranks < 0) {
    throw ConfigError("config " + cfg.where("experiment.ranks_per_run") +
                      ": a number of ranks, or 0 for the whole job");
  }
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

namespace {

std::string run_name(const RunSpec& r) {
  return r.arm + "/seed" + std::to_string(r.seed);
}

// The end of a job of several ranks: every rank says it is done and what its group saw
// fail, then waits for all (a group that finishes early must not end the job: torchrun
// and srun --kill-on-bad-exit stop every rank when one exits with an error). A rank whose
// sign of life (JobStore::beat) stands still for `stale_after` has died or hangs: the
// wait ends with an Error naming it. Returns the failures of every group. Rank 0, which
// hosts the store, leaves last.
std::vector<std::string> finish_job(train::JobStore& store, const std::string& prefix,
                                    const train::DistEnv& env, const RunGroups& groups,
                                    const std::vector<std::string>& failed,
                                    std::chrono::milliseconds stale_after) {
  using Clock = std::chrono::steady_clock;
  if (groups.rank_in_group == 0) {
    std::string list;
    for (const auto& f : failed) list += f + "\n";
    store.set(prefix + "failed/" + std::to_string(groups.index), list);
  }
  store.add(prefix + "finished", 1);
  std::vector<std::string> seen(env.world_size);
  std::vector<Clock::time_point> changed(env.world_size, Clock::now());
  auto last_note = Clock::now();
  for (int64_t done; (done = store.add(prefix + "finished", 0)) < env.world_size;) {
    const auto now = Clock::now();
    for (int r = 0; r < env.world_size; ++r) {
      const std::string life = store.try_get(prefix + "alive/" + std::to_string(r)).value_or("");
      if (life != seen[r]) {
        seen[r] = life;
        changed[r] = now;
      } else if (now - changed[r] > stale_after) {
        throw Error(
            "experiment rank " + std::to_string(r) + " (run group " +
            std::to_string(r / groups.ranks_per_run) + ") has shown no sign of life for " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::seconds>(now - changed[r]).count()) +
            " s while rank " + std::to_string(env.rank) +
            " waited for the job to end: its process died or hangs; run the same "
            "command again to resume the unfinished runs");
      }
    }
    if (now - last_note > std::chrono::minutes(1)) {
      spdlog::info("experiment rank {}: waiting for {} of {} rank(s) of other run groups", env.rank,
                   env.world_size - done, env.world_size);
      last_note = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::vector<std::string> all;
  for (int g = 0; g < groups.count; ++g) {
    const std::string list = store.get(prefix + "failed/" + std::to_string(g));
    size_t at = 0;
    for (size_t nl; (nl = list.find('\n', at)) != std::string::npos; at = nl + 1) {
      all.push_back(list.substr(at, nl - at) + " [group " + std::to_string(g) + "]");
    }
  }
  if (store.hosts()) {
    // The others read the lists from this process's store: wait (briefly) until they have.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (store.add(prefix + "left", 0) < env.world_size - 1 &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } else {
    store.add(prefix + "left", 1);
  }
  return all;
}

}  // namespace

void run_experiment(const ExperimentPlan& plan, const fs::path& program) {
  const train::DistEnv env = train::DistEnv::from_environment();
  const RunGroups groups = run_groups(env, plan.ranks_per_run);
  // One rank of each group speaks for it; the others run the same runs.
  const bool reports = groups.rank_in_group == 0;
  std::vector<size_t> todo;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const RunSpec& r = plan.runs[i];
    if ((plan.run_index && *plan.run_index != i) || !groups.takes(i)) continue;
    if (r.done()) {
      if (reports) spdlog::info("{}: finished already, skipped", run_name(r));
    } else {
      todo.push_back(i);
    }
  }
  // Runs meet at the job's store under "qf/experiment/<restart>/run<i>/": torchrun's agent
  // keeps its store across restarts of the workers, which TORCHELASTIC_RESTART_COUNT counts.
  std::unique_ptr<train::JobStore> store;
  const std::chrono::milliseconds timeout(static_cast<int64_t>(plan.timeout_s * 1000));
  std::string prefix = "qf/experiment/";
  if (env.world_size > 1) {
    const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
    prefix += std::string(restart && *restart ? restart : "0") + "/";
    store = std::make_unique<train::JobStore>(env, timeout);
    store->beat(prefix + "alive/" + std::to_string(env.rank), std::chrono::seconds(1));
  }
  const std::string group_label =
      groups.count > 1
          ? "group " + std::to_string(groups.index) + " of " + std::to_string(groups.count) + " (" +
                std::to_string(groups.ranks_per_run) + " ranks per run): "
          : "";
  if (reports) {
    spdlog::info(
        "{} {}: {}{} run(s) to do of {}, {} at a time, {} thread(s) each{}", plan.kind, plan.name,
        group_label, todo.size(), plan.runs.size(), plan.parallel, plan.threads_per_run,
        plan.base.empty() ? std::string()
                          : "; base " + plan.base.string() + " (step " +
                                std::to_string(plan.base_step) + ", " + plan.base_reason + ")");
  }
  std::optional<Progress> progress;
  if (reports) {
    progress.emplace(groups.count > 1 ? "group " + std::to_string(groups.index) : plan.kind,
                     static_cast<int64_t>(todo.size()), "run", stderr, 0.0);
  }
  // pid -> (run, whether the process is the run's follow-up).
  std::map<pid_t, std::pair<size_t, bool>> running;
  std::vector<std::string> failed;
  size_t next = 0, done = 0;
  const auto start = [&](size_t i, bool followup) {
    const RunSpec& r = plan.runs[i];
    const std::vector<std::string> args =
        followup ? r.followup
                 : std::vector<std::string>{"train", "--config", r.config_path.string()};
    running[spawn(program, args, r.dir / "stdout.txt",
                  run_environment(env, groups, prefix + "run" + std::to_string(i) + "/"))] = {
        i, followup};
  };
  while (next < todo.size() || !running.empty()) {
    while (next < todo.size() && static_cast<int>(running.size()) < plan.parallel) {
      const size_t i = todo[next++];
      start(i, plan.runs[i].finished);
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) break;
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const auto [index, was_followup] = it->second;
    const RunSpec& r = plan.runs[index];
    running.erase(it);
    const bool ok = exit_code_of(status) == 0;
    // The follow-up (one rank speaks for the group) takes the run's slot once it trained.
    if (ok && !was_followup && !r.followup.empty() && groups.rank_in_group == 0) {
      start(index, true);
      continue;
    }
    ++done;
    if (!ok) {
      failed.push_back("run " + std::to_string(index) + " " + run_name(r) +
                       (was_followup ? " (its " + r.followup.front() + ")" : std::string()) +
                       " (see " + (r.dir / "stdout.txt").string() + ")");
    }
    if (progress) {
      progress->update(static_cast<int64_t>(done),
                       {{"last", run_name(r) + (ok ? " ok" : " FAILED")}});
    }
  }
  if (progress) progress->finish();
  // A rank is given up for lost after dist.timeout_s without a sign of life (10 s at least:
  // a busy machine must not pass for a dead one).
  if (store) {
    failed = finish_job(*store, prefix, env, groups, failed,
                        std::max(timeout, std::chrono::milliseconds(10000)));
  }
  if (!failed.empty()) {
    if (env.rank != 0) {
      throw Error(std::to_string(failed.size()) + " run(s) of " + plan.kind + " " + plan.name +
                  " failed (rank 0 lists them)");
    }
    std::string list;
    for (const auto& f : failed) list += "\n  " + f;
    throw Error(std::to_string(failed.size()) + " run(s) of " + plan.kind + " " + plan.name +
                " failed:" + list + "\nrun the same command again to resume them");
  }
}

}  // namespace qf::experiments
