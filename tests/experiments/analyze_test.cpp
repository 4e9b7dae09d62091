// analyze() on run files written by the real writer from the scipy fixture's numbers:
// pairing by (seed, step), phase filters, the final probe, and rows without a partner.
#include "experiments/analyze.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/config.h"
#include "core/errors.h"
#include "run_builder.h"
#include "test_support.h"

namespace qf::experiments {
namespace {

using testing::load_stats_cases;
using testing::stats_case;

void expect_rel(double got, const nlohmann::json& want, const char* what) {
  const double w = want.get<double>();
  EXPECT_LE(std::fabs(got - w), 1e-9 * std::fabs(w)) << what << ": got " << got << ", want " << w;
}

const Comparison& find(const Analysis& a, const std::string& arm) {
  for (const auto& c : a.comparisons) {
    if (c.arm == arm) return c;
  }
  throw std::runtime_error("no comparison for " + arm);
}

AnalyzeOptions options_with(const std::vector<std::string>& sets) {
  ConfigSchema schema;
  declare_analyze_config(schema);
  ConfigLoader loader(schema);
  for (const auto& s : sets) loader.add_override(s);
  return analyze_options(loader.resolve());
}

class AnalyzeFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    QF_REQUIRE_FIXTURE("stats/ttests.json");
    cases_ = load_stats_cases();
  }
  Analysis run(const std::vector<testing::Skip>& skip = {},
               const std::vector<std::string>& sets = {}) {
    testing::write_fixture_experiment(dir_.path(), cases_, skip);
    return analyze_inputs({dir_.path().string()}, options_with(sets));
  }
  qf::test::TempDir dir_;
  nlohmann::json cases_;
};

TEST_F(AnalyzeFixture, OliSettledProbesReproduceScipysPairedTest) {
  const Analysis a = run();
  EXPECT_EQ(a.metric, "gap_int4_pct");
  EXPECT_EQ(a.baseline, "cosine");
  ASSERT_EQ(a.comparisons.size(), 2u);
  EXPECT_EQ(a.comparisons[0].arm, "oli");  // every other arm, sorted by name
  EXPECT_EQ(a.runs.size(), 9u);
  EXPECT_TRUE(a.warnings.empty()) << a.warnings.front();

  const Comparison& oli = find(a, "oli");
  ASSERT_EQ(oli.phase_filter.size(), 1u);
  EXPECT_EQ(oli.phase_filter[0].str(), "cool:last");
  const nlohmann::json n9 = stats_case(cases_, "n9_oli_like"),
                       n3 = stats_case(cases_, "n3_exact_small");
  const nlohmann::json& want = n9["paired"];
  EXPECT_EQ(oli.paired.n, 9u);
  expect_rel(oli.paired.mean_diff, want["mean_diff"], "mean_diff");
  expect_rel(oli.paired.sd_diff, want["sd_diff"], "sd_diff");
  expect_rel(oli.paired.t, want["t"], "t");
  expect_rel(oli.paired.df, want["df"], "df");
  expect_rel(oli.paired.p_two_sided, want["p_two_sided"], "p");
  expect_rel(oli.paired.ci95[0], want["ci95"][0], "ci low");
  expect_rel(oli.paired.ci95[1], want["ci95"][1], "ci high");
  expect_rel(oli.paired.cohens_dz, want["cohens_dz"], "d_z");
  const std::vector<std::pair<std::int64_t, std::int64_t>> pairs = {
      {1, 299}, {1, 599}, {1, 899}, {2, 299}, {2, 599}, {2, 899}, {3, 299}, {3, 599}, {3, 899}};
  EXPECT_EQ(oli.pairs, pairs);

  ASSERT_TRUE(oli.final_step.has_value());
  EXPECT_EQ(*oli.final_step, 900);
  const nlohmann::json& welch = n3["welch"];
  EXPECT_EQ(oli.welch_final.n_arm, 3u);
  EXPECT_EQ(oli.welch_final.n_baseline, 3u);
  expect_rel(oli.welch_final.t, welch["t"], "welch t");
  expect_rel(oli.welch_final.df, welch["df"], "welch df");
  expect_rel(oli.welch_final.p_two_sided, welch["p_two_sided"], "welch p");
  EXPECT_EQ(oli.wins.wins, 6u);  // [1, 2, 4] against [2, 2.5, 6]
  EXPECT_EQ(oli.wins.ties, 1u);
  EXPECT_EQ(oli.wins.total, 9u);
  EXPECT_TRUE(oli.unpaired.empty());
  EXPECT_EQ(oli.baseline, "cosine");
  // The default control is absent from these runs: said in a note, not a warning.
  ASSERT_EQ(a.notes.size(), 1u);
  EXPECT_NE(a.notes[0].find("no run has arm 'cosine_matched'"), std::string::npos) << a.notes[0];
}

