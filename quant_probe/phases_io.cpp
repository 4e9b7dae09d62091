#include "quant_probe/phases_io.h"

#include <cmath>
#include <limits>
#include <map>
#include <sstream>

namespace qf::quant {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

nlohmann::json step_or_null(const std::optional<std::int64_t>& step) {
  return step ? nlohmann::json(*step) : nlohmann::json(nullptr);
}

void write_segments(std::ostringstream& text, const SegmentedFit& fit) {
  for (std::size_t k = 0; k < fit.segments.size(); ++k) {
    const SegmentFit& s = fit.segments[k];
    text << "  " << (k + 1) << ": steps " << s.start_step << "-" << s.end_step << " (" << s.points()
         << " checkpoints), slope " << s.slope.value << "/step [" << s.slope.low << ", "
         << s.slope.high << "]\n";
  }
  for (std::size_t j = 0; j < fit.knots(); ++j) {
    const Estimate& c = fit.slope_change[j];
    text << "  change of slope at step " << fit.segments[j + 1].start_step << ": " << c.value
         << "/step [" << c.low << ", " << c.high << "]\n";
  }
}

}  // namespace

void declare_phase_config(ConfigSchema& s) {
  s.optional("audit.phases.min_step", FieldType::Int, "1000",
             "Phases and the FP32 convergence step use the checkpoints from this step on.")
      .optional("audit.phases.median_window", FieldType::Int, "5",
                "Checkpoints in the centred moving median of ppl_fp32.")
      .optional("audit.phases.gap_floor_pct", FieldType::Float, "0.1",
                "The segmented fit uses log(max(gap_int4_pct, this)).")
      .optional("audit.phases.min_segment_points", FieldType::Int, "3",
                "Fewest checkpoints in each of the three segments (at least 3).")
      .optional("audit.phases.confidence", FieldType::Float, "0.95",
                "Confidence of the slope intervals that decide whether a slope is clearly "
                "positive, before the Bonferroni correction for the search over knots.")
      .optional("audit.phases.converged_within_pct", FieldType::Float, "1.0",
                "FP32 perplexity converges at the first checkpoint whose moving median is "
                "within this many percent of the median's minimum; a divergence onset must "
                "be at or after it, or at most audit.phases.onset_slack checkpoints before.")
      .optional("audit.phases.onset_slack", FieldType::Int, "4",
                "How many checkpoints a knot may precede the FP32 convergence step and still "
                "be the divergence onset (at least 0): the segmented fit puts the knot of a "
                "concave rise up to 4 checkpoints early. A rise that starts earlier still is "
                "\"still learning\".");
}

PhaseOptions phase_options(const Config& cfg) {
  PhaseOptions o;
  o.min_step = cfg.get_int("audit.phases.min_step");
  o.median_window = cfg.get_int("audit.phases.median_window");
  o.gap_floor_pct = cfg.get_float("audit.phases.gap_floor_pct");
  o.min_segment_points = cfg.get_int("audit.phases.min_segment_points");
  o.confidence = cfg.get_float("audit.phases.confidence");
  o.converged_within_pct = cfg.get_float("audit.phases.converged_within_pct");
  o.onset_slack = cfg.get_int("audit.phases.onset_slack");
  validate(o);
  return o;
}

std::vector<AuditRow> last_good_rows(const std::vector<AuditRow>& rows) {
  std::map<std::int64_t, AuditRow> last_good;
  for (const auto& row : rows) {
    if (row.phase != kFailedProbePhase) last_good[row.step] = row;
  }
  std::vector<AuditRow> out;
  for (const auto& entry : last_good) out.push_back(entry.second);
  return out;
}

std::vector<TrajectoryPoint> trajectory_points(const std::vector<AuditRow>& rows) {
  std::vector<TrajectoryPoint> points;
  for (const auto& row : last_good_rows(rows)) {
    points.push_back({row.step, row.ppl_fp32, row.gap_int4_pct});
  }
  return points;
}

PhaseReport detect_and_write_phases(AuditFile& file, const PhaseOptions& options) {
  PhaseReport report = detect_phases(trajectory_points(file.read_audit()), options);
  hdf5::File& f = file.file();
  std::vector<PhaseRow> rows;
  const std::vector<std::string> names = segment_phases(report);
  for (std::size_t k = 0; k < 3; ++k) {
    const std::string suffix = std::to_string(k + 1);
    if (!report.fit) {
      f.set_double_attribute("slope_low_" + suffix, kNaN);
      f.set_double_attribute("slope_high_" + suffix, kNaN);
      continue;
    }
    const SegmentFit& s = report.fit->segments[k];
    rows.push_back({names[k], s.start_step, s.end_step, s.slope.value});
    f.set_double_attribute("slope_low_" + suffix, s.slope.low);
    f.set_double_attribute("slope_high_" + suffix, s.slope.high);
  }
  for (std::size_t j = 0; j < 2; ++j) {
    f.set_int_attribute(
        "breakpoint_" + std::to_string(j + 1) + "_step",
        report.fit ? report.fit->segments[j + 1].start_step : AuditLandmarks::kNotFound);
  }
  file.write_phases(rows);
  AuditLandmarks landmarks;
  landmarks.fp32_convergence_step = report.fp32_convergence_step;
  landmarks.divergence_onset_step = report.divergence_onset_step;
  landmarks.pre_divergence_step = report.pre_divergence_step;
  file.write_landmarks(landmarks);
  std::string verdict;
  for (const auto& s : report.findings) verdict += s + "\n";
  f.set_string_attribute("phase_verdict", verdict);
  f.set_int_attribute("converged_inside", report.converged_inside ? 1 : 0);
  // A float, so that NaN rather than a sentinel step says there is none.
  f.set_double_attribute("lag_steps",
                         report.lag_steps ? static_cast<double>(*report.lag_steps) : kNaN);
  f.flush();
  return report;
}

std::string format_phases(const PhaseReport& r) {
  std::string out;
  for (const auto& s : r.findings) out += s + "\n";
  if (!r.fit) return out;
  std::ostringstream text;
  text.precision(4);
  text << "segmented fit of log(max(gap_int4_pct, floor)) against step (intervals at "
       << r.fit->confidence << ", Bonferroni over " << r.fit->candidates << " knot positions):\n";
  write_segments(text, *r.fit);
  text << "  second knot: F = " << r.second_knot.f << ", needed above " << r.second_knot.threshold
       << (r.second_knot.needed() ? ": the onset is read from this fit\n"
                                  : ": not needed, the onset is read from the one-knot fit:\n");
  if (!r.second_knot.needed()) write_segments(text, *r.onset_fit);
  return out + text.str();
}

nlohmann::json phases_json(const PhaseReport& r) {
  nlohmann::json segments = nlohmann::json::array();
  const std::vector<std::string> names = segment_phases(r);
  for (std::size_t k = 0; k < names.size(); ++k) {
    const SegmentFit& s = r.fit->segments[k];
    segments.push_back({{"phase", names[k]},
                        {"start_step", s.start_step},
                        {"end_step", s.end_step},
                        {"slope", s.slope.value}});
  }
  return {{"fp32_convergence_step", step_or_null(r.fp32_convergence_step)},
          {"divergence_onset_step", step_or_null(r.divergence_onset_step)},
          {"pre_divergence_step", step_or_null(r.pre_divergence_step)},
          {"segments", segments},
          {"findings", r.findings}};
}

}  // namespace qf::quant
