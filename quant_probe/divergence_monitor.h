#pragma once
// The online divergence monitor (method.md, "Beyond the paper": a principled stopping
// criterion). After each probe it looks at the last `window` probes only — what a run
// knows at that moment — and asks two questions:
//
// - Does the gap rise clearly? The Theil–Sen slope (the median of the slopes between
//   every pair of probes) of y = ln(max(metric, gap_floor_pct)) against the step, times
//   the window's span in steps: the fitted rise of ln(gap) across the window. It rises
//   clearly when that is at least `slope_threshold` (0.3: the gap grows by a third across
//   the window). Theil–Sen, not least squares, because one noisy probe must not fire it.
// - Has FP32 stopped improving? The same robust fit of ln(ppl_fp32), as a percentage
//   change across the window (100 · (exp(slope · span) − 1)). FP32 still improves while
//   it falls by more than `fp32_tolerance_pct`.
//
// A probe *fires* when both hold at it and did not both hold at the probe before (an
// edge, so a gap that keeps rising is one event, not one per probe). Nothing is decided
// before `min_probes` probes are in the window. Everything here is a pure function of the
// probes so far, so a run that re-reads its /probe rows after a resume would decide
// exactly as the uninterrupted run did; replaying a recorded trajectory (quantfork phases
// --monitor) tells where a run would have fired. No libtorch. (Acting on it during
// training — an /events table, stop, switch — is not built yet.)
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/run_file.h"

namespace qf::quant {

struct MonitorOptions {
  std::string metric = "gap_int4_pct";  // a gap column of /probe: gap_int4_pct, gap_int8_pct
  std::int64_t window = 10;             // the last this many probes
  std::int64_t min_probes = 10;         // probes in the window before anything is decided
  double slope_threshold = 0.3;         // least fitted rise of ln(gap) across the window
  double fp32_tolerance_pct = 1.0;      // FP32 improves while it falls by more than this
  double gap_floor_pct = 0.1;           // as audit.phases.gap_floor_pct
};

// One probe as the monitor sees it.
struct MonitorPoint {
  std::int64_t step = 0;
  double ppl_fp32 = 0;
  double gap_pct = 0;  // the metric
};

// What the monitor reads at one probe.
struct MonitorReading {
  std::int64_t step = 0;
  std::int64_t probes = 0;  // in the window (at most options.window)
  bool decided = false;     // probes >= min_probes and every value in the window finite
  double gap_rise = 0;      // Theil–Sen rise of ln(max(gap, floor)) across the window
  double fp32_change_pct = 0;
  bool gap_rising = false;    // gap_rise >= slope_threshold
  bool fp32_stalled = false;  // fp32_change_pct >= -fp32_tolerance_pct
  bool condition = false;     // decided && gap_rising && fp32_stalled
  bool fires = false;         // condition here and not at the probe before
};

// The median of the pairwise slopes (y_j − y_i)/(x_j − x_i) over pairs with x_i != x_j.
// NaN with fewer than two distinct x. Sen (1968).
double theil_sen_slope(const std::vector<double>& x, const std::vector<double>& y);

// ConfigError naming the option for values out of range.
void validate(const MonitorOptions& options);

// The reading at the last of `history` (probes in step order, the current one last).
MonitorReading read_monitor(const std::vector<MonitorPoint>& history,
                            const MonitorOptions& options);

// The reading at every probe of a recorded trajectory, as the monitor would have read
// it online: reading i sees points [0, i] only.
std::vector<MonitorReading> replay_monitor(const std::vector<MonitorPoint>& points,
                                           const MonitorOptions& options);

// The metric of a probe row by its column name; ConfigError for an unknown name.
double monitor_metric(const ProbeRow& row, const std::string& metric);
// The points of phases_io.h's last_good_rows, in step order.
std::vector<MonitorPoint> monitor_points(const std::vector<AuditRow>& rows,
                                         const std::string& metric);

// monitor.*: the options, documented.
void declare_monitor_config(ConfigSchema& schema);
// The validated options.
MonitorOptions monitor_options(const Config& config);

// The readings as a table for the terminal (every probe: step, rise, FP32 change, the
// verdict) and as JSON {"options": {...}, "fired_steps": [...], "first_fired_step": step
// or null, "readings": [{step, probes, decided, gap_rise, fp32_change_pct, condition,
// fires}]}.
std::string format_monitor_replay(const std::vector<MonitorReading>& readings,
                                  const MonitorOptions& options);
nlohmann::json monitor_replay_json(const std::vector<MonitorReading>& readings,
                                   const MonitorOptions& options);

}  // namespace qf::quant