// The run-level test: each seed's three settled differences averaged, then the paired
// test over the three seeds (method.md), i.e. ttest_rel of the per-seed means.
TEST_F(AnalyzeFixture, RunLevelTestIsOverSeedMeans) {
  const Analysis a = run();
  const Comparison& oli = find(a, "oli");
  const nlohmann::json n9 = stats_case(cases_, "n9_oli_like");
  std::vector<double> arm_means(3), base_means(3);
  for (std::size_t s = 0; s < 3; ++s) {
    for (std::size_t k = 0; k < 3; ++k) {
      arm_means[s] += n9["arm"][s * 3 + k].get<double>() / 3;
      base_means[s] += n9["baseline"][s * 3 + k].get<double>() / 3;
    }
  }
  const PairedTTest want = paired_t_test(arm_means, base_means);
  ASSERT_TRUE(oli.paired_runs.has_value()) << oli.paired_runs_absent;
  const PairedTTest& got = *oli.paired_runs;
  EXPECT_EQ(got.n, 3u);
  EXPECT_EQ(got.df, 2);
  // (statistics_test holds every field of the two together; these tell the levels apart.)
  EXPECT_NEAR(got.t, want.t, 1e-12 * std::fabs(want.t));
  EXPECT_NEAR(got.p_two_sided, want.p_two_sided, 1e-12 * want.p_two_sided);
  EXPECT_NEAR(got.sd_diff, want.sd_diff, 1e-12 * want.sd_diff);
  // Fewer degrees of freedom than the probe-level test: a wider interval.
  EXPECT_GT(got.ci95[1] - got.ci95[0], oli.paired.ci95[1] - oli.paired.ci95[0]);
  ASSERT_EQ(oli.seed_means.size(), 3u);
  EXPECT_EQ(oli.seed_means[2].cluster, 3);
  EXPECT_EQ(oli.seed_means[2].pairs, 3u);
  EXPECT_NEAR(oli.seed_means[2].mean_diff, arm_means[2] - base_means[2], 1e-12);
}

// Seeds with 1, 2 and 3 probe pairs whose per-seed mean differences are scipy case
// n5_positive's d_s: the run-level test is scipy's ttest_rel of that case.
TEST(AnalyzeRunLevel, UnbalancedSeedsReproduceScipy) {
  QF_REQUIRE_FIXTURE("stats/ttests.json");
  const nlohmann::json c = stats_case(load_stats_cases(), "n5_positive");
  const std::vector<std::vector<double>> offsets = {{0}, {0.5, -0.5}, {0.5, -0.25, -0.25}};
  qf::test::TempDir dir;
  std::size_t pairs = 0;
  for (std::size_t s = 0; s < c["arm"].size(); ++s) {
    std::vector<testing::Probe> arm, base;
    for (std::size_t j = 0; j < offsets[s % 3].size(); ++j, ++pairs) {
      const auto step = static_cast<std::int64_t>(100 * j);
      arm.push_back({step, "decay", 0, c["arm"][s].get<double>() + offsets[s % 3][j]});
      base.push_back({step, "decay", 0, c["baseline"][s].get<double>()});
    }
    const auto seed = static_cast<std::int64_t>(s + 1);
    testing::write_run(dir / ("oli" + std::to_string(seed)) / "run.h5", "oli", seed, arm);
    testing::write_run(dir / ("cos" + std::to_string(seed)) / "run.h5", "cosine", seed, base);
  }
  const Analysis a = analyze_inputs({dir.path().string()}, AnalyzeOptions{});
  ASSERT_EQ(a.comparisons.size(), 1u);
  const Comparison& oli = a.comparisons[0];
  EXPECT_EQ(oli.paired.n, pairs);
  ASSERT_TRUE(oli.paired_runs.has_value());
  const nlohmann::json& want = c["paired"];
  EXPECT_EQ(oli.paired_runs->n, 5u);
  expect_rel(oli.paired_runs->mean_diff, want["mean_diff"], "mean_diff");
  expect_rel(oli.paired_runs->sd_diff, want["sd_diff"], "sd_diff");
  expect_rel(oli.paired_runs->t, want["t"], "t");
  expect_rel(oli.paired_runs->df, want["df"], "df");
  expect_rel(oli.paired_runs->p_two_sided, want["p_two_sided"], "p");
  expect_rel(oli.paired_runs->ci95[0], want["ci95"][0], "ci low");
  expect_rel(oli.paired_runs->ci95[1], want["ci95"][1], "ci high");
  expect_rel(oli.paired_runs->cohens_dz, want["cohens_dz"], "d_z");
}

