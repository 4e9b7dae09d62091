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
