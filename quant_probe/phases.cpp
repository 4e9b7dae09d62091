#include "quant_probe/phases.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "core/errors.h"

namespace qf::quant {

namespace {

std::string number_text(double v) {
  std::ostringstream o;
  o.precision(3);
  o << v;
  return o.str();
}

std::string interval_text(const Estimate& e) {
  return number_text(e.value) + "/step (" + number_text(e.low) + " .. " + number_text(e.high) + ")";
}

std::string checkpoints_text(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " checkpoint" : " checkpoints");
}

std::string steps_text(const SegmentFit& s) {
  return "steps " + std::to_string(s.start_step) + "-" + std::to_string(s.end_step);
}

// Where FP32 perplexity converges, as indices into the used points.
struct Convergence {
  std::size_t first_within = 0;        // the convergence checkpoint when converged inside
  std::size_t minimum = 0;             // of the moving median, the first on ties
  double within = 0;                   // the largest median that counts as converged
  std::size_t still_falling_from = 0;  // where "still falling at the end" is measured from
};

Convergence locate_convergence(PhaseReport& r, const PhaseOptions& o) {
  std::vector<double> ppl;
  for (const auto& p : r.used) ppl.push_back(p.ppl_fp32);
  r.smoothed_ppl = centred_moving_median(ppl, o.median_window);
  const std::vector<double>& m = r.smoothed_ppl;
  Convergence c;
  c.minimum = static_cast<std::size_t>(std::min_element(m.begin(), m.end()) - m.begin());
  // fabs: a table may hold nonsense perplexities (<= 0); the minimum still counts.
  c.within = m[c.minimum] + std::fabs(m[c.minimum]) * o.converged_within_pct / 100.0;
  while (c.first_within < c.minimum && m[c.first_within] > c.within) ++c.first_within;
  const std::size_t last = m.size() - 1, window = static_cast<std::size_t>(o.median_window);
  c.still_falling_from = last > window ? last - window : 0;
  r.converged_inside = last > 0 && !(c.minimum == last && m[c.still_falling_from] > c.within);
  r.fp32_convergence_step = r.used[r.converged_inside ? c.first_within : c.minimum].step;
  return c;
}

// How many checkpoints the knot at used point `knot` is before the convergence checkpoint
// (0 at or after it).
std::size_t checkpoints_early(std::size_t knot, const Convergence& c) {
  return knot < c.first_within ? c.first_within - knot : 0;
}

// A knot may be the onset when it is at most onset_slack checkpoints before convergence:
// the fit puts the knot of a concave rise that early (phases.h).
bool within_slack(std::size_t knot, const Convergence& c, const PhaseOptions& o) {
  return checkpoints_early(knot, c) <= static_cast<std::size_t>(o.onset_slack);
}

std::string slack_text(const PhaseOptions& o) {
  return "at most audit.phases.onset_slack = " +
         checkpoints_text(static_cast<std::size_t>(o.onset_slack));
}

// Knot j (0-based) of the onset fit starts a rise: every segment from it on rises clearly
// and the slope clearly steepens at it.
bool starts_rise(const PhaseReport& r, std::size_t j) {
  if (!r.steepens[j]) return false;
  for (std::size_t s = j + 1; s < r.rising.size(); ++s) {
    if (!r.rising[s]) return false;
  }
  return true;
}

// Which fit the onset is read from, and why.
std::string onset_fit_text(const PhaseReport& r) {
  const std::string f = "F = " + number_text(r.second_knot.f);
  if (r.onset_fit->knots() == 2) {
    return "two-knot fit, which needs its second knot: " + f + " > " +
           number_text(r.second_knot.threshold);
  }
  return "one-knot fit: the two-knot fit's second knot is not needed, " + f +
         " <= " + number_text(r.second_knot.threshold);
}

// Why there is no divergence phase, as clauses of the verdict.
std::vector<std::string> reasons_for_none(const PhaseReport& r, const Convergence& c,
                                          const PhaseOptions& o) {
  std::vector<std::string> why;
  if (!r.converged_inside) {
    why.push_back(
        "FP32 perplexity has not converged inside the trajectory (its moving median is lowest "
        "at the last checkpoint, step " +
        std::to_string(r.used.back().step) + ", and still more than " +
        number_text(o.converged_within_pct) + " % lower than " +
        std::to_string(r.used.size() - 1 - c.still_falling_from) + " checkpoints before)");
  }
  if (!r.onset_fit) {
    why.push_back("too few checkpoints from step " + std::to_string(o.min_step) +
                  " to fit three segments (" + std::to_string(r.used.size()) + ", need " +
                  std::to_string(3 * o.min_segment_points) + ")");
    return why;
  }
  const auto& seg = r.onset_fit->segments;
  if (!r.rising.back()) {
    why.push_back("the log INT4 gap's slope in the last segment (" + steps_text(seg.back()) + ", " +
                  interval_text(seg.back().slope) + "; " + onset_fit_text(r) +
                  ") is not clearly positive");
    return why;
  }
  if (!r.converged_inside) return why;
  for (std::size_t j = 0; j < r.steepens.size(); ++j) {
    if (!starts_rise(r, j)) continue;
    // The first knot that starts a rise is the one detect_phases turned down for being
    // too early; a later one would have been taken.
    const std::size_t knot = seg[j + 1].first;
    const double above = 100.0 * (r.smoothed_ppl[knot] / r.smoothed_ppl[c.minimum] - 1.0);
    why.push_back("the gap turns up at step " + std::to_string(seg[j + 1].start_step) + " (" +
                  onset_fit_text(r) + "), " + checkpoints_text(checkpoints_early(knot, c)) +
                  " before FP32 perplexity converges at step " +
                  std::to_string(*r.fp32_convergence_step) + " (its moving median is " +
                  number_text(above) + " % above its minimum there; an onset may precede it by " +
                  slack_text(o) + "): it rises while the model is still learning");
    return why;
  }
  std::string text =
      "the slope does not clearly steepen at a knot from which the gap rises "
      "clearly to the end (change of slope";
  for (std::size_t j = 0; j < r.onset_fit->knots(); ++j) {
    text += (j ? ", at step " : " at step ") + std::to_string(seg[j + 1].start_step) + ": " +
            interval_text(r.onset_fit->slope_change[j]);
  }
  text += "; " + onset_fit_text(r) + ")";
  if (r.rising.front()) text += ": the gap rises along one line from the first segment on";
  why.push_back(text);
  return why;
}

// Where the onset is relative to FP32 convergence, with the lag.
std::string lag_text(const PhaseReport& r, const Convergence& c, const PhaseOptions& o) {
  const std::string convergence =
      "the FP32 convergence step " + std::to_string(*r.fp32_convergence_step);
  if (*r.lag_steps >= 0) return std::to_string(*r.lag_steps) + " steps after " + convergence;
  const std::size_t knot = r.onset_fit->segments[*r.onset_knot].first;
  return checkpoints_text(checkpoints_early(knot, c)) + " before " + convergence + " (lag " +
         std::to_string(*r.lag_steps) + " steps; an onset may precede convergence by " +
         slack_text(o) + ", the slack for the fit's early knot on a concave rise)";
}

std::string divergence_text(const PhaseReport& r, const Convergence& c, const PhaseOptions& o) {
  const auto& seg = r.onset_fit->segments;
  std::string slope = "log INT4 gap slope";
  for (std::size_t s = *r.onset_knot; s < seg.size(); ++s) {
    slope += (s > *r.onset_knot ? ", then " : " ") + interval_text(seg[s].slope);
    if (s > *r.onset_knot) slope += " from step " + std::to_string(seg[s].start_step);
  }
  return "Divergence phase from step " + std::to_string(*r.divergence_onset_step) + " (" +
         onset_fit_text(r) + "; " + slope + "), " + lag_text(r, c, o) +
         "; the pre-divergence checkpoint is step " + std::to_string(*r.pre_divergence_step) + ".";
}

}  // namespace

