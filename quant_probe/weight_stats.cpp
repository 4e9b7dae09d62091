#include "quant_probe/weight_stats.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/torch/compat.h"

namespace qf::quant {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// scipy: NaN when m2 <= (np.finfo(float64).resolution · mean)², resolution being 1e-15.
double kurtosis_from_moments(double mean, double m2, double m4) {
  const double floor = 1e-15 * mean;
  if (m2 <= floor * floor) return kNaN;
  return m4 / (m2 * m2) - 3.0;
}

// Sums of f(i) over [0, n) in blocks: each block's sum in order, then the block sums in
// order. Blocks keep the rounding error small (as numpy's pairwise sums do) and make the
// result independent of the number of threads.
template <class Sums, class F>
Sums blocked_sum(std::int64_t n, F&& f) {
  constexpr std::int64_t kBlock = 8192;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<Sums> partial(static_cast<std::size_t>(blocks));
  at::parallel_for(0, blocks, 4, [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      Sums s{};
      for (std::int64_t i = b * kBlock, end = std::min(n, i + kBlock); i < end; ++i) f(i, s);
      partial[static_cast<std::size_t>(b)] = s;
    }
  });
  Sums total{};
  for (const auto& s : partial) total += s;
  return total;
}

struct Moments {
  double m2 = 0, m4 = 0;
  Moments& operator+=(const Moments& o) {
    m2 += o.m2;
    m4 += o.m4;
    return *this;
  }
};

struct Sum1 {
  double s = 0;
  Sum1& operator+=(const Sum1& o) {
    s += o.s;
    return *this;
  }
};

}  // namespace

double excess_kurtosis_reference(const float* x, std::int64_t n) {
  if (n == 0) return kNaN;
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double m2 = 0, m4 = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double d = x[i] - mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  return kurtosis_from_moments(mean, m2 / static_cast<double>(n), m4 / static_cast<double>(n));
}

double excess_kurtosis(const at::Tensor& w) {
  at::NoGradGuard no_grad;
  const std::int64_t n = w.numel();
  if (n == 0) return kNaN;
  if (!w.device().is_cpu()) {
    const at::Tensor x = w.to(at::kDouble).reshape({-1});
    const at::Tensor mean = x.mean();
    const at::Tensor d2 = (x - mean).square();
    return kurtosis_from_moments(mean.item<double>(), d2.mean().item<double>(),
                                 d2.square().mean().item<double>());
  }
  const at::Tensor c = w.to(at::kFloat).contiguous();
  const float* x = c.data_ptr<float>();
  const double mean = blocked_sum<Sum1>(n, [x](std::int64_t i, Sum1& s) { s.s += x[i]; }).s /
                      static_cast<double>(n);
  const Moments m = blocked_sum<Moments>(n, [x, mean](std::int64_t i, Moments& s) {
    const double d = x[i] - mean, d2 = d * d;
    s.m2 += d2;
    s.m4 += d2 * d2;
  });
  return kurtosis_from_moments(mean, m.m2 / static_cast<double>(n), m.m4 / static_cast<double>(n));
}

namespace {

// The definition in weight_stats.h, on a group's sorted values.
bool outlier_set_sorted(const std::vector<float>& v, double ratio) {
  const std::size_t g = v.size();
  if (g < 2) return false;
  const double range = static_cast<double>(v[g - 1]) - v[0];
  const double without =
      std::min(static_cast<double>(v[g - 2]) - v[0], static_cast<double>(v[g - 1]) - v[1]);
  return range > 0 && without <= ratio * range;
}

}  // namespace

