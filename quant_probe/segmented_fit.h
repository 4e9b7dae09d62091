#pragma once
// Segmented regression: the continuous piecewise-linear least-squares line through points
// (x, y) with one or two knots, y = b0 + b1·x + b2·(x − x[k1])+ [+ b3·(x − x[k2])+], with
// Student-t intervals on its slopes and changes of slope. phases.h fits it to the log
// INT4 gap.
//
// - The knots sit at points and cut them into runs: segment 1 is [0, k1), 2 is [k1, k2)
//   (or [k1, n) with one knot), 3 is [k2, n). Their slopes are b1, b1 + b2, b1 + b2 + b3;
//   b2 and b3 are the changes of slope at the knots.
// - An interval is centred on the estimate, with the standard error from the fit's
//   residual variance and covariance, SSE / (n − p) · (XᵀX)⁻¹, and n − p degrees of
//   freedom (p = knots + 2). Exact data leave only rounding in the residuals, so the
//   residual standard deviation is taken as at least 1e-9 (units of y): a slope of 1e-18
//   is then not "clearly" anything.
// - fit_best_knots tries every placement of the knots with at least `min_points` points
//   in each segment and keeps the smallest squared residual (the earliest on ties). Its
//   intervals are at `confidence` corrected for that search (Bonferroni over the m
//   positions the last knot could take: 1 − (1 − confidence) / m), because the best of m
//   knots makes a chance change of slope look stronger than it is.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace qf::quant {

// One estimate of the fit and its interval.
struct Estimate {
  double value = 0, se = 0, low = 0, high = 0;
};

// One segment of the fitted line: points [first, last].
struct SegmentFit {
  std::size_t first = 0, last = 0;
  std::int64_t start_step = 0, end_step = 0;
  Estimate slope;  // of y per unit of x
  std::size_t points() const { return last - first + 1; }
};

struct SegmentedFit {
  std::vector<SegmentFit> segments;    // knots + 1 of them
  std::vector<Estimate> slope_change;  // at each knot: the next segment's slope minus this one's
  double sse = 0;
  double variance = 0;         // the residual variance the intervals use (floored)
  double t = 0;                // the two-sided t quantile of the intervals
  double confidence = 0;       // the confidence of every interval
  std::size_t candidates = 0;  // m, the positions the last knot could take (0 from fit_knots)
  std::size_t knots() const { return slope_change.size(); }
};

// The least-squares fit with knots at x[k] for k in `knots` (one or two, increasing,
// inside (0, x.size())); x increasing. Intervals at `confidence` as given (no correction).
SegmentedFit fit_knots(const std::vector<double>& x, const std::vector<double>& y,
                       const std::vector<std::size_t>& knots, double confidence);

// The best placement of `knots` (1 or 2) knots, intervals at the corrected confidence (m
// counts every placement, `kept` or not); with `kept`, the best that has a knot at
// x[kept]. Nothing when fewer than (knots + 1) · min_points points, or when no placement
// keeps `kept`.
std::optional<SegmentedFit> fit_best_knots(const std::vector<double>& x,
                                           const std::vector<double>& y, std::size_t knots,
                                           std::size_t min_points, double confidence,
                                           std::optional<std::size_t> kept = std::nullopt);

// Whether the two-knot fit's second knot is needed: it lowers the squared residual of the
// best one-knot fit by more than a clearly nonzero change of slope would, F = (SSE₁ −
// SSE₂) / two.variance > two.t² (one more parameter: F is a squared t).
struct SecondKnotTest {
  double f = 0, threshold = 0;
  bool needed() const { return f > threshold; }
};
SecondKnotTest test_second_knot(const SegmentedFit& one, const SegmentedFit& two);

}  // namespace qf::quant