std::vector<double> centred_moving_median(const std::vector<double>& values, std::int64_t window) {
  const auto n = static_cast<std::int64_t>(values.size());
  // pandas centres a window of k on i as [i − k/2, i + (k − 1)/2]: for an even k the
  // extra checkpoint is on the left.
  const std::int64_t left = window / 2, right = (window - 1) / 2;
  std::vector<double> out(values.size());
  std::vector<double> w;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t a = std::max<std::int64_t>(0, i - left), b = std::min(n - 1, i + right);
    w.assign(values.begin() + a, values.begin() + b + 1);
    std::sort(w.begin(), w.end());
    const std::size_t m = w.size();
    out[static_cast<std::size_t>(i)] = m % 2 ? w[m / 2] : (w[m / 2 - 1] + w[m / 2]) / 2.0;
  }
  return out;
}

void validate(const PhaseOptions& o) {
  if (o.median_window < 1) throw ConfigError("audit.phases.median_window must be at least 1");
  if (!(o.gap_floor_pct > 0)) throw ConfigError("audit.phases.gap_floor_pct must be above 0");
  if (o.min_segment_points < 3) {
    throw ConfigError(
        "audit.phases.min_segment_points must be at least 3 (a slope's interval "
        "needs one degree of freedom)");
  }
  if (!(o.confidence > 0 && o.confidence < 1))
    throw ConfigError("audit.phases.confidence must be between 0 and 1");
  if (!(o.converged_within_pct >= 0))
    throw ConfigError("audit.phases.converged_within_pct must be at least 0");
  if (o.onset_slack < 0) throw ConfigError("audit.phases.onset_slack must be at least 0");
}

