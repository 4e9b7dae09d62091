// The segmented least-squares fit: exact lines recovered, numpy's least squares matched,
// the fast knot search held to a plain refit of every placement, and the test of the
// second knot.
#include "quant_probe/segmented_fit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "python_support.h"
#include "test_support.h"

namespace qf::test {
namespace {

// Noisy points: y falls to step 9000, is flat to 28000, then rises (three segments).
void three_segments(std::vector<double>& x, std::vector<double>& y, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 0.1);
  for (int i = 0; i < 40; ++i) {
    const double s = 1000.0 * (i + 1);
    x.push_back(s);
    y.push_back((s < 9000    ? 3 - 1e-4 * s
                 : s < 28000 ? 2.1
                             : 2.1 + 1e-4 * (s - 28000)) +
                noise(rng));
  }
}

TEST(SegmentedFit, ExactPiecewiseLineIsRecoveredWithNarrowIntervals) {
  std::vector<double> x, y;
  for (int i = 0; i < 20; ++i) {
    x.push_back(1000.0 + 500.0 * i + (i % 3) * 100.0);  // uneven spacing
    const double s = x.back();
    y.push_back(s < 4000 ? 2.0 - 1e-4 * (s - 1000) : s < 7600 ? 1.7 : 1.7 + 3e-4 * (s - 7600));
  }
  const auto f = quant::fit_best_knots(x, y, 2, 3, 0.95);
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->segments.size(), 3u);
  EXPECT_EQ(f->segments[1].start_step, 4000);
  EXPECT_EQ(f->segments[2].start_step, 7600);
  EXPECT_EQ(f->segments[2].end_step, static_cast<std::int64_t>(x.back()));
  EXPECT_NEAR(f->segments[0].slope.value, -1e-4, 1e-12);
  EXPECT_NEAR(f->segments[1].slope.value, 0.0, 1e-12);
  EXPECT_NEAR(f->segments[2].slope.value, 3e-4, 1e-12);
  EXPECT_NEAR(f->slope_change[0].value, 1e-4, 1e-12);
  EXPECT_NEAR(f->slope_change[1].value, 3e-4, 1e-12);
  EXPECT_NEAR(f->segments[2].slope.low, 3e-4, 1e-9);
  EXPECT_EQ(f->candidates, 20u - 9 + 1);
  EXPECT_DOUBLE_EQ(f->confidence, 1 - 0.05 / 12);
}

TEST(SegmentedFit, ExactDataStillGetIntervalsOfNonZeroWidth) {
  // Without the floor on the residual variance, the flat segment's slope (zero up to
  // rounding) would have an interval of zero width and could count as clearly positive.
  std::vector<double> x, y;
  for (int i = 0; i < 30; ++i) {
    x.push_back(1000.0 * (i + 1));
    y.push_back(i < 20 ? 1.0 : 1.0 + 0.05 * (i - 19));
  }
  const auto f = quant::fit_best_knots(x, y, 1, 3, 0.95);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->segments[1].start_step, 20000);
  EXPECT_GT(f->segments[0].slope.se, 0.0);
  EXPECT_LT(f->segments[0].slope.low, 0.0);
  EXPECT_GT(f->segments[0].slope.high, 0.0);
  EXPECT_GT(f->segments[1].slope.low, 0.0);
}

// The fit against numpy's least squares on noisy data: the same knots, slopes and
// standard errors, with two knots and with one (numpy solves every placement with lstsq,
// we search by projections and refit the best with our own QR).
TEST(SegmentedFit, MatchesNumpyLeastSquares) {
  std::vector<double> x, y;
  three_segments(x, y, 7);
  std::string xs, ys;
  for (std::size_t i = 0; i < x.size(); ++i) {
    char v[64];
    std::snprintf(v, sizeof v, "%s%.17g", i ? "," : "", x[i]);
    xs += v;
    std::snprintf(v, sizeof v, "%s%.17g", i ? "," : "", y[i]);
    ys += v;
  }
  const auto two = quant::fit_best_knots(x, y, 2, 3, 0.95);
  const auto one = quant::fit_best_knots(x, y, 1, 3, 0.95);
  ASSERT_TRUE(two && one);
  TempDir tmp;
  QF_RUN_PYTHON(R"(
import numpy as np
x = np.array([)" + xs +
                    R"(]); y = np.array([)" + ys + R"(])
n = len(x); u = (x - x[0]) / (x[-1] - x[0])
def fit(knots):
    X = np.stack([np.ones(n), u] + [np.maximum(u - u[k], 0) for k in knots], 1)
    c = np.linalg.lstsq(X, y, rcond=None)[0]
    r = y - X @ c
    return r @ r, knots, c, X
def best(placements):
    return min((fit(k) for k in placements), key=lambda f: f[0])
for sse, knots, c, X in [best([(i, j) for i in range(3, n - 5) for j in range(i + 3, n - 2)]),
                         best([(i,) for i in range(3, n - 2)])]:
    p = X.shape[1]
    cov = sse / (n - p) * np.linalg.inv(X.T @ X) / (x[-1] - x[0]) ** 2
    last = np.ones(p); last[0] = 0
    change = np.zeros(p); change[-1] = 1
    print(int(x[knots[-1]]), sse, c[1:].sum() / (x[-1] - x[0]), np.sqrt(last @ cov @ last),
          c[-1] / (x[-1] - x[0]), np.sqrt(cov[-1, -1]))
)",
                tmp.path());
  std::istringstream numpy(read_file(tmp / "script.out"));
  for (const auto* f : {&*two, &*one}) {
    double knot, sse, slope, se, change, change_se;
    numpy >> knot >> sse >> slope >> se >> change >> change_se;
    SCOPED_TRACE(std::to_string(f->knots()) + " knot(s)");
    EXPECT_EQ(f->segments.back().start_step, knot);
    EXPECT_NEAR(f->sse, sse, 1e-9 * sse);
    EXPECT_NEAR(f->segments.back().slope.value, slope, 1e-9 * std::fabs(slope));
    EXPECT_NEAR(f->segments.back().slope.se, se, 1e-9 * se);
    EXPECT_NEAR(f->slope_change.back().value, change, 1e-9 * std::fabs(change));
    EXPECT_NEAR(f->slope_change.back().se, change_se, 1e-9 * change_se);
  }
  EXPECT_NEAR(two->segments[1].start_step, 9000, 2000);
  EXPECT_NEAR(two->segments[2].start_step, 28000, 2000);
}

