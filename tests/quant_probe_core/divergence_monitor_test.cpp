// The online divergence monitor: Theil–Sen by hand, the probe at which it fires on a
// diverging sequence (derived below, not measured), and silence on flat, noisy, creeping
// and still-learning ones — the recorded fixture trajectory among them.
#include "quant_probe/divergence_monitor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "core/errors.h"
#include "quant_probe/trajectory_table.h"
#include "synthetic_trajectory.h"
#include "test_support.h"

namespace qf::test {
namespace {

using quant::MonitorOptions;
using quant::MonitorPoint;
using quant::MonitorReading;

std::vector<std::int64_t> fired_steps(const std::vector<MonitorReading>& readings) {
  std::vector<std::int64_t> steps;
  for (const auto& r : readings) {
    if (r.fires) steps.push_back(r.step);
  }
  return steps;
}

// Probes every 100 steps; ln(gap) flat at ln 2 up to probe `onset`, then rising by
// `rise_per_probe` each probe; FP32 perplexity falling by `ppl_fall_per_probe` (relative)
// each probe.
std::vector<MonitorPoint> hinge(int probes, int onset, double rise_per_probe,
                                double ppl_fall_per_probe = 0.0) {
  std::vector<MonitorPoint> points;
  for (int i = 0; i < probes; ++i) {
    const double log_gap = std::log(2.0) + rise_per_probe * std::max(0, i - onset);
    points.push_back({100 * static_cast<std::int64_t>(i),
                      10.0 * std::pow(1.0 - ppl_fall_per_probe, i), std::exp(log_gap)});
  }
  return points;
}

TEST(TheilSen, MedianOfPairwiseSlopes) {
  // Pairwise slopes of (0,0) (1,1) (2,2) (3,30): 1, 1, 10, 1, 14.5, 28 -> median 5.5 of
  // the middle two (1 and 10); the outlier moves it, but far less than least squares' 9.1.
  EXPECT_DOUBLE_EQ(quant::theil_sen_slope({0, 1, 2, 3}, {0, 1, 2, 30}), 5.5);
  // Five points, one outlier: 10 slopes, of which 6 are exactly 2 -> median 2.
  EXPECT_DOUBLE_EQ(quant::theil_sen_slope({0, 1, 2, 3, 4}, {0, 2, 4, 6, -50}), 2.0);
  // Odd count: (0,0) (1,3) (3,4): slopes 3, 4/3, 1/2 -> 4/3. Unequal spacing counts.
  EXPECT_DOUBLE_EQ(quant::theil_sen_slope({0, 1, 3}, {0, 3, 4}), 4.0 / 3.0);
  // Repeated x are skipped; fewer than two distinct x is NaN.
  EXPECT_DOUBLE_EQ(quant::theil_sen_slope({0, 0, 2}, {1, 5, 3}), 0.5 * (1.0 + -1.0));
  EXPECT_TRUE(std::isnan(quant::theil_sen_slope({1, 1}, {0, 5})));
}

TEST(DivergenceMonitor, FiresAtTheDerivedProbeOnAHinge) {
  // Window 6 (5 intervals), threshold 0.3: fires when the median pairwise slope is at
  // least 0.06 per probe. ln(gap) rises 0.15 per probe after the onset. With j probes past
  // the onset in the window, the 15 pairwise slopes are:
  //   j = 1: ten 0s and five of 0.15/d -> median 0: quiet;
  //   j = 2: six 0s, 0.0375, 0.05, 0.06, 0.075, 0.075, 0.1, 0.15 x3 -> median 0.05: rise
  //          0.25, quiet;
  //   j = 3: three 0s, 0.05, 0.075, 0.075, 0.09, 0.1, 0.1125, 0.15 x6 -> median 0.1:
  //          rise 0.5, fires.
  MonitorOptions o;
  o.window = 6;
  o.min_probes = 6;
  const auto readings = quant::replay_monitor(hinge(40, 20, 0.15), o);
  ASSERT_EQ(readings.size(), 40u);
  EXPECT_DOUBLE_EQ(readings[21].gap_rise, 0.0);
  EXPECT_NEAR(readings[22].gap_rise, 0.25, 1e-12);
  EXPECT_NEAR(readings[23].gap_rise, 0.5, 1e-12);
  EXPECT_EQ(fired_steps(readings), (std::vector<std::int64_t>{2300}));
  // It keeps holding while the gap rises: one event, not one per probe.
  EXPECT_TRUE(readings[30].condition);
  EXPECT_FALSE(readings[30].fires);
  EXPECT_DOUBLE_EQ(readings[30].fp32_change_pct, 0.0);
  // Undecided until the window is full.
  EXPECT_FALSE(readings[4].decided);
  EXPECT_TRUE(readings[5].decided);
}

TEST(DivergenceMonitor, SilentWhileFp32StillImproves) {
  MonitorOptions o;
  o.window = 6;
  o.min_probes = 6;
  // FP32 falls 0.5 % per probe: ~2.5 % across the window, more than the 1 % tolerance.
  EXPECT_TRUE(fired_steps(quant::replay_monitor(hinge(40, 20, 0.15, 0.005), o)).empty());
  // 0.1 % per probe (0.5 % across the window) is no longer improving: it fires as before.
  const auto readings = quant::replay_monitor(hinge(40, 20, 0.15, 0.001), o);
  EXPECT_EQ(fired_steps(readings), (std::vector<std::int64_t>{2300}));
  EXPECT_NEAR(readings[23].fp32_change_pct, 100.0 * (std::pow(0.999, 5) - 1.0), 1e-9);
}

TEST(DivergenceMonitor, SilentOnFlatNoisyAndCreepingGaps) {
  const MonitorOptions o;  // the defaults: window 10, threshold 0.3
  // Flat at 2 % with noise of sd 0.05 on ln(gap): the rise across 10 probes has an sd of
  // ~0.06, so 0.3 is five of them.
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(0.0, 0.05);
  std::vector<MonitorPoint> flat;
  for (int i = 0; i < 300; ++i) flat.push_back({100 * i, 10.0, 2.0 * std::exp(noise(rng))});
  EXPECT_TRUE(fired_steps(quant::replay_monitor(flat, o)).empty());
  // Creeping: ln(gap) rises 0.03 per probe (0.27 across the window), FP32 flat.
  const auto creeping = quant::replay_monitor(hinge(100, 0, 0.03), o);
  EXPECT_TRUE(fired_steps(creeping).empty());
  EXPECT_NEAR(creeping.back().gap_rise, 0.27, 1e-9);
  // Gaps at or below the floor (zero, negative) are the floor: flat, whatever they do.
  std::vector<MonitorPoint> tiny;
  for (int i = 0; i < 30; ++i) tiny.push_back({100 * i, 10.0, (i % 3 == 0) ? -0.5 : 0.003 * i});
  EXPECT_TRUE(fired_steps(quant::replay_monitor(tiny, o)).empty());
}

TEST(DivergenceMonitor, FiresAgainAfterAQuietSpellAndSkipsNonFiniteWindows) {
  MonitorOptions o;
  o.window = 6;
  o.min_probes = 6;
  // Up, flat long enough for the window to go quiet, up again: two events.
  std::vector<MonitorPoint> points;
  double log_gap = 0;
  for (int i = 0; i < 60; ++i) {
    if ((i >= 10 && i < 20) || i >= 40) log_gap += 0.15;
    points.push_back({100 * i, 10.0, std::exp(log_gap)});
  }
  const auto steps = fired_steps(quant::replay_monitor(points, o));
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0], 1200);  // the third rising probe, as in the hinge
  EXPECT_EQ(steps[1], 4200);
  // A NaN probe leaves every window that holds it undecided.
  points[25].gap_pct = std::nan("");
  const auto readings = quant::replay_monitor(points, o);
  EXPECT_FALSE(readings[25].decided);
  EXPECT_FALSE(readings[30].decided);
  EXPECT_TRUE(readings[31].decided);
}

