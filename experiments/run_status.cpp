#include "experiments/run_status.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/errors.h"
#include "core/run_file.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace qf::experiments {
namespace {

constexpr const char* kErrorFile = "error.txt";
constexpr int kMaxDepth = 8;  // how far below PATH runs are looked for

bool is_run_dir(const fs::path& d) {
  for (const char* name : {"run.h5", "run.h5.journal", "run_config.yaml", "checkpoints"}) {
    if (fs::exists(d / name)) return true;
  }
  return false;
}

// fork.cpp's plan writes probe_plan.csv into OUT/<experiment>/.
bool is_experiment_dir(const fs::path& d) {
  return fs::exists(d / "probe_plan.csv");
}

std::string last_nonempty_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  }
  return last;
}

// What the run was configured with: config.yaml (the trainer's resolved copy), else the
// run_config.yaml an experiment writes before the run starts.
void read_config(const fs::path& dir, RunStatus& s) {
  for (const char* name : {"config.yaml", "run_config.yaml"}) {
    if (!fs::exists(dir / name)) continue;
    try {
      const YAML::Node c = YAML::LoadFile((dir / name).string());
      if (c["train"] && c["train"]["steps"]) s.total_steps = c["train"]["steps"].as<std::int64_t>();
      if (c["train"] && c["train"]["seed"]) s.seed = c["train"]["seed"].as<std::int64_t>();
      if (c["run"] && c["run"]["arm"]) s.arm = c["run"]["arm"].as<std::string>();
      if (c["run"] && c["run"]["experiment"]) {
        s.experiment = c["run"]["experiment"].as<std::string>();
      }
      return;
    } catch (const YAML::Exception&) {
      // A config cut short or hand-edited: the run is still listed, without its totals.
    }
  }
}

void read_rows(const fs::path& dir, RunStatus& s) {
  std::vector<TrainRow> train;
  std::vector<ProbeRow> probe;
  const fs::path journal = journal_path_for(dir / "run.h5");
  try {
    if (fs::exists(journal)) {
      JournalRows rows = read_journal_rows(journal);
      train = std::move(rows.train);
      probe = std::move(rows.probe);
    } else if (fs::exists(dir / "run.h5")) {
      const RunFile f = RunFile::open_read_only((dir / "run.h5").string());
      train = f.read_train();
      probe = f.read_probe();
    }
  } catch (const Error&) {
    return;  // unreadable for now (being rebuilt by a resume): shown without rows
  }
  if (!train.empty()) {
    s.steps_done = std::max(s.steps_done, train.back().step + 1);
    s.last_loss = train.back().loss;
  }
  std::set<std::int64_t> steps;
  for (const auto& p : probe) {
    if (p.weights != kRawWeights) continue;  // train.ema's rows sit beside the raw ones
    steps.insert(p.step);
    s.last_probe_step = p.step;
    s.last_gap_int4_pct = p.gap_int4_pct;
  }
  s.probe_steps.assign(steps.begin(), steps.end());
}

RunStatus run_status(const fs::path& dir, const fs::path& root) {
  RunStatus s;
  s.dir = dir;
  s.name = dir.lexically_relative(root).string();
  if (s.name.empty()) s.name = ".";
  read_config(dir, s);
  std::int64_t checkpointed = 0;
  std::string stop_reason;  // the divergence monitor ended the run there
  try {
    const auto checkpoints = train::list_checkpoints(dir / "checkpoints");
    if (!checkpoints.empty()) {
      const auto st = train::read_trainer_state_json(checkpoints.back().dir);
      checkpointed = st.run_steps;
      stop_reason = st.stop_reason;
    }
  } catch (const Error&) {
    // A checkpoint being written or pruned right now: the rows still tell the progress.
  }
  s.steps_done = checkpointed;
  read_rows(dir, s);
  if (const auto holder = DirectoryLock::holder(dir)) {
    s.state = RunState::kRunning;
    s.detail = holder->describe();
  } else if ((s.total_steps > 0 && checkpointed >= s.total_steps) || !stop_reason.empty()) {
    s.state = RunState::kDone;
    s.detail = stop_reason;
  } else if (fs::exists(dir / kErrorFile)) {
    s.state = RunState::kFailed;
    std::ifstream in(dir / kErrorFile);
    std::getline(in, s.detail);
  } else if (const std::string last = last_nonempty_line(dir / "stdout.txt");
             last.rfind("quantfork: error:", 0) == 0 ||
             last.rfind("quantfork: internal error", 0) == 0) {
    s.state = RunState::kFailed;
    s.detail = last;
  } else if (s.steps_done > 0 || fs::exists(dir / "run.h5.journal")) {
    s.state = RunState::kStopped;
  }
  return s;
}

