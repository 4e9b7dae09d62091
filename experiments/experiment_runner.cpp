#include "experiments/experiment_runner.h"

#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <thread>

#include "core/errors.h"
#include "core/progress.h"
#include "core/subprocess.h"
#include "experiments/run_groups.h"
#include "train/job_store.h"

namespace fs = std::filesystem;

namespace qf::experiments {

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

// The plan's runs this rank takes (its group's, or plan.run_index alone) that are not
// done; the finished ones are logged as skipped when `reports`.
std::vector<size_t> runs_to_do(const ExperimentPlan& plan, const RunGroups& groups, bool reports) {
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
  return todo;
}

// The failed runs of the whole job as one Error: rank 0 lists them, the others point there.
[[noreturn]] void throw_failures(const ExperimentPlan& plan, const train::DistEnv& env,
                                 const std::vector<std::string>& failed) {
  if (env.rank != 0) {
    throw Error(std::to_string(failed.size()) + " run(s) of " + plan.kind + " " + plan.name +
                " failed (rank 0 lists them)");
  }
  std::string list;
  for (const auto& f : failed) list += "\n  " + f;
  throw Error(std::to_string(failed.size()) + " run(s) of " + plan.kind + " " + plan.name +
              " failed:" + list + "\nrun the same command again to resume them");
}

}  // namespace

void run_experiment(const ExperimentPlan& plan, const fs::path& program) {
  const train::DistEnv env = train::DistEnv::from_environment();
  const RunGroups groups = run_groups(env, plan.ranks_per_run);
  // One rank of each group speaks for it; the others run the same runs.
  const bool reports = groups.rank_in_group == 0;
  const std::vector<size_t> todo = runs_to_do(plan, groups, reports);
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
  if (!failed.empty()) throw_failures(plan, env, failed);
}

}  // namespace qf::experiments
