#include "experiments/run_set.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <system_error>

#include "core/errors.h"

namespace fs = std::filesystem;

namespace qf::experiments {
namespace {

bool is_numeric(hdf5::ColumnType t) {
  return t != hdf5::ColumnType::kString;
}

// Column `name` of `rows` as doubles, whatever its numeric type.
std::vector<double> numeric_column(const hdf5::RowSet& rows, const hdf5::Column& column) {
  if (column.type == hdf5::ColumnType::kI4 || column.type == hdf5::ColumnType::kI8) {
    const auto ints = rows.ints(column.name);
    return std::vector<double>(ints.begin(), ints.end());
  }
  return rows.doubles(column.name);
}

const hdf5::Column& probe_column(const std::string& name) {
  for (const auto& c : probe_schema()) {
    if (c.name == name && is_numeric(c.type)) return c;
  }
  std::string known;
  for (const auto& c : numeric_probe_columns()) known += (known.empty() ? "" : ", ") + c;
  throw ConfigError("'" + name + "' is not a numeric column of /probe; expected one of: " + known);
}

// The run of `file` from its /probe rows of `weights` (kRawWeights or kEmaWeights).
Run read_run(const fs::path& file, const RunFile& rf, const hdf5::RowSet& rows,
             const hdf5::Column& metric, const std::string& weights, bool with_train,
             std::vector<std::string>& warnings) {
  const RunAttributes a = rf.attributes();
  Run run;
  run.file = file;
  run.experiment = a.experiment;
  run.arm = a.arm;
  run.seed = a.seed;
  const auto steps = rows.ints("step");
  const auto phases = rows.strings("phase");
  const auto indices = rows.ints("phase_index");
  const auto values = numeric_column(rows, metric);
  // Files before schema version 3 hold the raw weights' rows only.
  const auto kinds = rows.layout().has("weights")
                         ? rows.strings("weights")
                         : std::vector<std::string>(rows.size(), kRawWeights);
  // Keyed by step: a resumed run that was not truncated may log a step twice, and the
  // later row is the one the run went on from.
  std::map<std::int64_t, ProbePoint> by_step;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (kinds[i] != weights) continue;
    if (by_step.count(steps[i])) {
      warnings.push_back("'" + file.string() + "': /probe holds step " + std::to_string(steps[i]) +
                         " more than once; its last row is used");
    }
    by_step[steps[i]] = {steps[i], phases[i], indices[i], values[i]};
  }
  for (auto& [step, p] : by_step) run.probes.push_back(std::move(p));
  if (with_train) run.train = rf.read_train();
  return run;
}

std::vector<Run> read_runs(const fs::path& file, const hdf5::Column& metric, bool with_train,
                           WeightsSelection weights, std::vector<std::string>& warnings) {
  const RunFile rf = RunFile::open_read_only(file.string());
  const hdf5::RowSet rows = rf.probe().read();
  std::vector<Run> out;
  if (weights != WeightsSelection::kEma) {
    out.push_back(read_run(file, rf, rows, metric, kRawWeights, with_train, warnings));
  }
  if (weights != WeightsSelection::kRaw) {
    Run ema = read_run(file, rf, rows, metric, kEmaWeights, with_train, warnings);
    if (ema.probes.empty()) {
      const std::string what = "'" + file.string() + "' has no /probe rows of the ema weights " +
                               "(its run kept no train.ema average)";
      if (weights == WeightsSelection::kEma) throw Error(what + "; analyze.weights is ema");
      warnings.push_back(what + "; it adds no " + ema.arm + kEmaArmSuffix + " run");
    } else {
      if (weights == WeightsSelection::kBoth) ema.arm += kEmaArmSuffix;
      out.push_back(std::move(ema));
    }
  }
  return out;
}

}  // namespace

std::vector<fs::path> find_run_files(const std::vector<std::string>& inputs) {
  if (inputs.empty()) throw UsageError("no run files given (directories or run.h5 files)");
  std::vector<fs::path> out;
  for (const auto& input : inputs) {
    std::error_code ec;
    const fs::path p(input);
    if (fs::is_regular_file(p, ec)) {
      out.push_back(p);
      continue;
    }
    if (!fs::is_directory(p, ec)) {
      throw UsageError("'" + input + "' does not exist (expected a run directory or run.h5)");
    }
    std::vector<fs::path> found;
    for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      if (it->path().filename() == "run.h5" && it->is_regular_file(ec)) found.push_back(it->path());
    }
    if (ec) throw IoError("cannot list '" + input + "': " + ec.message());
    if (found.empty()) {
      throw UsageError("'" + input + "' holds no run files (run.h5, searched recursively)");
    }
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

std::vector<std::string> numeric_probe_columns() {
  std::vector<std::string> out;
  for (const auto& c : probe_schema()) {
    if (is_numeric(c.type)) out.push_back(c.name);
  }
  return out;
}

bool is_numeric_probe_column(const std::string& name) {
  const auto cols = numeric_probe_columns();
  return std::find(cols.begin(), cols.end(), name) != cols.end();
}

std::vector<Run> load_runs(const std::vector<fs::path>& files, const std::string& metric,
                           bool with_train, std::vector<std::string>& warnings,
                           WeightsSelection weights) {
  const hdf5::Column& column = probe_column(metric);
  std::vector<Run> runs;
  std::map<std::pair<std::string, std::int64_t>, fs::path> seen;
  std::set<std::string> experiments;
  for (const auto& file : files) {
    for (Run& run : read_runs(file, column, with_train, weights, warnings)) {
      const auto [it, fresh] = seen.emplace(std::make_pair(run.arm, run.seed), file);
      if (!fresh) {
        throw UsageError("'" + it->second.string() + "' and '" + file.string() +
                         "' are both runs of arm '" + run.arm + "' with seed " +
                         std::to_string(run.seed) + "; give each (arm, seed) once");
      }
      experiments.insert(run.experiment);
      runs.push_back(std::move(run));
    }
  }
  if (experiments.size() > 1) {
    std::string names;
    for (const auto& e : experiments) names += (names.empty() ? "'" : ", '") + e + "'";
    warnings.push_back("the runs come from more than one experiment (" + names +
                       "); they are grouped by arm and seed alone");
  }
  return runs;
}

std::optional<std::int64_t> common_final_step(const std::vector<const Run*>& runs) {
  std::optional<std::set<std::int64_t>> common;
  for (const Run* r : runs) {
    std::set<std::int64_t> steps;
    for (const auto& p : r->probes) {
      if (std::isfinite(p.value) && (!common || common->count(p.step))) steps.insert(p.step);
    }
    common = std::move(steps);
  }
  if (!common || common->empty()) return std::nullopt;
  return *common->rbegin();
}

std::vector<std::string> arms_of(const std::vector<Run>& runs) {
  std::set<std::string> arms;
  for (const auto& r : runs) arms.insert(r.arm);
  return {arms.begin(), arms.end()};
}

}  // namespace qf::experiments
