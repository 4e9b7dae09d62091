// Phase detection on hand-made trajectories whose breakpoints and slopes are known (a gap
// that falls while the model learns, holds, then grows), and on ones that do not show the
// pattern (it must say so, not invent phases). synthetic_phases_test.cpp runs the
// paper-shaped table.
#include "quant_probe/phases.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/errors.h"
#include "synthetic_trajectory.h"
#include "test_support.h"

namespace qf::test {
namespace {

using quant::TrajectoryPoint;

TEST(MovingMedian, CentredWithWindowsCutAtTheEnds) {
  // pandas: Series([5, 1, 4, 2, 3]).rolling(k, center=True, min_periods=1).median()
  EXPECT_EQ(quant::centred_moving_median({5, 1, 4, 2, 3}, 5),
            (std::vector<double>{4, 3, 3, 2.5, 3}));
  EXPECT_EQ(quant::centred_moving_median({5, 1, 4, 2, 3}, 4),
            (std::vector<double>{3, 4, 3, 2.5, 3}));
  EXPECT_EQ(quant::centred_moving_median({5, 1, 4}, 1), (std::vector<double>{5, 1, 4}));
}

// A trajectory like the paper's: the INT4 gap falls while the model learns, holds on a
// plateau, then grows exponentially from `onset`; FP32 perplexity bottoms out at
// `ppl_minimum` and stays nearly flat (a slight rise).
struct HandMade {
  const char* name;
  std::vector<std::int64_t> steps;
  std::int64_t bp1, onset, ppl_minimum;
  double slope1, slope2, slope3;  // of log(gap) per step
  double noise;                   // sd of the log gap's noise
  std::int64_t tolerance;         // breakpoints recovered within this many steps
  const char* why_none;           // for one without a divergence: in the verdict
};

std::vector<std::int64_t> every(std::int64_t from, std::int64_t to, std::int64_t by) {
  std::vector<std::int64_t> s;
  for (std::int64_t v = from; v <= to; v += by) s.push_back(v);
  return s;
}

double hand_made_ppl(const HandMade& c, std::int64_t step) {
  const double x = static_cast<double>(step), m = static_cast<double>(c.ppl_minimum);
  return step <= c.ppl_minimum ? 12.0 + 300.0 / (1.0 + x / 200.0) - 300.0 / (1.0 + m / 200.0)
                               : 12.0 + 1e-6 * (x - m);
}

std::vector<TrajectoryPoint> make(const HandMade& c, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::vector<TrajectoryPoint> out;
  const double g1 = std::log(30.0);  // 30 % at step 0
  for (std::int64_t step : c.steps) {
    const double x = static_cast<double>(step);
    const double at_bp1 = g1 + c.slope1 * static_cast<double>(c.bp1);
    const double at_onset = at_bp1 + c.slope2 * static_cast<double>(c.onset - c.bp1);
    double log_gap = step < c.bp1     ? g1 + c.slope1 * x
                     : step < c.onset ? at_bp1 + c.slope2 * (x - static_cast<double>(c.bp1))
                                      : at_onset + c.slope3 * (x - static_cast<double>(c.onset));
    log_gap += c.noise * noise(rng);
    out.push_back({step, hand_made_ppl(c, step) * (1.0 + 1e-4 * noise(rng)), std::exp(log_gap)});
  }
  return out;
}

// The convergence step by the method's rule on the noise-free perplexity (which falls
// and then barely rises, so its moving median is itself): the first step from 1000 whose
// perplexity is within 1 % of the minimum.
std::int64_t expected_convergence(const HandMade& c) {
  double best = 1e300;
  for (std::int64_t s : c.steps) best = s >= 1000 ? std::min(best, hand_made_ppl(c, s)) : best;
  for (std::int64_t s : c.steps) {
    if (s >= 1000 && hand_made_ppl(c, s) <= 1.01 * best) return s;
  }
  return -1;
}

TEST(PhaseDetection, RecoversKnownBreakpointsOfSyntheticTrajectories) {
  const HandMade cases[] = {
      // The paper's shape on Pythia's 154 steps, without noise: recovered exactly.
      {"pythia, exact", pythia_steps(), 10000, 80000, 77000, -1e-4, 0.0, 5.8e-5, 0.0, 0, ""},
      {"pythia, noise 0.05", pythia_steps(), 10000, 80000, 77000, -1e-4, 0.0, 5.8e-5, 0.05, 3000,
       ""},
      {"pythia, noise 0.15", pythia_steps(), 12000, 90000, 85000, -8e-5, 1e-6, 8e-5, 0.15, 6000,
       ""},
      {"late short divergence", every(1000, 60000, 1000), 8000, 54000, 52000, -1e-4, 0.0, 3e-4,
       0.03, 1000, ""},
      {"sparse checkpoints", every(1000, 41000, 2500), 9000, 26000, 24000, -1.5e-4, 0.0, 1.5e-4,
       0.05, 2500, ""},
  };
  for (const HandMade& c : cases) {
    for (std::uint32_t seed : {1u, 2u, 3u}) {
      SCOPED_TRACE(std::string(c.name) + ", seed " + std::to_string(seed));
      const auto r = quant::detect_phases(make(c, seed), {});
      ASSERT_TRUE(r.fit.has_value());
      EXPECT_NEAR(r.fit->segments[1].start_step, c.bp1, c.tolerance);
      EXPECT_NEAR(r.fit->segments[2].start_step, c.onset, c.tolerance);
      // Not the minimum of the perplexity (a few checkpoints before it, where the
      // median comes within 1 %), to within the median's noise.
      EXPECT_NEAR(*r.fp32_convergence_step, expected_convergence(c),
                  c.steps[c.steps.size() - 1] - c.steps[c.steps.size() - 2]);
      EXPECT_LT(*r.fp32_convergence_step, c.ppl_minimum);
      ASSERT_TRUE(r.divergence_onset_step.has_value()) << r.findings[0];
      // Three segments: the second knot is needed, and only segment 3 rises.
      EXPECT_TRUE(r.second_knot.needed()) << r.second_knot.f;
      EXPECT_EQ(r.onset_knot, 2u);
      EXPECT_EQ(*r.divergence_onset_step, r.fit->segments[2].start_step);
      EXPECT_EQ(*r.lag_steps, *r.divergence_onset_step - *r.fp32_convergence_step);
      // The pre-divergence checkpoint is the one at the onset knot.
      EXPECT_EQ(*r.pre_divergence_step, *r.divergence_onset_step);
      EXPECT_EQ(r.used[r.fit->segments[2].first].step, *r.pre_divergence_step);
      EXPECT_EQ(quant::segment_phases(r),
                (std::vector<std::string>{"rapid_learning", "plateau", "divergence"}));
      EXPECT_NEAR(r.fit->segments[2].slope.value, c.slope3, c.noise > 0 ? 0.35 * c.slope3 : 1e-12);
      if (c.noise == 0) {
        EXPECT_NEAR(r.fit->segments[0].slope.value, c.slope1, 1e-12);
        EXPECT_NEAR(r.fit->segments[1].slope.value, c.slope2, 1e-12);
      }
      EXPECT_EQ(r.findings[0].rfind("Divergence phase from step", 0), 0u) << r.findings[0];
    }
  }
}

TEST(PhaseDetection, NoThirdPhaseIsReportedAsNone) {
  const HandMade cases[] = {
      // The plateau goes on to the end.
      {"endless plateau", pythia_steps(), 10000, 80000, 77000, -1e-4, 0.0, 0.0, 0.05, 0,
       "in the last segment"},
      // The gap turns up at the end of learning and rises steadily on through FP32
      // convergence: no plateau, no change at convergence.
      {"steady rise", every(1000, 100000, 1000), 10000, 50000, 60000, -1e-4, 2e-5, 2e-5, 0.05, 0,
       "while the model is still learning"},
      // The gap turns up at 60000, well before FP32 perplexity converges (~77000).
      {"rise before convergence", every(1000, 100000, 1000), 15000, 60000, 90000, -5e-5, 0.0, 5e-5,
       0.05, 0, "while the model is still learning"},
      // The gap falls at the end.
      {"falling tail", every(1000, 100000, 1000), 10000, 70000, 60000, -1e-4, 0.0, -3e-5, 0.05, 0,
       "in the last segment"},
  };
  for (const HandMade& c : cases) {
    for (std::uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
      SCOPED_TRACE(std::string(c.name) + ", seed " + std::to_string(seed));
      const auto r = quant::detect_phases(make(c, seed), {});
      ASSERT_TRUE(r.fit.has_value());
      EXPECT_TRUE(r.converged_inside);
      EXPECT_FALSE(r.divergence_onset_step.has_value());
      EXPECT_FALSE(r.pre_divergence_step.has_value());
      EXPECT_FALSE(r.lag_steps.has_value());
      EXPECT_EQ(r.findings[0].rfind("No divergence phase, and so no pre-divergence checkpoint", 0),
                0u)
          << r.findings[0];
      EXPECT_NE(r.findings[0].find(c.why_none), std::string::npos) << r.findings[0];
      EXPECT_EQ(quant::segment_phases(r),
                (std::vector<std::string>{"segment_1", "segment_2", "segment_3"}));
    }
  }
}

TEST(PhaseDetection, ConvergenceIsTheFirstCheckpointNearTheMinimumOfAPlateau) {
  // FP32 perplexity comes within 1 % of its final minimum at step 77000 (the crossing is
  // half a checkpoint before), levels off at 90000, then drifts down 0.3 % to the last
  // checkpoint with 0.02 % noise: the median's minimum is near the end, which the old rule
  // took for the convergence step (or for no convergence inside the trajectory).
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0.0, 2e-4);
  std::vector<TrajectoryPoint> points;
  for (std::int64_t step : pythia_steps()) {
    const double s = static_cast<double>(step);
    const double ppl = s < 90000
                           ? 12.0 * (1 + (0.997 * 1.01 - 1) * std::pow((90000 - s) / 13500, 3))
                           : 12.0 * (1 - 0.003 * (s - 90000) / 53000);
    points.push_back({step, ppl * (1 + noise(rng)), 11.0});
  }
  const auto r = quant::detect_phases(points, {});
  const auto lowest = std::min_element(r.smoothed_ppl.begin(), r.smoothed_ppl.end());
  EXPECT_GE(r.used[static_cast<std::size_t>(lowest - r.smoothed_ppl.begin())].step, 130000);
  EXPECT_TRUE(r.converged_inside);
  EXPECT_EQ(r.fp32_convergence_step, 77000);
  EXPECT_NE(r.findings.back().find("FP32 perplexity converges at step 77000: the first checkpoint "
                                   "whose 5-checkpoint moving median is within 1 % of its minimum"),
            std::string::npos)
      << r.findings.back();
  // A wider tolerance moves it earlier, a narrower one later.
  quant::PhaseOptions wide, narrow;
  wide.converged_within_pct = 5;
  narrow.converged_within_pct = 0.5;
  EXPECT_LT(*quant::detect_phases(points, wide).fp32_convergence_step, 70000);
  EXPECT_GT(*quant::detect_phases(points, narrow).fp32_convergence_step, 77000);
}

TEST(PhaseDetection, PerplexityStillFallingAtTheEndMeansNoConvergence) {
  // A clear divergence in the gap, but FP32 perplexity improves to the last checkpoint.
  HandMade c{"no convergence",
             every(1000, 60000, 1000),
             8000,
             40000,
             60000,
             -1e-4,
             0.0,
             2e-4,
             0.02,
             0,
             ""};
  auto points = make(c, 1);
  for (auto& p : points) p.ppl_fp32 = 10.0 + 100.0 / (1.0 + static_cast<double>(p.step) / 1000.0);
  const auto r = quant::detect_phases(points, {});
  EXPECT_EQ(*r.fp32_convergence_step, 60000);
  EXPECT_FALSE(r.converged_inside);
  EXPECT_TRUE(r.rising.back());
  EXPECT_FALSE(r.divergence_onset_step.has_value());
  EXPECT_NE(r.findings[0].find("has not converged inside the trajectory"), std::string::npos)
      << r.findings[0];
}

std::string checkpoints(std::int64_t n) {
  return std::to_string(n) + (n == 1 ? " checkpoint" : " checkpoints");
}

TEST(PhaseDetection, AnOnsetMayPrecedeConvergenceByAtMostTheSlack) {
  // A noise-free log-linear rise from step 77000, whose knot the fit puts exactly there,
  // with FP32 perplexity converging `early` checkpoints after it.
  SyntheticSpec spec;
  for (std::int64_t slack : {0, 4}) {
    for (std::int64_t early = 0; early <= slack + 2; ++early) {
      spec.convergence = spec.onset + 1000 * early;
      quant::PhaseOptions options;
      options.onset_slack = slack;
      SCOPED_TRACE("slack " + std::to_string(slack) + ", onset " + std::to_string(early) +
                   " checkpoints before convergence");
      const auto r = quant::detect_phases(synthetic_trajectory(spec), options);
      ASSERT_EQ(r.fp32_convergence_step, spec.convergence);
      const std::string convergence = std::to_string(spec.convergence);
      if (early > slack) {
        EXPECT_FALSE(r.divergence_onset_step.has_value()) << r.findings[0];
        EXPECT_NE(r.findings[0].find("the gap turns up at step 77000 (one-knot fit"),
                  std::string::npos)
            << r.findings[0];
        EXPECT_NE(r.findings[0].find("), " + checkpoints(early) +
                                     " before FP32 perplexity converges at step " + convergence),
                  std::string::npos)
            << r.findings[0];
        EXPECT_NE(r.findings[0].find("an onset may precede it by at most "
                                     "audit.phases.onset_slack = " +
                                     checkpoints(slack) +
                                     "): it rises while the model is still learning"),
                  std::string::npos)
            << r.findings[0];
        continue;
      }
      ASSERT_TRUE(r.divergence_onset_step.has_value()) << r.findings[0];
      EXPECT_EQ(*r.divergence_onset_step, 77000);
      EXPECT_EQ(*r.pre_divergence_step, 77000);
      EXPECT_EQ(*r.lag_steps, -1000 * early);
      const std::string where =
          early == 0 ? "), 0 steps after the FP32 convergence step " + convergence + ";"
                     : "), " + checkpoints(early) + " before the FP32 convergence step " +
                           convergence + " (lag " + std::to_string(-1000 * early) +
                           " steps; an onset may precede convergence by at most "
                           "audit.phases.onset_slack = " +
                           checkpoints(slack) + ", the slack for the fit's early knot";
      EXPECT_NE(r.findings[0].find(where), std::string::npos) << r.findings[0];
    }
  }
}

TEST(PhaseDetection, UsesOnlyFiniteCheckpointsFromMinStep) {
  HandMade c{"exact", every(0, 40000, 1000), 10000, 25000, 23000, -1e-4, 0.0, 1e-4, 0.0, 0, ""};
  auto points = make(c, 1);
  points[7].ppl_fp32 = std::nan("");  // step 7000: left out
  points.push_back({500, 1e9, 1e9});  // below min_step: left out
  points.push_back({20000, points[20].ppl_fp32, points[20].gap_int4_pct});  // a repeated step
  const auto r = quant::detect_phases(points, {});
  EXPECT_EQ(r.used.front().step, 1000);
  EXPECT_EQ(r.used.size(), 39u);  // 1000..40000 without 7000
  EXPECT_EQ(r.left_out_steps, (std::vector<std::int64_t>{0, 500, 7000, 20000}));
  EXPECT_EQ(*r.divergence_onset_step, 25000);
  EXPECT_NE(r.findings[1].find("1 checkpoint(s) from step 1000 with NaN/Inf"), std::string::npos);
}

TEST(PhaseDetection, GapsAtOrBelowTheFloorAreFlooredNotDropped) {
  // The gap falls to the 0.1 % floor at step 10000, sits at or below it (zero, negative,
  // tiny: all log(0.1)) until 25000, then grows: a flat plateau, knots where they are.
  std::vector<TrajectoryPoint> points;
  const double plateau[] = {0.0, -0.2, 0.05, 0.1};
  for (std::int64_t s = 1000; s <= 40000; s += 1000) {
    const double x = static_cast<double>(s);
    const double gap = s < 10000   ? 0.1 * std::exp(1e-4 * (10000 - x))
                       : s < 25000 ? plateau[s / 1000 % 4]
                                   : 0.1 * std::exp(1e-4 * (x - 25000));
    points.push_back({s, 10.0 + 1e-9 * (x - 20000) * (x - 20000), gap});
  }
  const auto r = quant::detect_phases(points, {});
  ASSERT_TRUE(r.fit.has_value());
  EXPECT_EQ(r.fit->segments[1].start_step, 10000);
  EXPECT_EQ(r.fit->segments[2].start_step, 25000);
  EXPECT_NEAR(r.fit->segments[1].slope.value, 0.0, 1e-15);
  EXPECT_EQ(r.used.size(), 40u);
  ASSERT_TRUE(r.divergence_onset_step.has_value()) << r.findings[0];
  EXPECT_EQ(*r.divergence_onset_step, 25000);
}

TEST(PhaseDetection, NonsensePerplexitiesStillGetAVerdict) {
  // A table from elsewhere may hold perplexities <= 0 (found by the fuzzer: the search
  // for the first checkpoint near a negative minimum ran off the end).
  std::vector<TrajectoryPoint> points;
  for (std::int64_t s = 1000; s <= 12000; s += 1000) {
    points.push_back({s, -static_cast<double>(s % 5000), 11.0});
  }
  const auto r = quant::detect_phases(points, {});
  ASSERT_TRUE(r.fp32_convergence_step.has_value());
  EXPECT_GE(*r.fp32_convergence_step, 1000);
  EXPECT_LE(*r.fp32_convergence_step, 12000);
  EXPECT_FALSE(r.divergence_onset_step.has_value());
  EXPECT_EQ(r.findings[0].rfind("No divergence phase", 0), 0u) << r.findings[0];
}

TEST(PhaseDetection, TooFewCheckpointsForThreeSegments) {
  HandMade c{"short", every(1000, 8000, 1000), 3000, 6000, 5000, -1e-4, 0.0, 1e-4, 0.0, 0, ""};
  const auto r = quant::detect_phases(make(c, 1), {});
  EXPECT_FALSE(r.fit.has_value());
  EXPECT_FALSE(r.divergence_onset_step.has_value());
  EXPECT_NE(
      r.findings[0].find("too few checkpoints from step 1000 to fit three segments (8, need 9)"),
      std::string::npos)
      << r.findings[0];
}

TEST(PhaseDetection, OptionsAreValidated) {
  for (auto bad :
       {quant::PhaseOptions{1000, 0, 0.1, 3, 0.95, 2},
        quant::PhaseOptions{1000, 5, 0.0, 3, 0.95, 2},
        quant::PhaseOptions{1000, 5, 0.1, 2, 0.95, 2}, quant::PhaseOptions{1000, 5, 0.1, 3, 1.0, 2},
        quant::PhaseOptions{1000, 5, 0.1, 3, 0.95, -1},
        quant::PhaseOptions{1000, 5, 0.1, 3, 0.95, 1, -1}}) {
    EXPECT_FALSE(message_of<ConfigError>([&] { quant::validate(bad); }).empty());
  }
}

}  // namespace
}  // namespace qf::test
