// `quantfork analyze` end to end: the real binary on run files written by the real
// writer; the JSON contract of interfaces.md, its numbers, and the exit statuses.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/run_file.h"
#include "run_builder.h"
#include "test_support.h"

namespace qf::experiments {
namespace {

using nlohmann::json;
using qf::test::run_quantfork;

class AnalyzeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    QF_REQUIRE_FIXTURE("stats/ttests.json");
    cases_ = testing::load_stats_cases();
  }
  qf::test::TempDir dir_;
  json cases_;
};

void expect_rel(const json& got, const json& want, const std::string& what) {
  ASSERT_TRUE(got.is_number()) << what << ": " << got;
  const double g = got.get<double>(), w = want.get<double>();
  EXPECT_LE(std::fabs(g - w), 1e-9 * std::fabs(w)) << what << ": got " << g << ", want " << w;
}

TEST_F(AnalyzeCli, WritesTheContractsJson) {
  testing::write_fixture_experiment(dir_ / "out", cases_);
  const auto r =
      run_quantfork("analyze --runs out --out stats.json --markdown stats.md", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(qf::test::read_file(dir_ / "stats.json"));
  ASSERT_EQ(j.at("comparisons").size(), 2u);
  EXPECT_EQ(j.at("metric"), "gap_int4_pct");
  EXPECT_EQ(j.at("baseline"), "cosine");
  ASSERT_EQ(j.at("comparisons").size(), 2u);
  const json& oli = j.at("comparisons")[0];
  EXPECT_EQ(oli.at("arm"), "oli");
  // Every field interfaces.md names, with the fixture's numbers.
  const json& p = oli.at("paired");
  const json n9 = testing::stats_case(cases_, "n9_oli_like");
  const json& want = n9.at("paired");
  EXPECT_EQ(p.at("n"), 9);
  for (const char* k : {"mean_diff", "sd_diff", "t", "df", "p_two_sided", "cohens_dz"}) {
    expect_rel(p.at(k), want.at(k), k);
  }
  ASSERT_EQ(p.at("ci95").size(), 2u);
  expect_rel(p.at("ci95")[0], want.at("ci95")[0], "ci95[0]");
  expect_rel(p.at("ci95")[1], want.at("ci95")[1], "ci95[1]");
  const json& w = oli.at("welch_final");
  const json n3 = testing::stats_case(cases_, "n3_exact_small");
  EXPECT_EQ(w.at("n_arm"), 3);
  EXPECT_EQ(w.at("n_baseline"), 3);
  for (const char* k : {"t", "df", "p_two_sided"}) expect_rel(w.at(k), n3.at("welch").at(k), k);
  EXPECT_EQ(w.at("final_step"), 900);
  EXPECT_EQ(oli.at("pairwise_wins").at("wins"), 6);
  EXPECT_EQ(oli.at("pairwise_wins").at("total"), 9);
  EXPECT_EQ(oli.at("phase_filter"), json::array({"cool:last"}));
  EXPECT_TRUE(oli.at("unpaired").empty());
  const json& sgdr = j.at("comparisons")[1];
  EXPECT_EQ(sgdr.at("arm"), "sgdr");
  EXPECT_EQ(sgdr.at("pairwise_wins").at("wins"), 0);
  EXPECT_EQ(j.at("runs").size(), 9u);
  // Extras beyond the contract: every comparison names its baseline, the run-level test
  // over seeds beside the probe-level one, and what each n counts.
  EXPECT_EQ(oli.at("baseline"), "cosine");
  const json& runs = oli.at("paired_runs");
  ASSERT_TRUE(runs.is_object()) << oli.dump(2);
  EXPECT_EQ(runs.at("n"), 3);
  EXPECT_EQ(runs.at("df"), 2);
  for (const char* k : {"mean_diff", "sd_diff", "t", "p_two_sided", "cohens_dz"}) {
    EXPECT_TRUE(runs.at(k).is_number()) << k;
  }
  ASSERT_EQ(runs.at("ci95").size(), 2u);
  EXPECT_FALSE(oli.contains("paired_runs_absent"));
  ASSERT_EQ(oli.at("seed_mean_diffs").size(), 3u);
  EXPECT_EQ(oli.at("seed_mean_diffs")[0].at("seed"), 1);
  EXPECT_EQ(oli.at("seed_mean_diffs")[0].at("pairs"), 3);
  // The mean over seeds of the seeds' means is the probe-level mean (3 pairs each).
  expect_rel(runs.at("mean_diff"), want.at("mean_diff"), "run-level mean_diff");
  EXPECT_LT(runs.at("t").get<double>(), 0);
  EXPECT_EQ(j.at("n_counts").at("paired"), "matched (seed, step) probe pairs");
  EXPECT_EQ(j.at("n_counts").at("paired_runs").get<std::string>().rfind("seeds with matched", 0),
            0u);
  EXPECT_EQ(j.at("notes"),
            json::array({"'oli' vs control 'cosine_matched' (analyze.controls) not computed: no "
                         "run has arm 'cosine_matched'"}));
  // The Markdown file is the table printed on stdout.
  EXPECT_EQ(qf::test::read_file(dir_ / "stats.md"), r.out);
  EXPECT_NE(r.out.find("| oli | cosine | cool:last | probes | 9 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| oli | cosine | cool:last | seeds | 3 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| sgdr | cosine | 900 | 3 | 3 |"), std::string::npos) << r.out;
}

TEST_F(AnalyzeCli, OliAgainstBothCosineArms) {
  testing::write_fixture_experiment(dir_ / "out", cases_);
  testing::write_fixture_control(dir_ / "out", cases_, 0.25);
  const auto r =
      run_quantfork("analyze --runs out --set analyze.arms=[oli] --out s.json", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(qf::test::read_file(dir_ / "s.json"));
  EXPECT_EQ(j.at("baseline"), "cosine");
  ASSERT_EQ(j.at("comparisons").size(), 2u);
  const json &primary = j.at("comparisons")[0], &control = j.at("comparisons")[1];
  EXPECT_EQ(primary.at("arm"), "oli");
  EXPECT_EQ(primary.at("baseline"), "cosine");
  EXPECT_EQ(control.at("arm"), "oli");
  EXPECT_EQ(control.at("baseline"), "cosine_matched");
  EXPECT_EQ(control.at("phase_filter"), json::array({"cool:last"}));
  const json n9 = testing::stats_case(cases_, "n9_oli_like").at("paired");
  EXPECT_EQ(control.at("paired").at("n"), 9);
  EXPECT_NEAR(control.at("paired").at("mean_diff").get<double>(),
              n9.at("mean_diff").get<double>() - 0.25, 1e-12);
  expect_rel(control.at("paired").at("sd_diff"), n9.at("sd_diff"), "sd_diff");
  EXPECT_EQ(control.at("paired_runs").at("n"), 3);
  EXPECT_NEAR(control.at("paired_runs").at("mean_diff").get<double>(),
              primary.at("paired_runs").at("mean_diff").get<double>() - 0.25, 1e-12);
  EXPECT_TRUE(j.at("notes").empty());
  EXPECT_NE(r.out.find("| oli | cosine_matched | cool:last | probes | 9 |"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| oli | cosine_matched | cool:last | seeds | 3 |"), std::string::npos)
      << r.out;
}

TEST_F(AnalyzeCli, OneSeedGivesNoRunLevelTestAndSaysWhy) {
  testing::write_fixture_experiment(dir_ / "out", cases_);
  std::string err;
  const json j = testing::run_for_json(
      "analyze --out s.json out/fork/oli/seed2/run.h5 out/fork/cosine/seed2/run.h5", dir_.path(),
      "s.json", &err);
  const json& oli = j.at("comparisons").at(0);
  EXPECT_EQ(oli.at("paired").at("n"), 3);
  EXPECT_TRUE(oli.at("paired_runs").is_null());
  EXPECT_EQ(oli.at("paired_runs_absent"),
            "only seed 2 has matched probe pairs; a test over seeds needs at least 2");
  EXPECT_NE(err.find("no run-level test"), std::string::npos) << err;
  // The seed's mean difference is still reported (three settled pairs, a number).
  ASSERT_EQ(oli.at("seed_mean_diffs").size(), 1u);
  EXPECT_TRUE(oli.at("seed_mean_diffs")[0].at("mean_diff").is_number());
  EXPECT_EQ(oli.at("seed_mean_diffs")[0].at("pairs"), 3);
}

TEST_F(AnalyzeCli, RunFilesAsArgumentsAndConfigKeys) {
  testing::write_fixture_experiment(dir_ / "out", cases_);
  qf::test::write_file(dir_ / "a.yaml",
                       "analyze:\n  metric: gap_int8_pct\n  baseline: sgdr\n  arms: [oli]\n");
  const json j = testing::run_for_json(
      "analyze --config a.yaml --set analyze.phase_filter.oli=all --out s.json "
      "out/fork/oli/seed1/run.h5 out/fork/oli/seed2/run.h5 --runs out/fork/sgdr",
      dir_.path(), "s.json");
  EXPECT_EQ(j.at("metric"), "gap_int8_pct");
  EXPECT_EQ(j.at("baseline"), "sgdr");
  ASSERT_EQ(j.at("comparisons").size(), 1u);
  const json& c = j.at("comparisons")[0];
  EXPECT_EQ(c.at("arm"), "oli");
  EXPECT_EQ(c.at("paired").at("n"), 20);  // 2 seeds x 10 probes, no filter
  EXPECT_EQ(c.at("welch_final").at("n_arm"), 2);
  EXPECT_EQ(c.at("welch_final").at("n_baseline"), 3);
  EXPECT_EQ(c.at("unpaired").size(), 10u);  // sgdr seed 3 has no oli partner
}

TEST_F(AnalyzeCli, UnpairedRowsAreWarnedAndListed) {
  testing::write_fixture_experiment(dir_ / "out", cases_, {{"oli", 2, 599}});
  std::string err;
  const json j =
      testing::run_for_json("analyze --runs out --out s.json", dir_.path(), "s.json", &err);
  EXPECT_NE(err.find("cannot be paired"), std::string::npos) << err;
  EXPECT_NE(err.find("cosine seed 2 step 599 (no oli probe at step 599)"), std::string::npos)
      << err;
  const json& u = j.at("comparisons")[0].at("unpaired");
  // Oli's probe at 400 is now the last of cool phase 1 in seed 2, but it is not taken in
  // place of the missing settled probe: it is reported, as is cosine's unmatched 599.
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[0].at("arm"), "oli");
  EXPECT_EQ(u[0].at("step"), 400);
  EXPECT_EQ(u[0].at("reason"),
            "last cool probe of its phase, but no probe at step 401 shows the phase ended there");
  EXPECT_EQ(u[1].at("arm"), "cosine");
  EXPECT_EQ(u[1].at("seed"), 2);
  EXPECT_EQ(u[1].at("step"), 599);
  EXPECT_EQ(j.at("comparisons")[0].at("paired").at("n"), 8);
  EXPECT_FALSE(j.at("warnings").empty());
}

TEST_F(AnalyzeCli, BadInputsNameTheFileOrKey) {
  testing::write_fixture_experiment(dir_ / "out", cases_);
  std::filesystem::create_directories(dir_ / "empty");
  testing::expect_fails("analyze --runs empty --out s.json", dir_.path(), 2,
                        {"'empty' holds no run files"});
  testing::expect_fails("analyze --out s.json", dir_.path(), 2, {"no run files given"});
  testing::expect_fails("analyze --runs out", dir_.path(), 2, {"--out"});
  testing::expect_fails("analyze --runs out --out s.json --set analyze.metric=gap_int3_pct",
                        dir_.path(), 2, {"analyze.metric", "gap_int3_pct"});
  testing::expect_fails("analyze --runs out --out s.json --set analyze.baseline=wsd", dir_.path(),
                        2, {"'wsd'", "cosine, oli, sgdr"});
  std::filesystem::create_directories(dir_ / "bogus");
  qf::test::write_file(dir_ / "bogus" / "run.h5", "not an HDF5 file\n");
  testing::expect_fails("analyze --runs out bogus --out s.json", dir_.path(), 1, {"bogus/run.h5"});
  // An HDF5 file of the other kind: an audit file is not a run file.
  { AuditFile::create((dir_ / "audit.h5").string(), RunAttributes{}, "a: 1\n"); }
  testing::expect_fails("analyze --runs out audit.h5 --out s.json", dir_.path(), 1,
                        {"audit.h5", "quantfork.run/3"});
  EXPECT_FALSE(std::filesystem::exists(dir_ / "s.json"));  // no partial output
}

}  // namespace
}  // namespace qf::experiments
