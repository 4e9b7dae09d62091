// The report's judgements, on hand-made inputs: whether a result has the paper's sign,
// the scale caveat, the kurtosis–gap correlation within the divergence phase, and the
// statistics section's sentences when a sign is opposite or a seed-level test absent.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "experiments/report.h"

namespace qf::experiments {
namespace {

TEST(PaperSign, OliLowerAndSgdrHigherThanCosine) {
  EXPECT_EQ(paper_sign("oli", "cosine", -2.2), PaperSign::kAgrees);
  EXPECT_EQ(paper_sign("oli", "cosine", 0.1), PaperSign::kOpposite);
  EXPECT_EQ(paper_sign("sgdr", "cosine", 1.8), PaperSign::kAgrees);
  EXPECT_EQ(paper_sign("sgdr", "cosine", -0.3), PaperSign::kOpposite);
  // No sign to compare.
  EXPECT_EQ(paper_sign("oli", "cosine", 0.0), PaperSign::kUndetermined);
  EXPECT_EQ(paper_sign("oli", "cosine", std::nan("")), PaperSign::kUndetermined);
  // Comparisons the paper did not make, the reverse of one it made included.
  EXPECT_EQ(paper_sign("oli", "cosine_matched", -1.0), PaperSign::kNoPaperResult);
  EXPECT_EQ(paper_sign("cosine", "oli", 2.2), PaperSign::kNoPaperResult);
  EXPECT_EQ(paper_sign("sgdr", "oli", 1.0), PaperSign::kNoPaperResult);
  ASSERT_NE(paper_finding("oli", "cosine"), nullptr);
  EXPECT_EQ(paper_finding("oli", "cosine")->sign, -1);
  EXPECT_EQ(paper_finding("sgdr", "cosine")->sign, +1);
  EXPECT_EQ(paper_finding("oli", "sgdr"), nullptr);
}

TEST(ScaleCaveat, StatesSizeAndTokens) {
  // The demo's model: hidden 128, 2 layers, 256 byte tokens.
  const std::string demo = scale_caveat(462336, "byte");
  EXPECT_NE(demo.find("a 0.46M-parameter model on byte tokens"), std::string::npos) << demo;
  EXPECT_NE(demo.find("Pythia-160m (162M parameters, BPE tokens)"), std::string::npos) << demo;
  EXPECT_NE(scale_caveat(162322944, "BPE").find("a 162M-parameter"), std::string::npos);
  EXPECT_NE(scale_caveat(3400000, "byte").find("a 3.4M-parameter"), std::string::npos);
}

AuditRow row(std::int64_t step, double kurtosis, double gap) {
  AuditRow r;
  r.step = step;
  r.kurtosis_mean = kurtosis;
  r.gap_int4_pct = gap;
  return r;
}

TEST(KurtosisGapCorrelation, WithinTheDivergencePhase) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Divergence from step 300: kurtosis {1, 2, 3, 4, 5}, gap {2, 1, 4, 3, 5}; by hand,
  // sxy = (-2)(-1) + (-1)(-2) + 0 + 0 + (2)(2) = 8, sxx = syy = 10, r = 0.8. The failed
  // probe at 800 (NaN kurtosis) counts nowhere.
  const std::vector<AuditRow> rows = {row(100, 10, 0), row(200, 8, 1),  row(300, 1, 2),
                                      row(400, 2, 1),  row(500, 3, 4),  row(600, 4, 3),
                                      row(700, 5, 5),  row(800, nan, 9)};
  const KurtosisGapCorrelation c = kurtosis_gap_correlation(rows, 300);
  ASSERT_TRUE(c.divergence.has_value());
  EXPECT_EQ(c.divergence->n, 5u);
  EXPECT_NEAR(c.divergence->r, 0.8, 1e-15);
  // Whole trajectory, n = 7: sum x = 33, sum y = 16, sum xy = 61, sum x^2 = 219,
  // sum y^2 = 56; r = (7*61 - 33*16) / sqrt((7*219 - 33^2)(7*56 - 16^2)) = -101/sqrt(60384).
  EXPECT_EQ(c.all.n, 7u);
  EXPECT_NEAR(c.all.r, -101 / std::sqrt(60384.0), 1e-14);

  const KurtosisGapCorrelation none = kurtosis_gap_correlation(rows, std::nullopt);
  EXPECT_FALSE(none.divergence.has_value());
  EXPECT_EQ(none.all.n, 7u);
  // An onset after the last checkpoint: a phase with no rows, r undefined.
  const KurtosisGapCorrelation late = kurtosis_gap_correlation(rows, 900);
  ASSERT_TRUE(late.divergence.has_value());
  EXPECT_EQ(late.divergence->n, 0u);
  EXPECT_TRUE(std::isnan(late.divergence->r));
}

Comparison comparison(const std::string& arm, const std::string& baseline, double mean_diff) {
  Comparison c;
  c.arm = arm;
  c.baseline = baseline;
  c.paired = paired_t_test({mean_diff + 1, mean_diff + 2, mean_diff}, {1, 2, 0});
  return c;
}

TEST(StatisticsSection, OppositeSignAndAbsentSeedLevelTestAreSaid) {
  Analysis a;
  a.metric = "gap_int4_pct";
  a.baseline = "cosine";
  Comparison oli = comparison("oli", "cosine", 1.5);
  oli.paired_runs_absent =
      "only seed 1 has matched probe pairs; a test over seeds needs at least 2";
  oli.seed_means = {{1, 3, 1.5}};
  Comparison sgdr = comparison("sgdr", "cosine", 2.0);
  sgdr.paired_runs = paired_t_test({3, 4, 5}, {1, 2, 3});
  a.comparisons = {oli, sgdr};
  const std::string md = statistics_section(a, "Scale caveat: tiny.");
  EXPECT_EQ(md.rfind("## Statistics\n\n> Scale caveat: tiny.\n\n", 0), 0u) << md;
  const std::size_t words = md.find("### Each comparison in words");
  ASSERT_NE(words, std::string::npos) << md;
  const std::size_t oli_at = md.find("- **oli vs cosine**", words);
  const std::size_t sgdr_at = md.find("- **sgdr vs cosine**", words);
  ASSERT_NE(oli_at, std::string::npos) << md;
  ASSERT_NE(sgdr_at, std::string::npos) << md;
  const std::string oli_line = md.substr(oli_at, sgdr_at - oli_at);
  EXPECT_NE(oli_line.find("The sign is opposite to the paper's."), std::string::npos) << oli_line;
  EXPECT_NE(oli_line.find("seed level not computed (only seed 1 has matched probe pairs"),
            std::string::npos)
      << oli_line;
  const std::string sgdr_line = md.substr(sgdr_at);
  EXPECT_NE(sgdr_line.find("seed level n = 3 seeds, mean 2,"), std::string::npos) << sgdr_line;
  EXPECT_NE(sgdr_line.find("The sign agrees with the paper's."), std::string::npos) << sgdr_line;
  // The table says the seed-level test of oli was not computed, with the reason.
  EXPECT_NE(md.find("| oli | cosine | all | seeds | 1 | not computed: only seed 1"),
            std::string::npos)
      << md;
}

}  // namespace
}  // namespace qf::experiments
