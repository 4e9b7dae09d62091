#pragma once
// `quantfork status PATH`: where the runs under PATH stand, for a person watching a sweep
// or a script polling it. PATH is a run directory, an experiment (OUT/<experiment>/, which
// holds probe_plan.csv) or any directory above such (a sweep): runs and experiments are
// found below it.
//
// A run's state: done (its newest checkpoint has every update), running (a live process
// holds run.dir/.lock; core/dir_lock.h), failed (it ended with an error: run.dir/error.txt,
// written by `quantfork train`, or an error as the last line of an experiment run's
// stdout.txt), stopped (it has updates but ended without an error: a signal or a kill;
// running the same command resumes it) or not started. Its rows are read from
// run.h5.journal, which a running run keeps appending to (HDF5 locks run.h5 meanwhile).
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qf::experiments {

enum class RunState { kDone, kRunning, kFailed, kStopped, kNotStarted };
const char* state_name(RunState state);  // "done", "running", ...

struct RunStatus {
  std::filesystem::path dir;
  std::string name;  // dir relative to the PATH asked about ("." for PATH itself)
  std::string experiment, arm;
  std::optional<std::int64_t> seed;
  RunState state = RunState::kNotStarted;
  // failed: the first error line; running: the lock's holder; done early: why the
  // divergence monitor stopped it
  std::string detail;
  std::int64_t steps_done = 0;   // updates done (logged or checkpointed, whichever is later)
  std::int64_t total_steps = 0;  // train.steps (0 when the config does not say)
  std::optional<double> last_loss;
  std::optional<std::int64_t> last_probe_step;
  std::optional<double> last_gap_int4_pct;
  std::vector<std::int64_t> probe_steps;  // ascending
};

struct ArmStatus {
  std::string arm;
  int runs = 0, done = 0;
  std::int64_t probes = 0;   // /probe rows over the arm's seeds
  std::int64_t matched = 0;  // of those, the (seed, step) every arm of the experiment has
};

struct ExperimentStatus {
  std::filesystem::path dir;
  std::string name;
  std::vector<ArmStatus> arms;  // sorted by name
};

struct StatusReport {
  std::filesystem::path path;
  std::string kind;             // "run", "experiment" or "directory"
  std::vector<RunStatus> runs;  // sorted by name
  std::vector<ExperimentStatus> experiments;
};

// UsageError when `path` is not a directory or holds no run below it.
StatusReport status_of(const std::filesystem::path& path);

std::string format_status(const StatusReport& report);  // a table for people
nlohmann::json status_json(const StatusReport& report);

// How `quantfork train` records why a run ended with an error (run.dir/error.txt), and
// forgets it when the run is started again.
void record_run_failure(const std::filesystem::path& run_dir, const std::string& message);
void clear_run_failure(const std::filesystem::path& run_dir);

}  // namespace qf::experiments