TEST(DivergenceMonitor, PaperShapedTrajectoryFiresSoonAfterTheOnset) {
  // Pythia's checkpoints every 1000 steps; the gap flat at 11 % to step 77000, then
  // log-linear to 517 % at 143000 (0.058 per checkpoint: 0.52 across 10), FP32 converged
  // at 77000. With the defaults the rise across the window passes 0.3 once most of the 10
  // probes are past the onset (measured: 86000, 9 checkpoints after it).
  SyntheticSpec spec;
  spec.log_gap_noise = 0.05;
  const auto points = synthetic_trajectory(spec);
  std::vector<MonitorPoint> monitored;
  for (const auto& p : points) {
    if (p.step >= 1000) monitored.push_back({p.step, p.ppl_fp32, p.gap_int4_pct});
  }
  const auto steps = fired_steps(quant::replay_monitor(monitored, MonitorOptions{}));
  ASSERT_FALSE(steps.empty());
  std::printf("monitor (defaults) on the paper-shaped trajectory, onset 77000: fires at %lld\n",
              static_cast<long long>(steps.front()));
  EXPECT_GT(steps.front(), 77000);
  EXPECT_LE(steps.front(), 88000);
  // Never during the plateau, and a rise that keeps going is one event.
  EXPECT_EQ(steps.size(), 1u);
  // Without the rise, nothing.
  spec.diverges = false;
  monitored.clear();
  for (const auto& p : synthetic_trajectory(spec)) {
    if (p.step >= 1000) monitored.push_back({p.step, p.ppl_fp32, p.gap_int4_pct});
  }
  EXPECT_TRUE(fired_steps(quant::replay_monitor(monitored, MonitorOptions{})).empty());
}