TEST(AnalyzeRunLevel, OneSeedHasNoRunLevelTest) {
  qf::test::TempDir dir;
  testing::write_run(dir / "c" / "run.h5", "cosine", 4, {{0, "d", 0, 1.0}, {1, "d", 0, 2.0}});
  testing::write_run(dir / "o" / "run.h5", "oli", 4, {{0, "d", 0, 0.5}, {1, "d", 0, 1.0}});
  const Analysis a = analyze_inputs({dir.path().string()}, AnalyzeOptions{});
  const Comparison& c = a.comparisons.at(0);
  EXPECT_EQ(c.paired.n, 2u);
  EXPECT_FALSE(c.paired_runs.has_value());
  EXPECT_EQ(c.paired_runs_absent,
            "only seed 4 has matched probe pairs; a test over seeds needs at least 2");
  ASSERT_EQ(c.seed_means.size(), 1u);
  EXPECT_DOUBLE_EQ(c.seed_means[0].mean_diff, -0.75);
  bool warned = false;
  for (const auto& w : a.warnings) warned |= w.find("no run-level test") != std::string::npos;
  EXPECT_TRUE(warned);
}

// OLI is compared with cosine and with its control cosine_matched (cosine + 0.5 at every
// step, so oli − cosine_matched = (oli − cosine) − 0.5 on the same settled rows).
TEST_F(AnalyzeFixture, ControlArmIsComparedWithItsOwnBaseline) {
  testing::write_fixture_control(dir_.path(), cases_, 0.5);
  const Analysis a = run();
  ASSERT_EQ(a.comparisons.size(), 4u);
  std::vector<std::pair<std::string, std::string>> order;
  for (const auto& c : a.comparisons) order.emplace_back(c.arm, c.baseline);
  const std::vector<std::pair<std::string, std::string>> want_order = {{"cosine_matched", "cosine"},
                                                                       {"oli", "cosine"},
                                                                       {"sgdr", "cosine"},
                                                                       {"oli", "cosine_matched"}};
  EXPECT_EQ(order, want_order);
  EXPECT_TRUE(a.notes.empty());
  EXPECT_EQ(a.baseline, "cosine");  // the primary baseline

  const Comparison& control = a.comparisons[3];
  const nlohmann::json n9 = stats_case(cases_, "n9_oli_like")["paired"];
  ASSERT_EQ(control.phase_filter.size(), 1u);  // oli's own rows: its settled points
  EXPECT_EQ(control.paired.n, 9u);
  EXPECT_NEAR(control.paired.mean_diff, n9["mean_diff"].get<double>() - 0.5, 1e-12);
  expect_rel(control.paired.sd_diff, n9["sd_diff"], "sd_diff");
  ASSERT_TRUE(control.paired_runs.has_value());
  EXPECT_NEAR(control.paired_runs->mean_diff, find(a, "oli").paired_runs->mean_diff - 0.5, 1e-12);
  EXPECT_EQ(control.final_step, 900);
  EXPECT_EQ(control.wins.total, 9u);
  // cosine_matched is an arm too: against cosine every difference is 0.5.
  EXPECT_NEAR(a.comparisons[0].paired.mean_diff, 0.5, 1e-12);
}

