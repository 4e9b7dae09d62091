#include "quant_probe/quantize.h"

#include <cmath>
#include <limits>

#include "core/errors.h"
#include "quant_probe/quantize_kernel.h"

namespace qf::quant {

double QuantErrorSums::relative_error() const {
  return std::sqrt(error_sq) / std::sqrt(weight_sq);
}

double QuantErrorSums::grid_residual() const {
  return count == 0 ? std::numeric_limits<double>::quiet_NaN()
                    : residual / static_cast<double>(count);
}

namespace {

std::string shape_text(at::IntArrayRef s) {
  std::string t = "[";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

// The group length for `w`, after checking what every path needs.
std::int64_t checked_group(const at::Tensor& w, const QuantScheme& scheme,
                           const std::string& tensor) {
  if (w.dim() != 2) {
    throw Error("cannot quantize " + tensor + ": expected a 2-D [out, in] weight, found shape " +
                shape_text(w.sizes()));
  }
  if (w.numel() == 0)
    throw Error("cannot quantize " + tensor + ": it is empty " + shape_text(w.sizes()));
  if (!at::isFloatingType(w.scalar_type())) {
    throw Error("cannot quantize " + tensor + ": it holds " +
                std::string(c10::toString(w.scalar_type())) + ", not floating-point numbers");
  }
  return scheme.group_length(w.size(1), tensor);
}

at::ScalarType code_type(const QuantScheme& scheme) {
  return scheme.symmetric ? at::kChar : at::kByte;
}

// The references' torch operations on groups [n, group], all float32. Returns ŵ, q,
// scale, zero and r = w/scale (kept for the residual).
struct OpsResult {
  at::Tensor dequantized, q, scale, zero, r;
};
OpsResult torch_ops(const at::Tensor& groups, const QuantScheme& scheme) {
  const double qmax = scheme.qmax(), qmin = scheme.qmin();
  OpsResult o;
  if (scheme.symmetric) {
    o.scale = groups.abs().amax(1, true).clamp_min(kMinRange) / qmax;
    o.zero = at::zeros_like(o.scale);
    o.r = groups / o.scale;
    o.q = o.r.round().clamp(qmin, qmax);
    o.dequantized = o.q * o.scale;
  } else {
    const at::Tensor hi = groups.amax(1, true), lo = groups.amin(1, true);
    o.scale = (hi - lo).clamp_min(kMinRange) / qmax;
    o.zero = (-(lo / o.scale).round()).clamp(qmin, qmax);
    o.r = groups / o.scale;
    o.q = (o.r.round() + o.zero).clamp(qmin, qmax);
    o.dequantized = (o.q - o.zero) * o.scale;
  }
  return o;
}

bool use_fused_kernel(const at::Tensor& w) {
  return w.device().is_cpu();
}

}  // namespace

Quantized quantize_torch_ops(const at::Tensor& w, const QuantScheme& scheme,
                             const std::string& tensor) {
  const std::int64_t group = checked_group(w, scheme, tensor);
  at::NoGradGuard no_grad;
  const std::int64_t rows = w.size(0), cols = w.size(1), per_row = cols / group;
  const OpsResult o = torch_ops(w.to(at::kFloat).reshape({-1, group}), scheme);
  return {o.dequantized.reshape({rows, cols}),
          at::nan_to_num(o.q, 0.0).to(code_type(scheme)).reshape({rows, cols}),
          o.scale.reshape({rows, per_row}), o.zero.reshape({rows, per_row})};
}

Quantized quantize(const at::Tensor& w, const QuantScheme& scheme, const std::string& tensor) {
  const std::int64_t group = checked_group(w, scheme, tensor);
  if (!use_fused_kernel(w)) return quantize_torch_ops(w, scheme, tensor);
  at::NoGradGuard no_grad;
  const at::Tensor src = w.to(at::kFloat).contiguous();
  const std::int64_t rows = w.size(0), cols = w.size(1), per_row = cols / group;
  Quantized q{at::empty({rows, cols}, at::kFloat), at::empty({rows, cols}, code_type(scheme)),
              at::empty({rows, per_row}, at::kFloat), at::empty({rows, per_row}, at::kFloat)};
  const kernel::Kernel k{src.data_ptr<float>(),
                         q.dequantized.data_ptr<float>(),
                         static_cast<std::uint8_t*>(q.codes.data_ptr()),
                         q.scales.data_ptr<float>(),
                         q.zeros.data_ptr<float>(),
                         group,
                         static_cast<float>(scheme.qmin()),
                         static_cast<float>(scheme.qmax()),
                         scheme.symmetric};
  kernel::run(k, rows * per_row);
  return q;
}

QuantErrorSums fake_quantize_into(const at::Tensor& w, const at::Tensor& out,
                                  const QuantScheme& scheme, const std::string& tensor) {
  const std::int64_t group = checked_group(w, scheme, tensor);
  if (out.sizes() != w.sizes() || out.scalar_type() != at::kFloat || out.device() != w.device() ||
      !out.is_contiguous()) {
    throw Error("fake quantization of " + tensor + ": the output must be a contiguous float32 " +
                shape_text(w.sizes()) + " tensor on " + w.device().str());
  }
  at::NoGradGuard no_grad;
  const std::int64_t groups = w.numel() / group;
  if (use_fused_kernel(w)) {
    // w itself when it is float32 and contiguous, so that out == w works in place.
    const at::Tensor src = w.to(at::kFloat).contiguous();
    const kernel::Kernel k{src.data_ptr<float>(),
                           out.data_ptr<float>(),
                           nullptr,
                           nullptr,
                           nullptr,
                           group,
                           static_cast<float>(scheme.qmin()),
                           static_cast<float>(scheme.qmax()),
                           scheme.symmetric};
    return kernel::run(k, groups);
  }
  const at::Tensor src = w.to(at::kFloat).reshape({-1, group});
  const OpsResult o = torch_ops(src, scheme);
  QuantErrorSums sums;
  sums.error_sq =
      (src.to(at::kDouble) - o.dequantized.to(at::kDouble)).square().sum().item<double>();
  sums.weight_sq = src.to(at::kDouble).square().sum().item<double>();
  sums.residual = (o.r - o.r.round()).abs().sum(at::kDouble).item<double>();
  sums.count = w.numel();
  out.copy_(o.dequantized.view(out.sizes()));
  return sums;
}

}  // namespace qf::quant