double outlier_group_fraction_reference(const float* w, std::int64_t rows, std::int64_t cols,
                                        std::int64_t group, bool symmetric, double ratio) {
  const std::int64_t groups = rows * (cols / group);
  std::int64_t outliers = 0;
  std::vector<float> v(static_cast<std::size_t>(group));
  for (std::int64_t gi = 0; gi < groups; ++gi) {
    for (std::int64_t i = 0; i < group; ++i) {
      const float x = w[gi * group + i];
      v[static_cast<std::size_t>(i)] = symmetric ? std::fabs(x) : x;
    }
    std::sort(v.begin(), v.end());
    if (symmetric) {
      // Magnitudes: the range is the largest alone, so drop the smallest-end candidate.
      const std::size_t g = v.size();
      outliers += g >= 2 && v[g - 1] > 0 && v[g - 2] <= ratio * v[g - 1];
    } else {
      outliers += outlier_set_sorted(v, ratio);
    }
  }
  return groups == 0 ? kNaN : static_cast<double>(outliers) / static_cast<double>(groups);
}

double outlier_group_fraction(const at::Tensor& w, const QuantScheme& scheme, double ratio,
                              const std::string& tensor) {
  at::NoGradGuard no_grad;
  const std::int64_t group = scheme.group_length(w.size(1), tensor);
  const at::Tensor c = w.to(at::kCPU, at::kFloat).contiguous();
  const float* x = c.data_ptr<float>();
  const std::int64_t groups = c.numel() / group;
  if (groups == 0) return kNaN;
  const bool sym = scheme.symmetric;
  // One pass per group keeping the two largest and two smallest values (magnitudes when
  // symmetric), instead of sorting it.
  const Sum1 count = blocked_sum<Sum1>(groups, [=](std::int64_t gi, Sum1& s) {
    const float inf = std::numeric_limits<float>::infinity();
    float hi1 = -inf, hi2 = -inf, lo1 = inf, lo2 = inf;
    for (std::int64_t i = 0; i < group; ++i) {
      const float v = sym ? std::fabs(x[gi * group + i]) : x[gi * group + i];
      if (v > hi1) {
        hi2 = hi1;
        hi1 = v;
      } else if (v > hi2) {
        hi2 = v;
      }
      if (v < lo1) {
        lo2 = lo1;
        lo1 = v;
      } else if (v < lo2) {
        lo2 = v;
      }
    }
    if (group < 2) return;
    bool outlier;
    if (sym) {
      outlier = hi1 > 0 && hi2 <= ratio * hi1;
    } else {
      const double range = static_cast<double>(hi1) - lo1;
      const double without =
          std::min(static_cast<double>(hi2) - lo1, static_cast<double>(hi1) - lo2);
      outlier = range > 0 && without <= ratio * range;
    }
    s.s += outlier;
  });
  return count.s / static_cast<double>(groups);
}

std::int64_t count_nonfinite(const at::Tensor& w) {
  at::NoGradGuard no_grad;
  return w.numel() - at::isfinite(w).sum().item<std::int64_t>();
}

CheckpointStats aggregate(const std::vector<TensorStats>& tensors) {
  CheckpointStats out;
  out.tensors = static_cast<std::int64_t>(tensors.size());
  const auto mean_of = [&](double TensorStats::*member) {
    double sum = 0;
    std::int64_t n = 0;
    for (const auto& t : tensors) {
      if (t.nonfinite > 0 || !std::isfinite(t.*member)) continue;
      sum += t.*member;
      ++n;
    }
    return n == 0 ? kNaN : sum / static_cast<double>(n);
  };
  out.kurtosis_mean = mean_of(&TensorStats::kurtosis);
  out.rel_error_int4_mean = mean_of(&TensorStats::rel_error_int4);
  out.rel_error_int8_mean = mean_of(&TensorStats::rel_error_int8);
  out.grid_residual_mean = mean_of(&TensorStats::grid_residual);
  out.outlier_groups_mean = mean_of(&TensorStats::outlier_groups);
  for (const auto& t : tensors) {
    if (t.nonfinite > 0) out.nonfinite_tensors.push_back(t.name);
  }
  return out;
}

}  // namespace qf::quant
