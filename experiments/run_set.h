#pragma once
// The run files of a fork experiment (interfaces.md, quantfork.run/3), found on disk and
// read into memory for the statistics and the report. An experiment writes
// OUT/<experiment>/<arm>/seed<k>/run.h5; the arm and seed are taken from each file's
// root attributes, not from its path, so renamed or copied runs still group correctly.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/run_file.h"

namespace qf::experiments {

// Which weights' /probe rows a run contributes (analyze.weights): the trained weights,
// their moving average (train.ema), or both, each run then appearing twice, its average
// as arm "<arm>+ema" (kEmaArmSuffix), so "cosine" and "cosine+ema" compare like arms.
enum class WeightsSelection { kRaw, kEma, kBoth };
inline constexpr const char* kEmaArmSuffix = "+ema";

// One /probe row, reduced to what the statistics and plots use.
struct ProbePoint {
  std::int64_t step = 0;
  std::string phase;
  std::int64_t phase_index = 0;
  double value = 0;  // the metric column
};

struct Run {
  std::filesystem::path file;
  std::string experiment, arm;
  std::int64_t seed = 0;
  std::vector<ProbePoint> probes;  // ascending step, one row per step
  std::vector<TrainRow> train;     // only when loaded with_train
};

// The run files named by `inputs`: a file is taken as given; a directory is searched
// recursively for files named run.h5 (sorted by path). UsageError (exit 2) naming the
// input when it does not exist or a directory holds no run.h5, and when `inputs` is
// empty.
std::vector<std::filesystem::path> find_run_files(const std::vector<std::string>& inputs);

// The numeric /probe columns (i4, i8, f4, f8) a metric may name, in schema order.
std::vector<std::string> numeric_probe_columns();
bool is_numeric_probe_column(const std::string& name);

// Reads each file (FormatError naming it when it is not a quantfork.run file) with
// `metric` as ProbePoint::value, from the rows of the `weights` selected (a file without
// ema rows adds no "+ema" run, with a warning; with kEma alone it is an Error naming it). A step
// logged twice in one file keeps its last row and is reported in `warnings`. UsageError naming both
// files when two runs have the same arm and seed.
std::vector<Run> load_runs(const std::vector<std::filesystem::path>& files,
                           const std::string& metric, bool with_train,
                           std::vector<std::string>& warnings,
                           WeightsSelection weights = WeightsSelection::kRaw);

// The largest step at which every one of `runs` has a finite value (the final probe the
// statistics compare); nullopt when there is none.
std::optional<std::int64_t> common_final_step(const std::vector<const Run*>& runs);

// The arms of `runs`, sorted by name.
std::vector<std::string> arms_of(const std::vector<Run>& runs);

}  // namespace qf::experiments
