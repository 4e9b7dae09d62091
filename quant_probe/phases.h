#pragma once
// The phases of an audited trajectory (method.md, "The audit (a trajectory of
// checkpoints) and its phases").
//
// Everything is computed over the checkpoints with step >= min_step (default 1000)
// whose ppl_fp32 and gap_int4_pct are finite; the others are left out and named.
//
// - FP32 convergence. m is the centred moving median of ppl_fp32 over `median_window`
//   checkpoints (default 5; near the ends the window is cut to the checkpoints that exist,
//   as pandas' rolling(k, center=True, min_periods=1).median()). The FP32 convergence
//   step is the first checkpoint whose m is within `converged_within_pct` (default 1 %) of
//   m's minimum. The minimum itself is no landmark: on a flat plateau it falls anywhere.
//   FP32 has not converged inside the trajectory when m is lowest at the last checkpoint
//   and still falling there: m at the checkpoint `median_window` checkpoints before the
//   last (or the first, when there are fewer) is more than converged_within_pct above
//   the minimum. Then the convergence step reported is the last checkpoint's and
//   converged_inside is false.
// - Segments: y = log(max(gap_int4_pct, gap_floor_pct)) against the step, fitted by the
//   continuous two-knot line of segmented_fit.h (knots k1 < k2 at checkpoints, every
//   segment at least `min_segment_points`, default 3): segment 1 is [first, k1), 2 is
//   [k1, k2), 3 is [k2, last]. These are the phases reported. When the fit does not need
//   its second knot (below), the pair reported is the best one that has a knot where the
//   best one-knot fit has its knot, so that the onset is a boundary of the phases.
// - Clearly positive: the lower end of the interval is above 0, at `confidence` (default
//   0.95) corrected for the search over knots (segmented_fit.h). Every interval reported
//   is at this corrected confidence.
// - The onset is read from the two-knot fit when it needs its second knot: the best
//   one-knot fit's squared residual exceeds the two-knot fit's by more than a clearly
//   nonzero change of slope would explain (segmented_fit.h, test_second_knot). Otherwise
//   it is read from the best one-knot fit: a gap that turns up once and rises along one
//   line has only one knot, and the spare knot of a two-knot fit goes wherever the noise
//   is, around the onset or in a three-checkpoint tail.
// - A knot starts a rise when every segment from it on has a clearly positive slope and
//   the slope clearly steepens at the knot (the change of slope there is clearly
//   positive). The steepening keeps a gap that rises along one line from being cut at an
//   arbitrary knot and called an onset.
// - The divergence onset is the first knot that starts a rise and is at most
//   `onset_slack` checkpoints (default 4) before the FP32 convergence step: with two
//   knots, k2 when only segment 3 rises and k1 when segments 2 and 3 both rise (a concave
//   rise, e.g. an INT4 loss penalty growing linearly, puts both knots inside the
//   divergence). The slack is the fit's known bias: straight lines through a concave
//   rise put its knot up to 4 checkpoints early (synthetic_phases_test.cpp measures it),
//   so with no slack an onset at convergence — Pythia-160m's shape, both near step 77000
//   — would be read as a rise before it. Only a rise that starts more than onset_slack
//   checkpoints before convergence is "still learning". FP32 perplexity rising after
//   convergence changes nothing. The pre-divergence checkpoint is the checkpoint at the
//   onset knot: the last one on the line before it (the hinge starts after it), so its
//   step is the onset's. The lag is onset − convergence step, negative for an onset
//   inside the slack.
// - Otherwise there is no divergence phase, no onset and no pre-divergence checkpoint,
//   and the first finding says why: FP32 has not converged inside the trajectory; too
//   few checkpoints for three segments; the last segment's slope is not clearly positive
//   (the gap is not rising at the end); the knot that starts the rise is more than
//   onset_slack checkpoints before the convergence step (the gap turns up while the
//   model is still learning); or the slope does not clearly steepen at any knot from
//   which the gap rises (it rises along one line from the first segment on). The verdict
//   names the fit the onset was read from and its F; an onset before the convergence
//   step is said to be so, with the negative lag. Later findings: how many checkpoints
//   were left out for NaN/Inf, the convergence step, and whether FP32 perplexity rises
//   again after it (its median ends more than converged_within_pct above the minimum).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "quant_probe/segmented_fit.h"

namespace qf::quant {

struct PhaseOptions {
  std::int64_t min_step = 1000;
  std::int64_t median_window = 5;
  double gap_floor_pct = 0.1;
  std::int64_t min_segment_points = 3;
  double confidence = 0.95;
  double converged_within_pct = 1.0;
  // How many checkpoints a knot may precede the FP32 convergence step and still be the
  // onset: the early bias of the knot of a concave rise.
  std::int64_t onset_slack = 4;
};

struct TrajectoryPoint {
  std::int64_t step = 0;
  double ppl_fp32 = 0;
  double gap_int4_pct = 0;
};

struct PhaseReport {
  std::vector<TrajectoryPoint> used;         // the points every figure below is computed from
  std::vector<std::int64_t> left_out_steps;  // below min_step, non-finite, or duplicates
  std::vector<double> smoothed_ppl;          // the moving median, one per used point
  std::optional<std::int64_t> fp32_convergence_step;
  bool converged_inside = false;
  // The two-knot fit: the phases reported (holding the one-knot fit's knot when its
  // second knot is not needed). Absent when too few points. Slopes are of log(gap) per
  // step.
  std::optional<SegmentedFit> fit;
  SecondKnotTest second_knot;  // does `fit` need its second knot?
  // The fit the onset is read from: `fit` when it needs its second knot, else the best
  // one-knot fit.
  std::optional<SegmentedFit> onset_fit;
  std::vector<bool> rising;               // per segment of onset_fit: its slope is clearly positive
  std::vector<bool> steepens;             // per knot of onset_fit: the slope clearly steepens there
  std::optional<std::size_t> onset_knot;  // which knot of onset_fit (1-based) is the onset
  std::optional<std::int64_t> divergence_onset_step;
  std::optional<std::int64_t> pre_divergence_step;
  std::optional<std::int64_t> lag_steps;  // onset − convergence (< 0 inside onset_slack)
  // Plain sentences: what was found, and why there is no divergence phase when there is
  // none. The first is the verdict.
  std::vector<std::string> findings;
};

// pandas' rolling(window, center=True, min_periods=1).median().
std::vector<double> centred_moving_median(const std::vector<double>& values, std::int64_t window);

// ConfigError naming the option for values out of range (window < 1, floor <= 0, ...).
void validate(const PhaseOptions& options);

// `points` in any order; a step given twice keeps its last point.
PhaseReport detect_phases(const std::vector<TrajectoryPoint>& points, const PhaseOptions& options);

// The phase of each segment of the two-knot fit, as an audit file's /phases names it.
// With a divergence: the segments that start at or after the onset are "divergence"; of
// those before it the last is "plateau" and an earlier one "rapid_learning". Without
// one: "segment_1" .. "segment_3". Empty without a fit.
std::vector<std::string> segment_phases(const PhaseReport& report);

}  // namespace qf::quant
