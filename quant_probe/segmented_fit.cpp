#include "quant_probe/segmented_fit.h"

#include <algorithm>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>

namespace qf::quant {

namespace {

// The least residual standard deviation (units of y): far below any measured noise (a log
// gap from float32 perplexities is known to ~1e-6), far above double rounding.
constexpr double kResolution = 1e-9;

using Column = std::vector<double>;

double t_quantile(double confidence, double dof) {
  return boost::math::quantile(boost::math::students_t(dof), (1.0 + confidence) / 2.0);
}

double dot(const Column& a, const Column& b) {
  const double *x = a.data(), *y = b.data();
  const std::size_t n = a.size();
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

// Least squares of a tall n x p system (p <= 4 columns) by Householder QR (the normal
// equations would square the condition number of the hinge columns).
struct LeastSquares {
  std::vector<double> coef;
  std::vector<std::vector<double>> r_inverse;  // R⁻¹, upper triangular: (XᵀX)⁻¹ = R⁻¹ R⁻ᵀ
  double sse = 0;
};

LeastSquares solve(std::vector<Column> a, Column y) {
  const std::size_t n = y.size(), p = a.size();
  for (std::size_t k = 0; k < p; ++k) {
    double norm = 0;
    for (std::size_t i = k; i < n; ++i) norm += a[k][i] * a[k][i];
    norm = std::sqrt(norm);
    if (norm == 0) continue;
    const double alpha = a[k][k] > 0 ? -norm : norm;
    Column v(a[k].begin() + static_cast<std::ptrdiff_t>(k), a[k].end());
    v[0] -= alpha;
    const double vv = dot(v, v);
    if (vv == 0) continue;
    const auto reflect = [&](Column& c) {
      double d = 0;
      for (std::size_t i = k; i < n; ++i) d += v[i - k] * c[i];
      for (std::size_t i = k; i < n; ++i) c[i] -= 2 * d / vv * v[i - k];
    };
    for (std::size_t j = k; j < p; ++j) reflect(a[j]);
    reflect(y);
  }
  // R[k][j] is now a[j][k].
  LeastSquares out;
  out.coef.assign(p, 0.0);
  for (std::size_t k = p; k-- > 0;) {
    double s = y[k];
    for (std::size_t j = k + 1; j < p; ++j) s -= a[j][k] * out.coef[j];
    out.coef[k] = s / a[k][k];
  }
  for (std::size_t i = p; i < n; ++i) out.sse += y[i] * y[i];
  out.r_inverse.assign(p, std::vector<double>(p, 0.0));
  for (std::size_t j = 0; j < p; ++j) {  // columns of R⁻¹ by back substitution of R z = e_j
    for (std::size_t k = j + 1; k-- > 0;) {
      double s = k == j ? 1.0 : 0.0;
      for (std::size_t l = k + 1; l <= j; ++l) s -= a[l][k] * out.r_inverse[l][j];
      out.r_inverse[k][j] = s / a[k][k];
    }
  }
  return out;
}

// vᵀ (XᵀX)⁻¹ v = ‖R⁻ᵀ v‖².
double quadratic_form(const LeastSquares& ls, const std::vector<double>& v) {
  double total = 0;
  for (std::size_t j = 0; j < v.size(); ++j) {
    double w = 0;  // (R⁻ᵀ v)_j = Σ_k R⁻¹[k][j] v_k
    for (std::size_t k = 0; k <= j; ++k) w += ls.r_inverse[k][j] * v[k];
    total += w * w;
  }
  return total;
}

// x scaled to [0, 1], which keeps the columns comparable; slopes are scaled back to per
// unit of x.
struct Scaled {
  Column u;
  double scale = 1;
  explicit Scaled(const std::vector<double>& x) : u(x.size()), scale(x.back() - x.front()) {
    for (std::size_t i = 0; i < x.size(); ++i) u[i] = (x[i] - x.front()) / scale;
  }
  Column hinge(std::size_t k) const {
    Column h(u.size());
    for (std::size_t i = 0; i < u.size(); ++i) h[i] = std::max(0.0, u[i] - u[k]);
    return h;
  }
};

// Orthonormal columns, for the search: with them, the squared residual after one more
// hinge column costs a few dot products over the hinge's non-zero tail instead of a QR.
class Basis {
 public:
  // v minus its projection on the columns, twice over (one pass of Gram-Schmidt loses
  // orthogonality when v is nearly in their span).
  void project_out(Column& v) const {
    for (int pass = 0; pass < 2; ++pass) {
      for (const auto& c : q_) {
        const double p = dot(c, v);
        const double* w = c.data();
        double* out = v.data();
        for (std::size_t i = 0, n = v.size(); i < n; ++i) out[i] -= p * w[i];
      }
    }
  }
  void add(Column v) {
    project_out(v);
    const double norm = std::sqrt(dot(v, v));
    for (double& e : v) e /= norm;
    q_.push_back(std::move(v));
  }
  const std::vector<Column>& columns() const { return q_; }

 private:
  std::vector<Column> q_;
};

// The least squares of y on a basis plus hinge columns (u − u[k])+, one k at a time.
class HingeSearch {
 public:
  HingeSearch(const Scaled& s, const Basis& basis, const Column& y)
      : s_(s), basis_(basis), residual_(y) {
    basis.project_out(residual_);
    rr_ = dot(residual_, residual_);
  }
  // ‖y − fit‖² with the hinge at k added: ‖r‖² − (h·r)² / ‖h⊥‖², where r is y's residual
  // on the basis and h⊥ = h minus its projection on it (r is orthogonal to the basis, so
  // h·r = h⊥·r).
  double sse(std::size_t k, double hinge_norm2) const {
    double perp = hinge_norm2;
    for (const auto& q : basis_.columns()) {
      const double p = tail_dot(k, q);
      perp -= p * p;
    }
    if (!(perp > 1e-12 * hinge_norm2)) return rr_;  // the hinge is (nearly) in the basis
    const double hr = tail_dot(k, residual_);
    return rr_ - hr * hr / perp;
  }

 private:
  // h·v, summed where h = (u − u[k])+ is non-zero. The innermost loop of the search:
  // plain pointers keep it fast in unoptimised (sanitizer) builds too.
  double tail_dot(std::size_t k, const Column& v) const {
    const double* u = s_.u.data();
    const double* w = v.data();
    const std::size_t n = v.size();
    double d = 0;
    for (std::size_t i = k; i < n; ++i) d += (u[i] - u[k]) * w[i];
    return d;
  }
  const Scaled& s_;
  const Basis& basis_;
  Column residual_;
  double rr_ = 0;
};

// The placement of `count` knots (1 or 2) with the least squared residual, the earliest
// on ties; with `kept`, only placements with a knot there.
std::vector<std::size_t> best_knots(const Scaled& s, const Column& y, std::size_t count,
                                    std::size_t min_points, std::optional<std::size_t> kept) {
  const std::size_t n = y.size();
  Column hinge_norm2(n);
  for (std::size_t k = 0; k < n; ++k) {
    const Column h = s.hinge(k);
    hinge_norm2[k] = dot(h, h);
  }
  double best = std::numeric_limits<double>::infinity();
  std::vector<std::size_t> knots;
  const auto search_last = [&](const Basis& basis, std::size_t from,
                               const std::vector<std::size_t>& before) {
    const HingeSearch search(s, basis, y);
    const bool kept_before = !kept || std::count(before.begin(), before.end(), *kept) > 0;
    for (std::size_t k = from; k + min_points <= n; ++k) {
      if (!kept_before && k != *kept) continue;
      const double sse = search.sse(k, hinge_norm2[k]);
      if (sse < best) {
        best = sse;
        knots = before;
        knots.push_back(k);
      }
    }
  };
  Basis line;
  line.add(Column(n, 1.0));
  line.add(s.u);
  if (count == 1) {
    search_last(line, min_points, {});
    return knots;
  }
  for (std::size_t k1 = min_points; k1 + 2 * min_points <= n; ++k1) {
    if (kept && k1 > *kept) break;
    Basis basis = line;
    basis.add(s.hinge(k1));
    search_last(basis, k1 + min_points, {k1});
  }
  return knots;
}

}  // namespace

SegmentedFit fit_knots(const std::vector<double>& x, const std::vector<double>& y,
                       const std::vector<std::size_t>& knots, double confidence) {
  const std::size_t n = x.size(), p = knots.size() + 2;
  const Scaled s(x);
  std::vector<Column> columns{Column(n, 1.0), s.u};
  for (std::size_t k : knots) columns.push_back(s.hinge(k));
  const LeastSquares ls = solve(columns, y);
  SegmentedFit f;
  f.sse = ls.sse;
  f.confidence = confidence;
  const double dof = static_cast<double>(n - p);
  f.variance = std::max(ls.sse / dof, kResolution * kResolution);
  f.t = t_quantile(confidence, dof);
  // The estimate Σ v_k b_k, per unit of x.
  const auto estimate = [&](const std::vector<double>& v) {
    Estimate e;
    for (std::size_t k = 0; k < p; ++k) e.value += v[k] * ls.coef[k];
    e.value /= s.scale;
    e.se = std::sqrt(f.variance * quadratic_form(ls, v)) / s.scale;
    e.low = e.value - f.t * e.se;
    e.high = e.value + f.t * e.se;
    return e;
  };
  std::vector<std::size_t> bounds{0};
  bounds.insert(bounds.end(), knots.begin(), knots.end());
  bounds.push_back(n);
  std::vector<double> slope(p, 0.0);
  slope[1] = 1;  // segment 1: b1; each later segment adds its knot's change
  for (std::size_t k = 0; k + 1 < bounds.size(); ++k) {
    if (k > 0) {
      std::vector<double> change(p, 0.0);
      change[k + 1] = 1;
      f.slope_change.push_back(estimate(change));
      slope[k + 1] = 1;
    }
    SegmentFit seg;
    seg.first = bounds[k];
    seg.last = bounds[k + 1] - 1;
    seg.start_step = static_cast<std::int64_t>(x[seg.first]);
    seg.end_step = static_cast<std::int64_t>(x[seg.last]);
    seg.slope = estimate(slope);
    f.segments.push_back(seg);
  }
  return f;
}

std::optional<SegmentedFit> fit_best_knots(const std::vector<double>& x,
                                           const std::vector<double>& y, std::size_t knots,
                                           std::size_t min_points, double confidence,
                                           std::optional<std::size_t> kept) {
  const std::size_t n = x.size();
  if (knots < 1 || knots > 2 || min_points < 1 || n < (knots + 1) * min_points) {
    return std::nullopt;
  }
  const std::vector<std::size_t> at = best_knots(Scaled(x), y, knots, min_points, kept);
  if (at.empty()) return std::nullopt;  // no admissible placement keeps `kept`
  const std::size_t candidates = n - (knots + 1) * min_points + 1;
  SegmentedFit f = fit_knots(x, y, at, 1.0 - (1.0 - confidence) / static_cast<double>(candidates));
  f.candidates = candidates;
  return f;
}

SecondKnotTest test_second_knot(const SegmentedFit& one, const SegmentedFit& two) {
  return {(one.sse - two.sse) / two.variance, two.t * two.t};
}

}  // namespace qf::quant
