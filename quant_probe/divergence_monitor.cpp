#include "quant_probe/divergence_monitor.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "core/errors.h"
#include "quant_probe/phases_io.h"

namespace qf::quant {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {"gap_int4_pct", "gap_int8_pct"};
  return names;
}

// Theil–Sen fit over the window, as the change of the fitted line across its span.
double fitted_change(const std::vector<double>& x, const std::vector<double>& y) {
  return theil_sen_slope(x, y) * (x.back() - x.front());
}

}  // namespace

double theil_sen_slope(const std::vector<double>& x, const std::vector<double>& y) {
  std::vector<double> slopes;
  for (std::size_t i = 0; i < x.size(); ++i) {
    for (std::size_t j = i + 1; j < x.size(); ++j) {
      if (x[j] != x[i]) slopes.push_back((y[j] - y[i]) / (x[j] - x[i]));
    }
  }
  if (slopes.empty()) return kNaN;
  const std::size_t mid = slopes.size() / 2;
  std::nth_element(slopes.begin(), slopes.begin() + static_cast<std::ptrdiff_t>(mid), slopes.end());
  const double upper = slopes[mid];
  if (slopes.size() % 2 == 1) return upper;
  const double lower =
      *std::max_element(slopes.begin(), slopes.begin() + static_cast<std::ptrdiff_t>(mid));
  return 0.5 * (lower + upper);
}

void validate(const MonitorOptions& o) {
  if (std::find(metric_names().begin(), metric_names().end(), o.metric) == metric_names().end()) {
    throw ConfigError("monitor.metric: '" + o.metric +
                      "' is no gap column; expected gap_int4_pct or gap_int8_pct");
  }
  if (o.window < 3) throw ConfigError("monitor.window must be at least 3 probes");
  if (o.min_probes < 3 || o.min_probes > o.window) {
    throw ConfigError("monitor.min_probes must be between 3 and monitor.window (" +
                      std::to_string(o.window) + ")");
  }
  if (!(o.slope_threshold > 0)) throw ConfigError("monitor.slope_threshold must be above 0");
  if (!(o.fp32_tolerance_pct >= 0)) {
    throw ConfigError("monitor.fp32_tolerance_pct must be at least 0");
  }
  if (!(o.gap_floor_pct > 0)) throw ConfigError("monitor.gap_floor_pct must be above 0");
}

MonitorReading read_monitor(const std::vector<MonitorPoint>& history, const MonitorOptions& o) {
  MonitorReading r;
  if (history.empty()) return r;
  r.step = history.back().step;
  const std::size_t n = std::min(history.size(), static_cast<std::size_t>(o.window));
  r.probes = static_cast<std::int64_t>(n);
  std::vector<double> x, log_gap, log_ppl;
  bool finite = true;
  for (std::size_t i = history.size() - n; i < history.size(); ++i) {
    const MonitorPoint& p = history[i];
    finite = finite && std::isfinite(p.gap_pct) && std::isfinite(p.ppl_fp32) && p.ppl_fp32 > 0;
    x.push_back(static_cast<double>(p.step));
    log_gap.push_back(std::log(std::max(p.gap_pct, o.gap_floor_pct)));
    log_ppl.push_back(std::log(p.ppl_fp32));
  }
  if (r.probes < o.min_probes || !finite || x.back() == x.front()) return r;
  r.decided = true;
  r.gap_rise = fitted_change(x, log_gap);
  r.fp32_change_pct = 100.0 * std::expm1(fitted_change(x, log_ppl));
  r.gap_rising = r.gap_rise >= o.slope_threshold;
  r.fp32_stalled = r.fp32_change_pct >= -o.fp32_tolerance_pct;
  r.condition = r.gap_rising && r.fp32_stalled;
  return r;
}

std::vector<MonitorReading> replay_monitor(const std::vector<MonitorPoint>& points,
                                           const MonitorOptions& o) {
  std::vector<MonitorReading> readings;
  std::vector<MonitorPoint> history;
  for (const MonitorPoint& p : points) {
    history.push_back(p);
    MonitorReading r = read_monitor(history, o);
    r.fires = r.condition && (readings.empty() || !readings.back().condition);
    readings.push_back(r);
  }
  return readings;
}

double monitor_metric(const ProbeRow& row, const std::string& metric) {
  if (metric == "gap_int4_pct") return row.gap_int4_pct;
  if (metric == "gap_int8_pct") return row.gap_int8_pct;
  throw ConfigError("monitor.metric: '" + metric + "' is no gap column");
}

std::vector<MonitorPoint> monitor_points(const std::vector<AuditRow>& rows,
                                         const std::string& metric) {
  std::vector<MonitorPoint> points;
  for (const auto& row : last_good_rows(rows)) {
    points.push_back({row.step, row.ppl_fp32, monitor_metric(row, metric)});
  }
  return points;
}

