#pragma once
// The statistics of the fork experiment (method.md, "Statistics"): the paired t-test over
// matched probes, Welch's (and Student's pooled) two-sample t-test on the final probes,
// and pairwise wins. Results agree with scipy.stats.ttest_rel / ttest_ind to 1e-9
// relative (../shared/fixtures/stats/); the Student t distribution is Boost.Math's.
//
// Degenerate input follows scipy 1.10 rather than failing, so a zero-variance arm is
// reported, not hidden:
// - paired, every difference equal to c != 0: sd_diff 0, t and cohens_dz ±inf, p 0
//   (p_less/p_greater 0 or 1), ci95 [c, c]; every difference 0: t, p and d_z NaN,
//   ci95 [0, 0].
// - paired with n = 1: df 0, and sd, t, p, ci95 and d_z NaN.
// - two-sample with both variances 0: df 1 (as scipy substitutes), t ±inf or NaN.
// - a sample of one (two-sample): NaN variance, so t and p are NaN (Welch df 1, as
//   scipy substitutes).
// Empty samples and paired samples of different lengths are errors (qf::Error).
// The clustered paired test is the paired test over cluster means, degenerate cases
// included (one cluster: n = 1, df 0, NaN).
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qf::experiments {

struct PairedTTest {
  std::size_t n = 0;
  double df = 0;         // n − 1
  double mean_diff = 0;  // mean of d_i = arm_i − baseline_i
  double sd_diff = 0;    // sample standard deviation of d (n − 1 denominator)
  double t = 0;          // mean_diff / (sd_diff / √n)
  double p_two_sided = 0;
  double p_less = 0;             // H1: mean_diff < 0
  double p_greater = 0;          // H1: mean_diff > 0
  std::array<double, 2> ci95{};  // mean_diff ∓ t_{0.975, df} · sd_diff / √n
  double cohens_dz = 0;          // mean_diff / sd_diff
};

struct TwoSampleTTest {
  std::size_t n_arm = 0, n_baseline = 0;
  double mean_arm = 0, mean_baseline = 0;
  double t = 0;   // (mean_arm − mean_baseline) / standard error
  double df = 0;  // Welch–Satterthwaite, or n_arm + n_baseline − 2 when pooled
  double p_two_sided = 0;
  double p_less = 0;  // H1: mean_arm < mean_baseline
};

struct PairwiseWins {
  std::size_t wins = 0;   // pairs (i, j) with arm_i < baseline_j (lower wins)
  std::size_t ties = 0;   // arm_i == baseline_j: neither side wins
  std::size_t total = 0;  // |arm| · |baseline|
};

// scipy.stats.ttest_rel(arm, baseline) plus the descriptive figures above.
PairedTTest paired_t_test(const std::vector<double>& arm, const std::vector<double>& baseline);
// The same test on differences already taken (scipy.stats.ttest_1samp(d, 0)).
PairedTTest paired_t_test_of_differences(const std::vector<double>& d);

// The paired test over clusters rather than pairs (method.md's run-level test): the
// differences arm_i − baseline_i are averaged within each cluster (a seed: probes of one
// run are correlated, not independent), then tested as paired_t_test_of_differences over
// the cluster means, so n counts clusters and df = clusters − 1. Also returns the
// clusters (ascending) with their number of pairs and mean difference.
struct ClusterMean {
  std::int64_t cluster = 0;
  std::size_t pairs = 0;
  double mean_diff = 0;
};
PairedTTest clustered_paired_t_test(const std::vector<double>& arm,
                                    const std::vector<double>& baseline,
                                    const std::vector<std::int64_t>& cluster,
                                    std::vector<ClusterMean>* means = nullptr);
// scipy.stats.ttest_ind(arm, baseline, equal_var=False).
TwoSampleTTest welch_t_test(const std::vector<double>& arm, const std::vector<double>& baseline);
// scipy.stats.ttest_ind(arm, baseline, equal_var=True).
TwoSampleTTest pooled_t_test(const std::vector<double>& arm, const std::vector<double>& baseline);
PairwiseWins pairwise_wins(const std::vector<double>& arm, const std::vector<double>& baseline);

// The Student t distribution with `df` degrees of freedom: P(T <= t), and the quantile
// of probability p (scipy.stats.t.cdf / t.ppf). NaN when df is not positive or an
// argument is NaN.
double student_t_cdf(double t, double df);
double student_t_quantile(double p, double df);

// Pearson's correlation coefficient (NaN when either variable is constant or n < 2).
double pearson_r(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace qf::experiments