TEST(DivergenceMonitor, SilentOnTheRecordedCreepingTrajectory) {
  // The fixture's 0.46M model: the INT4 gap creeps from ~0.5 % to ~2 % while FP32
  // perplexity keeps improving (method.md). Its gap does rise across the last windows,
  // but FP32 falls by more than the tolerance in every one of them.
  QF_REQUIRE_FIXTURE("trajectory");
  const auto rows =
      quant::read_trajectory_table(fixtures_dir() / "trajectory" / "probe_reference.csv");
  const auto readings =
      quant::replay_monitor(quant::monitor_points(rows, "gap_int4_pct"), MonitorOptions{});
  ASSERT_EQ(readings.size(), 22u);
  EXPECT_TRUE(fired_steps(readings).empty());
  EXPECT_TRUE(readings.back().decided);
  EXPECT_TRUE(readings.back().gap_rising);
  EXPECT_FALSE(readings.back().fp32_stalled);
  EXPECT_LT(readings.back().fp32_change_pct, -1.0);
}

TEST(DivergenceMonitor, OptionsAreValidated) {
  const auto error = [](auto change) {
    MonitorOptions o;
    change(o);
    return message_of<ConfigError>([&] { quant::validate(o); });
  };
  EXPECT_NE(error([](MonitorOptions& o) { o.metric = "ppl_int4"; }).find("monitor.metric"),
            std::string::npos);
  EXPECT_NE(error([](MonitorOptions& o) { o.window = 2; }).find("monitor.window"),
            std::string::npos);
  EXPECT_NE(error([](MonitorOptions& o) { o.min_probes = 11; }).find("monitor.min_probes"),
            std::string::npos);
  EXPECT_NE(error([](MonitorOptions& o) { o.slope_threshold = 0; }).find("slope_threshold"),
            std::string::npos);
  EXPECT_NE(error([](MonitorOptions& o) { o.gap_floor_pct = -1; }).find("gap_floor_pct"),
            std::string::npos);
}

}  // namespace
}  // namespace qf::test
