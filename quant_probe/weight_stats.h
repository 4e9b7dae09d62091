#pragma once
// Weight statistics of quantized tensors (method.md, "The probe"), each with a plain
// reference next to its fast path:
//
// - excess kurtosis: Fisher's, biased, as scipy.stats.kurtosis(x, fisher=True,
//   bias=True) of the flattened tensor in float64: m4 / m2² − 3 with the central moments
//   m_k = mean((x − mean(x))^k); NaN, as scipy, when m2 <= (1e-15 · mean(x))² (a
//   constant tensor). Accumulated in double.
// - outlier-set groups: the fraction of quantization groups whose range is set by one
//   weight. With a group's values sorted v(1) <= … <= v(G), its range is R = v(G) − v(1)
//   and the range without its single most extreme weight R' = min(v(G−1) − v(1),
//   v(G) − v(2)); the group is outlier-set when R > 0 and R' <= ratio · R (default
//   ratio 0.5: one weight at least doubles the grid step of all the others). For a
//   symmetric scheme the range is max |w|, so R = a(G), R' = a(G−1) over the sorted
//   magnitudes. Groups of one weight are never outlier-set.
// - the relative error and grid residual come with the quantizer (quantize.h).
//
// Tensors with NaN or Inf weights get NaN statistics and a count of the bad weights; the
// checkpoint's means leave them out and name them (they are reported, not averaged in).
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "quant_probe/quant_scheme.h"

namespace qf::quant {

double excess_kurtosis_reference(const float* x, std::int64_t n);
// Any floating dtype and device.
double excess_kurtosis(const at::Tensor& w);

double outlier_group_fraction_reference(const float* w, std::int64_t rows, std::int64_t cols,
                                        std::int64_t group, bool symmetric, double ratio);
// `w` [rows, cols], grouped as `scheme` groups it (Error when the group does not divide
// the rows), any floating dtype and device.
double outlier_group_fraction(const at::Tensor& w, const QuantScheme& scheme, double ratio,
                              const std::string& tensor = "the tensor");

// NaN and ±Inf elements.
std::int64_t count_nonfinite(const at::Tensor& w);

// One quantized tensor of a probe.
struct TensorStats {
  std::string name;
  std::int64_t numel = 0;
  std::int64_t nonfinite = 0;  // NaN/Inf weights; when > 0 every statistic below is NaN
  double kurtosis = 0;
  double rel_error_int4 = 0;  // ‖W − Ŵ‖/‖W‖ under the probe's INT4 scheme
  double rel_error_int8 = 0;  // and its INT8 scheme
  double grid_residual = 0;   // mean |w/scale − round(w/scale)|, INT4 scales
  double outlier_groups = 0;  // fraction of INT4 groups set by one outlier
  // With GPTQ (probe.gptq): ‖W − Q‖/‖W‖ and ‖(W − Q)Xᵀ‖/‖WXᵀ‖ on its calibration inputs.
  double rel_error_int4_gptq = std::numeric_limits<double>::quiet_NaN();
  double rel_output_error_int4_gptq = std::numeric_limits<double>::quiet_NaN();
};

// Unweighted means over the tensors whose statistic is finite.
struct CheckpointStats {
  double kurtosis_mean = 0;
  double rel_error_int4_mean = 0;
  double rel_error_int8_mean = 0;
  double grid_residual_mean = 0;
  double outlier_groups_mean = 0;
  std::int64_t tensors = 0;
  std::vector<std::string> nonfinite_tensors;  // left out of every mean
};
CheckpointStats aggregate(const std::vector<TensorStats>& tensors);

}  // namespace qf::quant