TEST_F(AnalyzeFixture, ControlsAreConfigured) {
  testing::write_fixture_control(dir_.path(), cases_, 0.5);
  // Dropped: no comparison against the control.
  const Analysis none = run({}, {"analyze.controls.oli=[]"});
  EXPECT_EQ(none.comparisons.size(), 3u);
  // The control is the baseline: compared once, with a note.
  const Analysis same =
      analyze_inputs({dir_.path().string()}, options_with({"analyze.baseline=cosine_matched"}));
  EXPECT_EQ(same.comparisons.size(), 3u);
  ASSERT_EQ(same.notes.size(), 1u);
  EXPECT_NE(same.notes[0].find("is the baseline"), std::string::npos) << same.notes[0];
  // sgdr against two controls, one of them missing.
  const Analysis two =
      analyze_inputs({dir_.path().string()},
                     options_with({"analyze.controls.sgdr=[oli, wsd]", "analyze.arms=[sgdr]"}));
  ASSERT_EQ(two.comparisons.size(), 2u);
  EXPECT_EQ(two.comparisons[1].arm, "sgdr");
  EXPECT_EQ(two.comparisons[1].baseline, "oli");
  ASSERT_EQ(two.notes.size(), 1u);
  EXPECT_NE(two.notes[0].find("'sgdr' vs control 'wsd'"), std::string::npos) << two.notes[0];
}

TEST_F(AnalyzeFixture, UnfilteredArmPairsEveryProbe) {
  const Analysis a = run();
  const Comparison& sgdr = find(a, "sgdr");
  EXPECT_TRUE(sgdr.phase_filter.empty());
  EXPECT_EQ(sgdr.paired.n, 30u);  // 3 seeds x 10 probes
  // sgdr - cosine = 1 + 0.01 * seed * step / 100 off the final step.
  EXPECT_GT(sgdr.paired.mean_diff, 1.0);
  EXPECT_EQ(sgdr.wins.wins, 0u);  // the paper's 0/9
  EXPECT_EQ(sgdr.wins.total, 9u);
}

TEST_F(AnalyzeFixture, PhaseFilterChoosesTheRows) {
  const Analysis all = run({}, {"analyze.phase_filter.oli=all"});
  EXPECT_EQ(find(all, "oli").paired.n, 30u);
  EXPECT_TRUE(find(all, "oli").phase_filter.empty());

  qf::test::TempDir other;
  testing::write_fixture_experiment(other.path(), cases_);
  const Analysis cool =
      analyze_inputs({other.path().string()}, options_with({"analyze.phase_filter.oli=[cool]"}));
  EXPECT_EQ(find(cool, "oli").paired.n, 18u);  // cool rows at 100, 299, 400, 599, 700, 899
  const Analysis bump =
      analyze_inputs({other.path().string()}, options_with({"analyze.phase_filter.oli=bump:last"}));
  // Bumps 0-2 are probed at 0, 300, 600 only, whose next probes (100, 400, 700) are not
  // the next step: their end is unknown and said so. Bump 3 ends with the run at 900.
  EXPECT_EQ(find(bump, "oli").paired.n, 3u);
  EXPECT_EQ(find(bump, "oli").unpaired.size(), 9u);
  EXPECT_EQ(find(bump, "oli").pairs.back(), std::make_pair(std::int64_t{3}, std::int64_t{900}));
}

