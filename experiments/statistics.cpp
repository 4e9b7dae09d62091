#include "experiments/statistics.h"

#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "core/errors.h"

namespace qf::experiments {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// numpy's pairwise summation (umath's pairwise_sum: eight running sums for blocks of up
// to 128 values, halves above that). Following numpy's order of additions keeps sums of
// values near 1e6 with small differences as close to scipy's as the inputs allow.
double pairwise_sum(const double* a, std::size_t n) {
  if (n < 8) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += a[i];
    return s;
  }
  if (n <= 128) {
    double r[8];
    for (std::size_t j = 0; j < 8; ++j) r[j] = a[j];
    std::size_t i = 8;
    for (; i < n - n % 8; i += 8) {
      for (std::size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) s += a[i];
    return s;
  }
  std::size_t half = n / 2;
  half -= half % 8;
  return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

// numpy's add.reduce: the first element, then the pairwise sum of the rest.
double numpy_sum(const std::vector<double>& x) {
  if (x.empty()) return 0;
  return x[0] + pairwise_sum(x.data() + 1, x.size() - 1);
}

double mean_of(const std::vector<double>& x) {
  return numpy_sum(x) / static_cast<double>(x.size());
}

// Two-pass sample variance with n − ddof in the denominator (NaN when n − ddof <= 0).
double variance(const std::vector<double>& x, double mean, std::size_t ddof) {
  if (x.size() <= ddof) return kNaN;
  std::vector<double> sq(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) sq[i] = (x[i] - mean) * (x[i] - mean);
  return numpy_sum(sq) / static_cast<double>(x.size() - ddof);
}

// mean / se without relying on IEEE division by zero (which UBSan may be asked to trap):
// ±inf for a nonzero mean over a zero standard error, NaN for 0/0, as numpy gives.
double ratio(double num, double den) {
  if (den == 0) {
    if (num == 0 || std::isnan(num)) return kNaN;
    return std::copysign(std::numeric_limits<double>::infinity(), num);
  }
  return num / den;
}

void require_nonempty(const std::vector<double>& x, const char* test, const char* which) {
  if (x.empty()) throw Error(std::string(test) + ": the " + which + " sample is empty");
}

void require_equal_lengths(std::size_t arm, std::size_t other, const char* which) {
  if (arm != other) {
    throw Error("the paired t-test needs samples of equal length (arm " + std::to_string(arm) +
                ", " + which + " " + std::to_string(other) + ")");
  }
}

TwoSampleTTest two_sample(const std::vector<double>& arm, const std::vector<double>& baseline,
                          bool pooled) {
  const char* name = pooled ? "Student's t-test" : "Welch's t-test";
  require_nonempty(arm, name, "arm");
  require_nonempty(baseline, name, "baseline");
  TwoSampleTTest r;
  r.n_arm = arm.size();
  r.n_baseline = baseline.size();
  r.mean_arm = mean_of(arm);
  r.mean_baseline = mean_of(baseline);
  const double n1 = static_cast<double>(r.n_arm), n2 = static_cast<double>(r.n_baseline);
  const double v1 = variance(arm, r.mean_arm, 1), v2 = variance(baseline, r.mean_baseline, 1);
  double se = 0;
  if (pooled) {
    r.df = n1 + n2 - 2;
    const double pooled_var = r.df > 0 ? ((n1 - 1) * v1 + (n2 - 1) * v2) / r.df : kNaN;
    se = std::sqrt(pooled_var * (1.0 / n1 + 1.0 / n2));
  } else {
    const double vn1 = v1 / n1, vn2 = v2 / n2;
    // scipy replaces an undefined Welch–Satterthwaite df (both variances 0, or a sample
    // of one) by 1.
    r.df = 1.0;
    if (r.n_arm > 1 && r.n_baseline > 1) {
      const double den = vn1 * vn1 / (n1 - 1) + vn2 * vn2 / (n2 - 1);
      if (den > 0) r.df = (vn1 + vn2) * (vn1 + vn2) / den;
    }
    se = std::sqrt(vn1 + vn2);
  }
  r.t = ratio(r.mean_arm - r.mean_baseline, se);
  r.p_two_sided = 2 * student_t_cdf(-std::fabs(r.t), r.df);
  r.p_less = student_t_cdf(r.t, r.df);
  return r;
}

}  // namespace

double student_t_cdf(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return kNaN;
  if (std::isinf(t)) return t < 0 ? 0.0 : 1.0;
  return boost::math::cdf(boost::math::students_t_distribution<double>(df), t);
}

double student_t_quantile(double p, double df) {
  if (!(df > 0) || !(p > 0 && p < 1)) return kNaN;
  return boost::math::quantile(boost::math::students_t_distribution<double>(df), p);
}

PairedTTest paired_t_test(const std::vector<double>& arm, const std::vector<double>& baseline) {
  require_nonempty(arm, "the paired t-test", "arm");
  require_equal_lengths(arm.size(), baseline.size(), "baseline");
  std::vector<double> d(arm.size());
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = arm[i] - baseline[i];
  return paired_t_test_of_differences(d);
}

PairedTTest paired_t_test_of_differences(const std::vector<double>& d) {
  require_nonempty(d, "the paired t-test", "difference");
  PairedTTest r;
  r.n = d.size();
  r.df = static_cast<double>(r.n) - 1;
  r.mean_diff = mean_of(d);
  r.sd_diff = std::sqrt(variance(d, r.mean_diff, 1));
  const double se = r.sd_diff / std::sqrt(static_cast<double>(r.n));
  r.t = ratio(r.mean_diff, se);
  r.p_two_sided = 2 * student_t_cdf(-std::fabs(r.t), r.df);
  r.p_less = student_t_cdf(r.t, r.df);
  r.p_greater = student_t_cdf(-r.t, r.df);
  const double half_width = student_t_quantile(0.975, r.df) * se;
  r.ci95 = {r.mean_diff - half_width, r.mean_diff + half_width};
  r.cohens_dz = ratio(r.mean_diff, r.sd_diff);
  return r;
}

PairedTTest clustered_paired_t_test(const std::vector<double>& arm,
                                    const std::vector<double>& baseline,
                                    const std::vector<std::int64_t>& cluster,
                                    std::vector<ClusterMean>* means) {
  require_nonempty(arm, "the clustered paired t-test", "arm");
  require_equal_lengths(arm.size(), baseline.size(), "baseline");
  require_equal_lengths(arm.size(), cluster.size(), "cluster");
  std::map<std::int64_t, std::vector<double>> by_cluster;
  for (std::size_t i = 0; i < arm.size(); ++i)
    by_cluster[cluster[i]].push_back(arm[i] - baseline[i]);
  std::vector<double> cluster_means;
  if (means) means->clear();
  for (const auto& [c, d] : by_cluster) {
    cluster_means.push_back(mean_of(d));
    if (means) means->push_back({c, d.size(), cluster_means.back()});
  }
  return paired_t_test_of_differences(cluster_means);
}

TwoSampleTTest welch_t_test(const std::vector<double>& arm, const std::vector<double>& baseline) {
  return two_sample(arm, baseline, false);
}

TwoSampleTTest pooled_t_test(const std::vector<double>& arm, const std::vector<double>& baseline) {
  return two_sample(arm, baseline, true);
}

PairwiseWins pairwise_wins(const std::vector<double>& arm, const std::vector<double>& baseline) {
  PairwiseWins w;
  for (double a : arm) {
    for (double b : baseline) {
      if (a < b) ++w.wins;
      if (a == b) ++w.ties;
    }
  }
  w.total = arm.size() * baseline.size();
  return w;
}

double pearson_r(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) {
    throw Error("pearson_r: " + std::to_string(x.size()) + " x values but " +
                std::to_string(y.size()) + " y values");
  }
  if (x.size() < 2) return kNaN;
  const double mx = mean_of(x), my = mean_of(y);
  std::vector<double> sxy(x.size()), sxx(x.size()), syy(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy[i] = (x[i] - mx) * (y[i] - my);
    sxx[i] = (x[i] - mx) * (x[i] - mx);
    syy[i] = (y[i] - my) * (y[i] - my);
  }
  return ratio(numpy_sum(sxy), std::sqrt(numpy_sum(sxx) * numpy_sum(syy)));
}

}  // namespace qf::experiments