void declare_monitor_config(ConfigSchema& s) {
  s.optional("monitor.metric", FieldType::String, "gap_int4_pct",
             "The gap it watches: gap_int4_pct or gap_int8_pct.")
      .optional("monitor.window", FieldType::Int, "10",
                "The last this many probes are fitted (at least 3).")
      .optional("monitor.min_probes", FieldType::Int, "10",
                "Nothing is decided before this many probes are in the window (3 to "
                "monitor.window).")
      .optional("monitor.slope_threshold", FieldType::Float, "0.3",
                "The gap rises clearly when the Theil-Sen slope of ln(max(gap, "
                "monitor.gap_floor_pct)) times the window's span in steps (the fitted rise "
                "of ln(gap) across the window) is at least this: 0.3 is a gap grown by a "
                "third across the window.")
      .optional("monitor.fp32_tolerance_pct", FieldType::Float, "1.0",
                "FP32 no longer improves when the Theil-Sen fit of ln(ppl_fp32) falls by at "
                "most this many percent across the window.")
      .optional("monitor.gap_floor_pct", FieldType::Float, "0.1",
                "Gaps below this (small, zero or negative) count as this before the log.");
}

MonitorOptions monitor_options(const Config& cfg) {
  MonitorOptions o;
  o.metric = cfg.get_string("monitor.metric");
  o.window = cfg.get_int("monitor.window");
  o.min_probes = cfg.get_int("monitor.min_probes");
  o.slope_threshold = cfg.get_float("monitor.slope_threshold");
  o.fp32_tolerance_pct = cfg.get_float("monitor.fp32_tolerance_pct");
  o.gap_floor_pct = cfg.get_float("monitor.gap_floor_pct");
  validate(o);
  return o;
}

std::string format_monitor_replay(const std::vector<MonitorReading>& readings,
                                  const MonitorOptions& o) {
  std::ostringstream text;
  text << "divergence monitor on " << o.metric << ": window " << o.window << ", min_probes "
       << o.min_probes << ", fires when ln(gap) rises by >= " << o.slope_threshold
       << " across the window while FP32 falls by <= " << o.fp32_tolerance_pct << "%\n";
  text << std::setw(10) << "step" << std::setw(8) << "probes" << std::setw(12) << "gap_rise"
       << std::setw(14) << "fp32_change%"
       << "  verdict\n";
  std::vector<std::int64_t> fired;
  for (const MonitorReading& r : readings) {
    text << std::setw(10) << r.step << std::setw(8) << r.probes;
    if (!r.decided) {
      text << std::setw(12) << "-" << std::setw(14) << "-"
           << "  undecided\n";
      continue;
    }
    text << std::fixed << std::setprecision(4) << std::setw(12) << r.gap_rise
         << std::setprecision(3) << std::setw(14) << r.fp32_change_pct << "  "
         << (r.fires        ? "FIRES"
             : r.condition  ? "holds"
             : r.gap_rising ? "rising, FP32 improving"
                            : "quiet")
         << "\n";
    text.unsetf(std::ios::fixed);
    if (r.fires) fired.push_back(r.step);
  }
  if (fired.empty()) {
    text << "the monitor would not have fired\n";
  } else {
    text << "the monitor would have fired first at step " << fired.front();
    if (fired.size() > 1) text << " (" << fired.size() << " times in all)";
    text << "\n";
  }
  return text.str();
}

nlohmann::json monitor_replay_json(const std::vector<MonitorReading>& readings,
                                   const MonitorOptions& o) {
  nlohmann::json rows = nlohmann::json::array();
  nlohmann::json fired = nlohmann::json::array();
  for (const MonitorReading& r : readings) {
    const auto value_or_null = [&](double v) {
      return r.decided ? nlohmann::json(v) : nlohmann::json(nullptr);
    };
    rows.push_back({{"step", r.step},
                    {"probes", r.probes},
                    {"decided", r.decided},
                    {"gap_rise", value_or_null(r.gap_rise)},
                    {"fp32_change_pct", value_or_null(r.fp32_change_pct)},
                    {"condition", r.condition},
                    {"fires", r.fires}});
    if (r.fires) fired.push_back(r.step);
  }
  return {{"options",
           {{"metric", o.metric},
            {"window", o.window},
            {"min_probes", o.min_probes},
            {"slope_threshold", o.slope_threshold},
            {"fp32_tolerance_pct", o.fp32_tolerance_pct},
            {"gap_floor_pct", o.gap_floor_pct}}},
          {"fired_steps", fired},
          {"first_fired_step", fired.empty() ? nlohmann::json(nullptr) : fired.front()},
          {"readings", rows}};
}

}  // namespace qf::quant