TEST_F(AnalyzeFixture, RowsWithoutPartnerAreReportedNotDropped) {
  // oli's seed 3 never ran; cosine seed 2 lost its probe at step 599.
  const Analysis a = run({{"oli", 3, -1}, {"cosine", 2, 599}});
  const Comparison& oli = find(a, "oli");
  EXPECT_EQ(oli.paired.n, 5u);  // 9 - 3 (seed 3) - 1 (seed 2, step 599)
  ASSERT_EQ(oli.unpaired.size(), 11u);
  std::size_t seed3 = 0;
  for (const auto& u : oli.unpaired) {
    if (u.seed == 3) {
      ++seed3;
      EXPECT_EQ(u.arm, "cosine");
      EXPECT_EQ(u.reason, "no oli run with seed 3");
    } else {
      EXPECT_EQ(u.arm, "oli");
      EXPECT_EQ(u.seed, 2);
      EXPECT_EQ(u.step, 599);
      EXPECT_EQ(u.reason, "no cosine probe at step 599");
    }
  }
  EXPECT_EQ(seed3, 10u);
  EXPECT_EQ(oli.welch_final.n_arm, 2u);
  EXPECT_EQ(oli.welch_final.n_baseline, 3u);
  ASSERT_EQ(find(a, "sgdr").unpaired.size(), 1u);
  EXPECT_EQ(find(a, "sgdr").unpaired[0].arm, "sgdr");
  bool warned = false;
  for (const auto& w : a.warnings)
    warned |= w.find("arm 'oli'") != std::string::npos &&
              w.find("11 probe row(s) cannot be paired") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST_F(AnalyzeFixture, NoCommonFinalStepIsSaid) {
  // Remove step 900 from one cosine run: the final probe becomes step 899.
  const Analysis a = run({{"cosine", 1, 900}});
  EXPECT_EQ(*find(a, "oli").final_step, 899);
}

TEST_F(AnalyzeFixture, UnknownArmsAndBaselineAreConfigErrors) {
  testing::write_fixture_experiment(dir_.path(), cases_);
  std::vector<std::string> w;
  const auto runs = load_runs(find_run_files({dir_.path().string()}), "gap_int4_pct", false, w);
  AnalyzeOptions o;
  o.baseline = "constant";
  const std::string m = qf::test::message_of<ConfigError>([&] { analyze(runs, o); });
  EXPECT_NE(m.find("'constant'"), std::string::npos) << m;
  EXPECT_NE(m.find("cosine, oli, sgdr"), std::string::npos) << m;
  o.baseline = "cosine";
  o.arms = {"wsd"};
  EXPECT_NE(qf::test::message_of<ConfigError>([&] { analyze(runs, o); }).find("'wsd'"),
            std::string::npos);
  o.arms = {};
  o.metric = "phase";
  EXPECT_NE(qf::test::message_of<ConfigError>([&] { analyze(runs, o); }).find("gap_int8_pct"),
            std::string::npos);
}

TEST(AnalyzeConfig, PhaseFilterEntries) {
  const AnalyzeOptions d = options_with({});
  ASSERT_EQ(d.phase_filter.at("oli").size(), 1u);
  EXPECT_EQ(d.phase_filter.at("oli")[0].phase, "cool");
  EXPECT_TRUE(d.phase_filter.at("oli")[0].last);
  const AnalyzeOptions two = options_with({"analyze.phase_filter.sgdr=[cycle, warmup:last]"});
  ASSERT_EQ(two.phase_filter.at("sgdr").size(), 2u);
  EXPECT_EQ(two.phase_filter.at("sgdr")[1].str(), "warmup:last");
  EXPECT_EQ(two.phase_filter.count("oli"), 1u);  // blocks merge key by key

  const std::string bad = qf::test::message_of<ConfigError>(
      [] { options_with({"analyze.phase_filter.oli=cool:first"}); });
  EXPECT_NE(bad.find("analyze.phase_filter.oli"), std::string::npos) << bad;
  EXPECT_NE(bad.find("cool:first"), std::string::npos) << bad;
  const std::string metric =
      qf::test::message_of<ConfigError>([] { options_with({"analyze.metric=gap_int3_pct"}); });
  EXPECT_NE(metric.find("analyze.metric"), std::string::npos) << metric;
  EXPECT_NE(metric.find("gap_int3_pct"), std::string::npos) << metric;
  EXPECT_NE(qf::test::message_of<ConfigError>([] {
              options_with({"analyze.phase_filter.oli=[all, cool]"});
            }).find("'all' cannot be combined"),
            std::string::npos);
}

TEST(AnalyzeConfig, ControlsEntries) {
  const AnalyzeOptions d = options_with({});
  EXPECT_EQ(d.controls.at("oli"), std::vector<std::string>{"cosine_matched"});
  EXPECT_EQ(d.controls, AnalyzeOptions{}.controls);  // the struct's default is the config's
  const AnalyzeOptions two = options_with({"analyze.controls.sgdr=[cosine_matched, oli]"});
  EXPECT_EQ(two.controls.at("sgdr"), (std::vector<std::string>{"cosine_matched", "oli"}));
  EXPECT_EQ(two.controls.count("oli"), 1u);  // blocks merge key by key
  EXPECT_EQ(options_with({"analyze.controls.oli=[]"}).controls.count("oli"), 0u);
  const std::string self =
      qf::test::message_of<ConfigError>([] { options_with({"analyze.controls.oli=oli"}); });
  EXPECT_NE(self.find("analyze.controls.oli"), std::string::npos) << self;
  EXPECT_NE(self.find("its own control"), std::string::npos) << self;
  const std::string block =
      qf::test::message_of<ConfigError>([] { options_with({"analyze.controls.oli={a: b}"}); });
  EXPECT_NE(block.find("analyze.controls.oli"), std::string::npos) << block;
  const std::string scalar =
      qf::test::message_of<ConfigError>([] { options_with({"analyze.controls=cosine"}); });
  EXPECT_NE(scalar.find("expected a map from arm to arm names"), std::string::npos) << scalar;
}

TEST(AnalyzeInputs, MissingAndEmptyInputsAreUsageErrors) {
  qf::test::TempDir dir;
  EXPECT_NE(qf::test::message_of<UsageError>([] { find_run_files({}); }).find("no run files"),
            std::string::npos);
  const std::string empty =
      qf::test::message_of<UsageError>([&] { find_run_files({dir.path().string()}); });
  EXPECT_NE(empty.find(dir.path().string()), std::string::npos) << empty;
  EXPECT_NE(qf::test::message_of<UsageError>([&] {
              find_run_files({(dir / "nope").string()});
            }).find("does not exist"),
            std::string::npos);
}

TEST(AnalyzeInputs, SameArmAndSeedTwiceIsAnError) {
  qf::test::TempDir dir;
  testing::write_run(dir / "a" / "run.h5", "oli", 1, {{0, "bump", 0, 1.0}});
  testing::write_run(dir / "b" / "run.h5", "oli", 1, {{0, "bump", 0, 1.0}});
  std::vector<std::string> w;
  const std::string m = qf::test::message_of<UsageError>(
      [&] { load_runs(find_run_files({dir.path().string()}), "gap_int4_pct", false, w); });
  EXPECT_NE(m.find((dir / "a" / "run.h5").string()), std::string::npos) << m;
  EXPECT_NE(m.find((dir / "b" / "run.h5").string()), std::string::npos) << m;
}

TEST(AnalyzeInputs, NonFiniteValuesAreUnpaired) {
  qf::test::TempDir dir;
  const double nan = std::nan("");
  testing::write_run(dir / "c" / "run.h5", "cosine", 1,
                     {{0, "d", 0, 1.0}, {1, "d", 0, 2.0}, {2, "d", 0, 3.5}});
  testing::write_run(dir / "o" / "run.h5", "oli", 1,
                     {{0, "d", 0, 0.5}, {1, "d", 0, nan}, {2, "d", 0, 2.0}});
  const Analysis a = analyze_inputs({dir.path().string()}, AnalyzeOptions{});
  ASSERT_EQ(a.comparisons.size(), 1u);
  const Comparison& c = a.comparisons[0];
  EXPECT_EQ(c.paired.n, 2u);
  ASSERT_EQ(c.unpaired.size(), 1u);
  EXPECT_EQ(c.unpaired[0].reason, "non-finite gap_int4_pct");
  EXPECT_DOUBLE_EQ(c.paired.mean_diff, -1.0);  // (-0.5 - 1.5) / 2
  EXPECT_EQ(*c.final_step, 2);                 // the largest step with a value everywhere
}

}  // namespace
}  // namespace qf::experiments