namespace {

// The points the fit uses: one per step (its last), from min_step on, with finite values;
// the others go to left_out_steps. Returns how many were left out for NaN or Inf.
std::int64_t select_points(const std::vector<TrajectoryPoint>& points, const PhaseOptions& o,
                           PhaseReport& r) {
  std::map<std::int64_t, TrajectoryPoint> by_step;
  for (const auto& p : points) {
    if (by_step.count(p.step)) r.left_out_steps.push_back(p.step);
    by_step[p.step] = p;
  }
  std::int64_t nonfinite = 0;
  for (const auto& [step, p] : by_step) {
    if (step < o.min_step) {
      r.left_out_steps.push_back(step);
    } else if (!std::isfinite(p.ppl_fp32) || !std::isfinite(p.gap_int4_pct)) {
      r.left_out_steps.push_back(step);
      ++nonfinite;
    } else {
      r.used.push_back(p);
    }
  }
  std::sort(r.left_out_steps.begin(), r.left_out_steps.end());
  return nonfinite;
}

// The segmented fit of the log INT4 gap and the onset it supports (the decision only:
// write_findings says it).
void fit_onset(PhaseReport& r, const Convergence& c, const PhaseOptions& o) {
  std::vector<double> x, y;
  for (const auto& p : r.used) {
    x.push_back(static_cast<double>(p.step));
    y.push_back(std::log(std::max(p.gap_int4_pct, o.gap_floor_pct)));
  }
  const auto min_points = static_cast<std::size_t>(o.min_segment_points);
  r.fit = fit_best_knots(x, y, 2, min_points, o.confidence);
  if (!r.fit) return;
  const SegmentedFit one = *fit_best_knots(x, y, 1, min_points, o.confidence);
  r.second_knot = test_second_knot(one, *r.fit);
  if (r.second_knot.needed()) {
    r.onset_fit = r.fit;
  } else {
    r.onset_fit = one;
    // Keep the one knot the data support, so that an onset read from it is a boundary of
    // the phases reported.
    const std::size_t knot = one.segments[1].first;
    if (auto kept = fit_best_knots(x, y, 2, min_points, o.confidence, knot)) r.fit = kept;
  }
  for (const auto& seg : r.onset_fit->segments) r.rising.push_back(seg.slope.low > 0);
  for (const auto& change : r.onset_fit->slope_change) r.steepens.push_back(change.low > 0);
  for (std::size_t j = 0; j < r.steepens.size() && r.converged_inside; ++j) {
    if (within_slack(r.onset_fit->segments[j + 1].first, c, o) && starts_rise(r, j)) {
      r.onset_knot = j + 1;
      break;
    }
  }
  if (r.onset_knot) {
    const SegmentFit& from_onset = r.onset_fit->segments[*r.onset_knot];
    r.divergence_onset_step = from_onset.start_step;
    r.pre_divergence_step = r.used[from_onset.first].step;
    r.lag_steps = *r.divergence_onset_step - *r.fp32_convergence_step;
  }
}

// What was decided, in sentences: the onset or why there is none, the checkpoints left
// out, the convergence and a late rise of FP32 perplexity.
void write_findings(PhaseReport& r, const Convergence& c, const PhaseOptions& o,
                    std::int64_t nonfinite) {
  const auto say = [&](const std::string& s) { r.findings.push_back(s); };
  if (r.onset_knot) {
    say(divergence_text(r, c, o));
  } else {
    const std::vector<std::string> why = reasons_for_none(r, c, o);
    std::string text = "No divergence phase, and so no pre-divergence checkpoint: ";
    for (std::size_t i = 0; i < why.size(); ++i) text += (i ? "; " : "") + why[i];
    say(text + ".");
  }
  if (nonfinite > 0) {
    say(std::to_string(nonfinite) + " checkpoint(s) from step " + std::to_string(o.min_step) +
        " with NaN/Inf perplexity or gap are left out of the phases.");
  }
  if (!r.converged_inside) return;
  const std::vector<double>& m = r.smoothed_ppl;
  say("FP32 perplexity converges at step " + std::to_string(*r.fp32_convergence_step) +
      ": the first checkpoint whose " + std::to_string(o.median_window) +
      "-checkpoint moving median is within " + number_text(o.converged_within_pct) +
      " % of its minimum (" + number_text(m[c.minimum]) + " at step " +
      std::to_string(r.used[c.minimum].step) + ").");
  const double late = 100.0 * (m.back() / m[c.minimum] - 1.0);
  if (late > o.converged_within_pct) {
    say("FP32 perplexity rises again after converging (its moving median ends " +
        number_text(late) +
        " % above its minimum); that does not move the onset, whose only bound is the "
        "convergence step (" +
        slack_text(o) + " before it).");
  }
}

}  // namespace

PhaseReport detect_phases(const std::vector<TrajectoryPoint>& points, const PhaseOptions& o) {
  validate(o);
  PhaseReport r;
  const std::int64_t nonfinite = select_points(points, o, r);
  if (r.used.empty()) {
    r.findings.push_back("No divergence phase: no checkpoint with finite values from step " +
                         std::to_string(o.min_step) + ".");
    return r;
  }
  const Convergence c = locate_convergence(r, o);
  fit_onset(r, c, o);
  write_findings(r, c, o, nonfinite);
  return r;
}

std::vector<std::string> segment_phases(const PhaseReport& r) {
  std::vector<std::string> names;
  if (!r.fit) return names;
  const auto& seg = r.fit->segments;
  for (std::size_t k = 0; k < seg.size(); ++k) {
    if (!r.divergence_onset_step) {
      names.push_back("segment_" + std::to_string(k + 1));
    } else if (seg[k].start_step >= *r.divergence_onset_step) {
      names.push_back("divergence");
    } else {
      const bool last_before =
          k + 1 == seg.size() || seg[k + 1].start_step >= *r.divergence_onset_step;
      names.push_back(last_before ? "plateau" : "rapid_learning");
    }
  }
  return names;
}

}  // namespace qf::quant