// The search (projections, O(n) per placement) against the plain way: a QR refit of
// every placement with fit_knots. Same best placement, same squared residual.
TEST(SegmentedFit, SearchFindsTheBestOfEveryRefit) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    std::vector<double> x, y;
    three_segments(x, y, seed);
    const std::size_t n = x.size();
    // The best placement of knots (each segment at least 3 points), by refitting each.
    double best2 = std::numeric_limits<double>::infinity(), best1 = best2;
    std::vector<std::size_t> knots2, knots1;
    const auto consider = [&](const std::vector<std::size_t>& knots, double& best,
                              std::vector<std::size_t>& at) {
      const double sse = quant::fit_knots(x, y, knots, 0.95).sse;
      if (sse < best) {
        best = sse;
        at = knots;
      }
    };
    for (std::size_t i = 3; i + 3 <= n; ++i) {
      consider({i}, best1, knots1);
      for (std::size_t j = i + 3; j + 3 <= n; ++j) consider({i, j}, best2, knots2);
    }
    SCOPED_TRACE("seed " + std::to_string(seed));
    const auto two = quant::fit_best_knots(x, y, 2, 3, 0.95);
    const auto one = quant::fit_best_knots(x, y, 1, 3, 0.95);
    EXPECT_EQ(two->segments[1].first, knots2[0]);
    EXPECT_EQ(two->segments[2].first, knots2[1]);
    EXPECT_NEAR(two->sse, best2, 1e-12 * best2);
    EXPECT_EQ(one->segments[1].first, knots1[0]);
    EXPECT_NEAR(one->sse, best1, 1e-12 * best1);
    EXPECT_EQ(one->candidates, n - 6 + 1);
  }
}

TEST(SegmentedFit, SecondKnotIsNeededOnlyWhereTheLineBendsTwice) {
  std::vector<double> x, y;
  three_segments(x, y, 5);
  auto one = quant::fit_best_knots(x, y, 1, 3, 0.95), two = quant::fit_best_knots(x, y, 2, 3, 0.95);
  const quant::SecondKnotTest bends = quant::test_second_knot(*one, *two);
  EXPECT_TRUE(bends.needed()) << bends.f << " vs " << bends.threshold;
  EXPECT_NEAR(bends.threshold, two->t * two->t, 1e-12);
  EXPECT_NEAR(bends.f, (one->sse - two->sse) / (two->sse / (40 - 4)), 1e-9 * bends.f);

  // Flat, then one straight rise: the second knot only fits noise.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0.0, 0.1);
  for (std::size_t i = 0; i < x.size(); ++i) {
    y[i] = (x[i] < 20000 ? 2.0 : 2.0 + 1e-4 * (x[i] - 20000)) + noise(rng);
  }
  one = quant::fit_best_knots(x, y, 1, 3, 0.95);
  two = quant::fit_best_knots(x, y, 2, 3, 0.95);
  const quant::SecondKnotTest once = quant::test_second_knot(*one, *two);
  EXPECT_FALSE(once.needed()) << once.f << " vs " << once.threshold;
  EXPECT_GE(once.f, 0.0);
  EXPECT_NEAR(static_cast<double>(one->segments[1].start_step), 20000, 2000);
}

TEST(SegmentedFit, TooFewPointsForTheSegments) {
  const std::vector<double> x{1, 2, 3, 4, 5, 6, 7, 8}, y(8, 1.0);
  EXPECT_FALSE(quant::fit_best_knots(x, y, 2, 3, 0.95).has_value());
  EXPECT_TRUE(quant::fit_best_knots(x, y, 1, 3, 0.95).has_value());
  EXPECT_FALSE(quant::fit_best_knots(x, y, 1, 5, 0.95).has_value());
}

}  // namespace
}  // namespace qf::test