namespace qf::experiments {
namespace {

// A run of arm `arm` with raw rows `raw` and, when given, ema rows `ema` at steps 10, 20,
// 30 (train.ema's /probe rows, schema version 3).
void write_weights_run(const std::filesystem::path& file, const std::string& arm, std::int64_t seed,
                       const std::vector<double>& raw, const std::vector<double>& ema) {
  std::filesystem::create_directories(file.parent_path());
  RunAttributes a;
  a.experiment = "fork";
  a.arm = arm;
  a.seed = seed;
  RunFile f = RunFile::create(file.string(), a, "x: 1\n");
  for (std::size_t i = 0; i < raw.size(); ++i) {
    ProbeRow row;
    row.step = 10 * static_cast<std::int64_t>(i + 1);
    row.phase = "decay";
    row.gap_int4_pct = raw[i];
    f.append_probe(row);
    if (i < ema.size()) {
      row.weights = kEmaWeights;
      row.gap_int4_pct = ema[i];
      f.append_probe(row);
    }
  }
}

TEST(AnalyzeWeights, BothComparesEachRunWithItsOwnAverageSeedBySeed) {
  qf::test::TempDir dir;
  // ema − raw per (seed, step): -1, -2, -3 for seed 1; -2, -2, -2 for seed 2; -3, -1, -2 for 3.
  write_weights_run(dir / "s1/run.h5", "cosine", 1, {5, 6, 7}, {4, 4, 4});
  write_weights_run(dir / "s2/run.h5", "cosine", 2, {6, 6, 6}, {4, 4, 4});
  write_weights_run(dir / "s3/run.h5", "cosine", 3, {7, 5, 6}, {4, 4, 4});
  std::vector<std::string> w;
  const auto files = find_run_files({dir.path().string()});
  const auto runs = load_runs(files, "gap_int4_pct", false, w, WeightsSelection::kBoth);
  ASSERT_EQ(runs.size(), 6u);
  AnalyzeOptions o;
  o.baseline = "cosine";
  o.arms = {"cosine+ema"};
  o.weights = WeightsSelection::kBoth;
  const Analysis a = analyze(runs, o);
  EXPECT_EQ(a.weights, "both");
  ASSERT_FALSE(a.comparisons.empty());
  const Comparison& c = a.comparisons.front();
  EXPECT_EQ(c.arm, "cosine+ema");
  EXPECT_EQ(c.pairs.size(), 9u);
  EXPECT_DOUBLE_EQ(c.paired.mean_diff, -2.0);
  // ema alone: the runs keep their arm names and carry the average's values.
  const auto ema = load_runs(files, "gap_int4_pct", false, w, WeightsSelection::kEma);
  ASSERT_EQ(ema.size(), 3u);
  EXPECT_EQ(ema[0].arm, "cosine");
  EXPECT_EQ(ema[0].probes[1].value, 4);
  // raw (the default) ignores the average's rows.
  const auto raw = load_runs(files, "gap_int4_pct", false, w);
  ASSERT_EQ(raw.size(), 3u);
  EXPECT_EQ(raw[0].probes.size(), 3u);
  EXPECT_EQ(raw[0].probes[1].value, 6);
}

TEST(AnalyzeWeights, ARunWithoutAnAverageIsAnErrorForEmaAndAWarningForBoth) {
  qf::test::TempDir dir;
  write_weights_run(dir / "s1/run.h5", "cosine", 1, {5, 6, 7}, {4, 4, 4});
  write_weights_run(dir / "s2/run.h5", "cosine", 2, {6, 6, 6}, {});
  std::vector<std::string> w;
  const auto files = find_run_files({dir.path().string()});
  const std::string m = qf::test::message_of<Error>(
      [&] { load_runs(files, "gap_int4_pct", false, w, WeightsSelection::kEma); });
  EXPECT_NE(m.find("s2/run.h5"), std::string::npos) << m;
  EXPECT_NE(m.find("train.ema"), std::string::npos) << m;
  const auto both = load_runs(files, "gap_int4_pct", false, w, WeightsSelection::kBoth);
  EXPECT_EQ(both.size(), 3u);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("cosine+ema"), std::string::npos) << w[0];
}

TEST(AnalyzeWeights, AnUnknownSelectionIsAConfigErrorNamingTheKey) {
  ConfigSchema schema;
  declare_analyze_config(schema);
  ConfigLoader loader(schema);
  loader.add_override("analyze.weights=average");
  const Config cfg = loader.resolve();
  const std::string m = qf::test::message_of<ConfigError>([&] { analyze_options(cfg); });
  EXPECT_NE(m.find("analyze.weights"), std::string::npos) << m;
  EXPECT_NE(m.find("raw, ema or both"), std::string::npos) << m;
}

}  // namespace
}  // namespace qf::experiments
