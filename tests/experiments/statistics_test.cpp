// The statistics against scipy 1.10's own numbers (../shared/fixtures/stats/, see its
// README): every case of ttests.json, every field, to 1e-9 relative.
//
// One exception, checked rather than skipped: scipy 1.10's t.ppf (cdflib's cdft, which
// inverts the t distribution by a root search with a 1e-8 tolerance) is off by up to
// 4.1e-9 relative (df = 39: it gives 2.022690911734728; the 40-digit quantile is
// 2.0226909200367611...). Boost's quantile is exact to rounding, so where scipy's is
// further than 1e-9 from it, t_ppf and the CI may differ from scipy's by that much and no
// more: the test then requires Boost's quantile to invert Boost's CDF (which matches
// every scipy p-value to 1e-9), to lie within cdflib's 1e-8 of scipy's, and the CI built
// with scipy's own quantile to match scipy's CI to 1e-9.
#include "experiments/statistics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "test_support.h"

namespace qf::experiments {
namespace {

constexpr double kRelTol = 1e-9;

double max_rel_deviation = 0;       // over every finite nonzero value compared
std::string max_rel_field;          // and where it was
int scipy_quantile_exceptions = 0;  // cases where scipy's t.ppf is off by more than 1e-10

// The fixture's numbers: finite ones as JSON numbers, the others as strings.
double fixture_number(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  const std::string s = j.get<std::string>();
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (s == "Infinity") return std::numeric_limits<double>::infinity();
  if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
  ADD_FAILURE() << "not a fixture number: " << j;
  return 0;
}

void expect_matches(double got, const nlohmann::json& want_json, const std::string& what) {
  const double want = fixture_number(want_json);
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << what << ": got " << got << ", scipy NaN";
  } else if (std::isinf(want) || want == 0) {
    EXPECT_EQ(got, want) << what;
  } else {
    const double rel = std::fabs(got - want) / std::fabs(want);
    if (rel > max_rel_deviation) {
      max_rel_deviation = rel;
      max_rel_field = what;
    }
    EXPECT_LE(rel, kRelTol) << what << ": got " << got << ", scipy " << want;
  }
}

double rel_deviation(double got, double want) {
  return std::fabs(got - want) / std::fabs(want);
}

// t_ppf and ci95 against scipy's (see the top of the file).
void expect_quantile_dependent(const PairedTTest& p, const nlohmann::json& scipy_q_json,
                               const nlohmann::json& scipy_ci, const std::string& name) {
  const double q = student_t_quantile(0.975, p.df), scipy_q = fixture_number(scipy_q_json);
  if (rel_deviation(q, scipy_q) <= kRelTol / 10) {
    expect_matches(q, scipy_q_json, name + " t.ppf");
    expect_matches(p.ci95[0], scipy_ci[0], name + " ci95 low");
    expect_matches(p.ci95[1], scipy_ci[1], name + " ci95 high");
    return;
  }
  ++scipy_quantile_exceptions;
  EXPECT_NEAR(student_t_cdf(q, p.df), 0.975, 1e-15) << name << ": not the 0.975 quantile";
  EXPECT_LE(rel_deviation(q, scipy_q), 1e-8) << name << ": beyond cdflib's tolerance";
  const double half = scipy_q * p.sd_diff / std::sqrt(static_cast<double>(p.n));
  expect_matches(p.mean_diff - half, scipy_ci[0], name + " ci95 low with scipy's quantile");
  expect_matches(p.mean_diff + half, scipy_ci[1], name + " ci95 high with scipy's quantile");
  EXPECT_NEAR(p.ci95[0], p.mean_diff - q * p.sd_diff / std::sqrt(static_cast<double>(p.n)),
              1e-15 * std::fabs(p.ci95[0]));
}

// Every figure of a paired test against the fixture's `paired` block.
void expect_paired_matches(const PairedTTest& p, const nlohmann::json& fp,
                           const std::string& what) {
  expect_matches(p.df, fp.at("df"), what + " df");
  expect_matches(p.mean_diff, fp.at("mean_diff"), what + " mean_diff");
  expect_matches(p.sd_diff, fp.at("sd_diff"), what + " sd_diff");
  expect_matches(p.t, fp.at("t"), what + " t");
  expect_matches(p.p_two_sided, fp.at("p_two_sided"), what + " p");
  expect_matches(p.p_less, fp.at("p_less"), what + " p_less");
  expect_matches(p.p_greater, fp.at("p_greater"), what + " p_greater");
  expect_quantile_dependent(p, fp.at("t_ppf_0975"), fp.at("ci95"), what);
  expect_matches(p.cohens_dz, fp.at("cohens_dz"), what + " cohens_dz");
}

std::vector<double> doubles(const nlohmann::json& j) {
  std::vector<double> out;
  for (const auto& v : j) out.push_back(v.get<double>());
  return out;
}

nlohmann::json cases() {
  return nlohmann::json::parse(
      qf::test::read_file(qf::test::fixtures_dir() / "stats" / "ttests.json"))["cases"];
}

TEST(Statistics, EveryScipyCaseToOneInABillion) {
  QF_REQUIRE_FIXTURE("stats/ttests.json");
  const auto all = cases();
  ASSERT_GE(all.size(), 15u);
  for (const auto& c : all) {
    const std::string name = c.at("name");
    SCOPED_TRACE(name);
    const auto arm = doubles(c.at("arm")), baseline = doubles(c.at("baseline"));

    const PairedTTest p = paired_t_test(arm, baseline);
    const auto& fp = c.at("paired");
    EXPECT_EQ(p.n, fp.at("n").get<std::size_t>());
    expect_paired_matches(p, fp, name + " paired");

    const TwoSampleTTest w = welch_t_test(arm, baseline);
    const auto& fw = c.at("welch");
    EXPECT_EQ(w.n_arm, fw.at("n_arm").get<std::size_t>());
    EXPECT_EQ(w.n_baseline, fw.at("n_baseline").get<std::size_t>());
    expect_matches(w.t, fw.at("t"), name + " welch t");
    expect_matches(w.df, fw.at("df"), name + " welch df");
    expect_matches(w.p_two_sided, fw.at("p_two_sided"), name + " welch p");
    expect_matches(w.p_less, fw.at("p_less"), name + " welch p_less");

    const TwoSampleTTest s = pooled_t_test(arm, baseline);
    const auto& fs = c.at("student_pooled");
    expect_matches(s.t, fs.at("t"), name + " pooled t");
    expect_matches(s.df, fs.at("df"), name + " pooled df");
    expect_matches(s.p_two_sided, fs.at("p_two_sided"), name + " pooled p");
  }
  std::cout << "[ stats    ] max relative deviation from scipy: " << max_rel_deviation << " ("
            << max_rel_field << "); " << scipy_quantile_exceptions
            << " case(s) where scipy's t.ppf is the less accurate\n";
  RecordProperty("max_rel_deviation", std::to_string(max_rel_deviation));
}

// The scipy CI agrees with the t-quantile one in every case; ours must match both.
TEST(Statistics, ConfidenceIntervalMatchesScipysOwn) {
  QF_REQUIRE_FIXTURE("stats/ttests.json");
  for (const auto& c : cases()) {
    const PairedTTest p = paired_t_test(doubles(c.at("arm")), doubles(c.at("baseline")));
    expect_quantile_dependent(p, c.at("paired").at("t_ppf_0975"),
                              c.at("paired").at("ci95_scipy_confidence_interval"),
                              c.at("name").get<std::string>() + " (scipy's CI)");
  }
}

// Hand-checkable values, independent of the fixtures, so the suite fails without them
// too when the distribution is wrong: t(1) is the Cauchy distribution.
TEST(Statistics, StudentTDistributionKnownValues) {
  EXPECT_NEAR(student_t_cdf(1.0, 1.0), 0.75, 1e-15);
  EXPECT_NEAR(student_t_quantile(0.75, 1.0), 1.0, 1e-13);
  EXPECT_NEAR(student_t_cdf(0.0, 7.5), 0.5, 1e-15);
  EXPECT_NEAR(student_t_quantile(0.975, 1e7), 1.959963984540054, 1e-6);
  EXPECT_EQ(student_t_cdf(-std::numeric_limits<double>::infinity(), 3), 0.0);
  EXPECT_TRUE(std::isnan(student_t_cdf(1.0, 0.0)));
  EXPECT_TRUE(std::isnan(student_t_quantile(1.5, 3.0)));
}

TEST(Statistics, PairedOnHandMadeNumbers) {
  // d = {-1, -0.5, -2}: mean -7/6, sd sqrt(7/12), t = mean / (sd / sqrt 3).
  const PairedTTest p = paired_t_test({1, 2, 4}, {2, 2.5, 6});
  EXPECT_DOUBLE_EQ(p.mean_diff, -7.0 / 6);
  EXPECT_DOUBLE_EQ(p.sd_diff, std::sqrt(7.0 / 12));
  EXPECT_DOUBLE_EQ(p.t, (-7.0 / 6) / std::sqrt(7.0 / 36));
  EXPECT_EQ(p.df, 2);
  EXPECT_NEAR(p.p_two_sided, 2 * p.p_less, 1e-15);
}

TEST(Statistics, DegenerateInputs) {
  const PairedTTest one = paired_t_test({1.0}, {2.0});
  EXPECT_EQ(one.n, 1u);
  EXPECT_EQ(one.df, 0);
  EXPECT_TRUE(std::isnan(one.sd_diff) && std::isnan(one.t) && std::isnan(one.p_two_sided));
  EXPECT_TRUE(std::isnan(one.ci95[0]) && std::isnan(one.cohens_dz));

  const PairedTTest constant = paired_t_test({1, 2, 3}, {2, 3, 4});
  EXPECT_EQ(constant.t, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(constant.p_two_sided, 0.0);
  EXPECT_EQ(constant.ci95[0], -1.0);
  EXPECT_EQ(constant.ci95[1], -1.0);

  const TwoSampleTTest flat = welch_t_test({1, 1, 1}, {2, 2});
  EXPECT_EQ(flat.df, 1.0);  // scipy's substitute for 0/0
  EXPECT_EQ(flat.t, -std::numeric_limits<double>::infinity());
  const TwoSampleTTest single = welch_t_test({1}, {2, 3});
  EXPECT_TRUE(std::isnan(single.t) && std::isnan(single.p_two_sided));

  EXPECT_NE(qf::test::message_of<Error>([] {
              paired_t_test({1, 2}, {1});
            }).find("equal length"),
            std::string::npos);
  EXPECT_NE(qf::test::message_of<Error>([] { paired_t_test({}, {}); }).find("empty"),
            std::string::npos);
  EXPECT_NE(qf::test::message_of<Error>([] {
              welch_t_test({1, 2}, {});
            }).find("baseline"),
            std::string::npos);
}

TEST(Statistics, PairwiseWinsCountLowerArmValues) {
  // The paper's SGDR vs cosine: every SGDR seed above every cosine seed, 0 of 9.
  const PairwiseWins none = pairwise_wins({5, 6, 7}, {1, 2, 3});
  EXPECT_EQ(none.wins, 0u);
  EXPECT_EQ(none.total, 9u);
  const PairwiseWins some = pairwise_wins({1, 2, 4}, {2, 2.5, 6});
  EXPECT_EQ(some.wins, 6u);  // 1<2, 1<2.5, 1<6, 2<2.5, 2<6, 4<6
  EXPECT_EQ(some.ties, 1u);  // 2 == 2
  EXPECT_EQ(some.total, 9u);
  EXPECT_EQ(pairwise_wins({1, 2}, {3}).total, 2u);
}

// The run-level test with every seed's differences averaged to a scipy case's d_s, from
// unbalanced seeds (1, 2 or 3 pairs whose offsets cancel), must be scipy's paired test of
// that case: ttest_rel over seeds, n = seeds. Pooling the pairs instead would not be.
TEST(Statistics, ClusteredTestOverSeedMeansIsScipysPairedTest) {
  QF_REQUIRE_FIXTURE("stats/ttests.json");
  const std::vector<std::vector<double>> offsets = {{0}, {0.5, -0.5}, {0.5, -0.25, -0.25}};
  int checked = 0;
  for (const auto& c : cases()) {
    const std::string name = c.at("name");
    const auto& fp = c.at("paired");
    // The degenerate cases rest on exact zeros that the offsets' rounding would perturb
    // (their handling is the paired test's, checked above); the case near 1e6 loses the
    // offsets' low bits to cancellation.
    if (!fp.at("t").is_number() || name == "n8_large_offset") continue;
    SCOPED_TRACE(name);
    const auto arm = doubles(c.at("arm")), baseline = doubles(c.at("baseline"));
    std::vector<double> a, b;
    std::vector<std::int64_t> seed;
    for (std::size_t s = 0; s < arm.size(); ++s) {
      for (double o : offsets[s % 3]) {
        a.push_back(arm[s] + o);
        b.push_back(baseline[s]);
        seed.push_back(static_cast<std::int64_t>(s) + 1);
      }
    }
    std::vector<ClusterMean> means;
    const PairedTTest p = clustered_paired_t_test(a, b, seed, &means);
    EXPECT_EQ(p.n, arm.size());
    ASSERT_EQ(means.size(), arm.size());
    EXPECT_EQ(means[1].cluster, 2);
    EXPECT_EQ(means[1].pairs, 2u);
    EXPECT_NEAR(means[1].mean_diff, arm[1] - baseline[1], 1e-12 * std::fabs(arm[1]));
    expect_paired_matches(p, fp, name + " over seeds");
    // The same pairs pooled are another test (n counts pairs).
    EXPECT_EQ(paired_t_test(a, b).n, a.size());
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

// method.md's definition, literally: the paired t-test (ttest_rel) of the seeds' mean arm
// values against their mean baseline values is the clustered test.
TEST(Statistics, ClusteredTestIsThePairedTestOfPerSeedMeans) {
  const std::vector<double> arm = {3.1, 2.9, 3.4, 1.0, 1.5, 2.2, 2.0, 2.6};
  const std::vector<double> base = {4.0, 3.5, 3.6, 2.0, 2.1, 2.0, 3.3, 3.0};
  const std::vector<std::int64_t> seed = {7, 7, 7, 2, 2, 5, 5, 5};
  std::vector<ClusterMean> means;
  const PairedTTest p = clustered_paired_t_test(arm, base, seed, &means);
  // Seeds ascending: 2 (rows 3-4), 5 (rows 5-7), 7 (rows 0-2).
  const std::vector<double> arm_means = {(1.0 + 1.5) / 2, (2.2 + 2.0 + 2.6) / 3,
                                         (3.1 + 2.9 + 3.4) / 3};
  const std::vector<double> base_means = {(2.0 + 2.1) / 2, (2.0 + 3.3 + 3.0) / 3,
                                          (4.0 + 3.5 + 3.6) / 3};
  const PairedTTest q = paired_t_test(arm_means, base_means);
  ASSERT_EQ(means.size(), 3u);
  EXPECT_EQ(means[0].cluster, 2);
  EXPECT_EQ(means[2].cluster, 7);
  EXPECT_EQ(means[1].pairs, 3u);
  EXPECT_EQ(p.n, 3u);
  EXPECT_EQ(p.df, 2);
  for (const auto& [got, want] : {std::pair{p.mean_diff, q.mean_diff},
                                  {p.sd_diff, q.sd_diff},
                                  {p.t, q.t},
                                  {p.p_two_sided, q.p_two_sided},
                                  {p.ci95[0], q.ci95[0]},
                                  {p.ci95[1], q.ci95[1]},
                                  {p.cohens_dz, q.cohens_dz}}) {
    EXPECT_NEAR(got, want, 1e-12 * std::fabs(want));
  }
  EXPECT_NE(qf::test::message_of<Error>([] {
              clustered_paired_t_test({1, 2}, {1, 2}, {1});
            }).find("equal length"),
            std::string::npos);
}

// Three seeds worked out by hand, with the t(2) distribution in closed form
// (F(t) = 1/2 + t / (2 sqrt(t^2 + 2)), quantile (2p - 1) / sqrt(2p(1 - p))), so the
// check does not lean on Boost: seed means -2, -1, -1.5 from 2, 1 and 3 pairs.
TEST(Statistics, ClusteredTestHandWorked) {
  const PairedTTest p =
      clustered_paired_t_test({0, -2, 4, 1, 0.5, 0}, {1, 1, 5, 2, 2, 2}, {1, 1, 2, 3, 3, 3});
  EXPECT_EQ(p.n, 3u);
  EXPECT_DOUBLE_EQ(p.mean_diff, -1.5);
  EXPECT_DOUBLE_EQ(p.sd_diff, 0.5);
  const double t = -1.5 / (0.5 / std::sqrt(3.0));  // -sqrt(27)
  EXPECT_NEAR(p.t, t, 1e-14);
  EXPECT_NEAR(p.p_two_sided, 1 - std::sqrt(27.0 / 29.0), 1e-14);
  const double q = 0.95 / std::sqrt(2 * 0.975 * 0.025);
  EXPECT_NEAR(p.ci95[0], -1.5 - q * 0.5 / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(p.ci95[1], -1.5 + q * 0.5 / std::sqrt(3.0), 1e-12);
  EXPECT_DOUBLE_EQ(p.cohens_dz, -3.0);

  // One seed: the paired test of one value, undefined as scipy's is.
  const PairedTTest one = clustered_paired_t_test({1, 2}, {2, 4}, {4, 4});
  EXPECT_EQ(one.n, 1u);
  EXPECT_DOUBLE_EQ(one.mean_diff, -1.5);
  EXPECT_TRUE(std::isnan(one.t) && std::isnan(one.p_two_sided));
}

TEST(Statistics, PearsonR) {
  EXPECT_NEAR(pearson_r({1, 2, 3, 4}, {2, 4, 6, 8}), 1.0, 1e-15);
  EXPECT_NEAR(pearson_r({1, 2, 3, 4}, {8, 6, 4, 2}), -1.0, 1e-15);
  // scipy.stats.pearsonr([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) = 0.8
  EXPECT_NEAR(pearson_r({1, 2, 3, 4, 5}, {2, 1, 4, 3, 5}), 0.8, 1e-15);
  EXPECT_TRUE(std::isnan(pearson_r({1, 1, 1}, {1, 2, 3})));
}

}  // namespace
}  // namespace qf::experiments