void find_runs(const fs::path& dir, const fs::path& root, int depth, StatusReport& r) {
  if (is_run_dir(dir)) {
    r.runs.push_back(run_status(dir, root));
    return;  // nothing below a run is another run (checkpoints/ is large)
  }
  if (is_experiment_dir(dir)) {
    ExperimentStatus e;
    e.dir = dir;
    e.name = dir.filename().string();
    r.experiments.push_back(e);
  }
  if (depth >= kMaxDepth) return;
  std::error_code ec;
  std::vector<fs::path> subdirs;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) subdirs.push_back(entry.path());
  }
  std::sort(subdirs.begin(), subdirs.end());
  for (const auto& sub : subdirs) find_runs(sub, root, depth + 1, r);
}

bool is_under(const fs::path& dir, const fs::path& parent) {
  const auto rel = dir.lexically_relative(parent);
  return !rel.empty() && *rel.begin() != "..";
}

// Per arm of each experiment: probes so far, and those matched by (seed, step) in every
// arm (the pairs analyze can compare).
void count_arms(StatusReport& r) {
  for (auto& e : r.experiments) {
    std::map<std::string, std::vector<const RunStatus*>> arms;
    for (const auto& run : r.runs) {
      if (is_under(run.dir, e.dir)) arms[run.arm].push_back(&run);
    }
    std::map<std::pair<std::int64_t, std::int64_t>, int> arms_with;  // (seed, step) -> arms
    for (const auto& [arm, runs] : arms) {
      std::set<std::pair<std::int64_t, std::int64_t>> seen;
      for (const auto* run : runs) {
        for (auto step : run->probe_steps) seen.insert({run->seed.value_or(-1), step});
      }
      for (const auto& key : seen) ++arms_with[key];
    }
    for (const auto& [arm, runs] : arms) {
      ArmStatus a;
      a.arm = arm;
      for (const auto* run : runs) {
        ++a.runs;
        if (run->state == RunState::kDone) ++a.done;
        for (auto step : run->probe_steps) {
          ++a.probes;
          if (arms_with[{run->seed.value_or(-1), step}] == static_cast<int>(arms.size())) {
            ++a.matched;
          }
        }
      }
      e.arms.push_back(a);
    }
  }
}

std::string fixed(double v, int decimals, const char* sign = "") {
  char text[64];
  std::snprintf(text, sizeof text, (std::string("%") + sign + ".*f").c_str(), decimals, v);
  return text;
}

}  // namespace

const char* state_name(RunState state) {
  switch (state) {
    case RunState::kDone:
      return "done";
    case RunState::kRunning:
      return "running";
    case RunState::kFailed:
      return "failed";
    case RunState::kStopped:
      return "stopped";
    case RunState::kNotStarted:
      break;
  }
  return "not started";
}

StatusReport status_of(const fs::path& path) {
  if (!fs::is_directory(path)) {
    throw UsageError("quantfork status: '" + path.string() + "' is not a directory");
  }
  StatusReport r;
  r.path = path;
  find_runs(path, path, 0, r);
  if (r.runs.empty()) {
    throw UsageError("quantfork status: no run under '" + path.string() +
                     "' (a run directory holds run.h5, run.h5.journal, run_config.yaml or "
                     "checkpoints/)");
  }
  r.kind = is_run_dir(path) ? "run" : is_experiment_dir(path) ? "experiment" : "directory";
  std::sort(r.runs.begin(), r.runs.end(),
            [](const RunStatus& a, const RunStatus& b) { return a.name < b.name; });
  count_arms(r);
  return r;
}

std::string format_status(const StatusReport& r) {
  std::size_t width = 3;
  for (const auto& run : r.runs) width = std::max(width, run.name.size());
  std::ostringstream o;
  char line[512];
  std::snprintf(line, sizeof line, "%-*s  %-11s  %13s  %9s  %9s  %s\n", static_cast<int>(width),
                "RUN", "STATE", "STEP", "LOSS", "GAP INT4", "NOTE");
  o << line;
  std::map<std::string, int> counts;
  for (const auto& run : r.runs) {
    ++counts[state_name(run.state)];
    const std::string step =
        std::to_string(run.steps_done) + "/" +
        (run.total_steps > 0 ? std::to_string(run.total_steps) : std::string("?"));
    const std::string loss = run.last_loss ? fixed(*run.last_loss, 4) : "-";
    const std::string gap = run.last_gap_int4_pct && std::isfinite(*run.last_gap_int4_pct)
                                ? fixed(*run.last_gap_int4_pct, 2, "+") + "%"
                                : "-";
    std::snprintf(line, sizeof line, "%-*s  %-11s  %13s  %9s  %9s  %s\n", static_cast<int>(width),
                  run.name.c_str(), state_name(run.state), step.c_str(), loss.c_str(), gap.c_str(),
                  run.detail.c_str());
    o << line;
  }
  o << r.runs.size() << " run(s):";
  for (const auto& [state, n] : counts) o << " " << n << " " << state;
  o << "\n";
  for (const auto& e : r.experiments) {
    o << "experiment " << e.name << " (" << e.dir.string() << "): probes matched by seed and "
      << "step in every arm / probes so far\n";
    for (const auto& a : e.arms) {
      o << "  " << a.arm << ": " << a.matched << "/" << a.probes << " (" << a.done << " of "
        << a.runs << " run(s) done)\n";
    }
  }
  return o.str();
}

nlohmann::json status_json(const StatusReport& r) {
  auto optional = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  nlohmann::json j = {{"path", r.path.string()}, {"kind", r.kind}};
  j["runs"] = nlohmann::json::array();
  for (const auto& run : r.runs) {
    const bool gap = run.last_gap_int4_pct && std::isfinite(*run.last_gap_int4_pct);
    j["runs"].push_back({{"name", run.name},
                         {"dir", run.dir.string()},
                         {"experiment", run.experiment},
                         {"arm", run.arm},
                         {"seed", optional(run.seed)},
                         {"state", state_name(run.state)},
                         {"detail", run.detail},
                         {"step", run.steps_done},
                         {"total_steps", run.total_steps},
                         {"last_loss", optional(run.last_loss)},
                         {"probes", run.probe_steps.size()},
                         {"last_probe_step", optional(run.last_probe_step)},
                         {"last_gap_int4_pct",
                          gap ? nlohmann::json(*run.last_gap_int4_pct) : nlohmann::json(nullptr)}});
  }
  j["experiments"] = nlohmann::json::array();
  for (const auto& e : r.experiments) {
    nlohmann::json arms = nlohmann::json::array();
    for (const auto& a : e.arms) {
      arms.push_back({{"arm", a.arm},
                      {"runs", a.runs},
                      {"done", a.done},
                      {"probes", a.probes},
                      {"matched_probes", a.matched}});
    }
    j["experiments"].push_back({{"name", e.name}, {"dir", e.dir.string()}, {"arms", arms}});
  }
  return j;
}

void record_run_failure(const fs::path& run_dir, const std::string& message) {
  write_text_atomically(run_dir / kErrorFile, message + "\n");
}

void clear_run_failure(const fs::path& run_dir) {
  std::error_code ec;
  fs::remove(run_dir / kErrorFile, ec);
}

}  // namespace qf::experiments
