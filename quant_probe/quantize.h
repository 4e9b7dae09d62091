#pragma once
// The fast quantizers: the formulas of quant_scheme.h on libtorch tensors. On the CPU a
// fused kernel (quantize_kernel.cpp) makes two passes over each group (min/max, then
// quantize), parallel over groups; on other devices the references' own torch operations
// run. All give the bits of quantize_reference.h (tests/quant_probe hold them together).
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "quant_probe/quant_scheme.h"

namespace qf::quant {

// A weight [rows, cols] quantized: the layout `quantfork quantize` writes (interfaces.md).
struct Quantized {
  at::Tensor dequantized;  // float32 [rows, cols]: ŵ
  at::Tensor codes;        // uint8 (asym) or int8 (sym) [rows, cols]; 0 where ŵ is NaN
  at::Tensor scales;       // float32 [rows, groups]
  at::Tensor zeros;        // float32 [rows, groups]: the integer zero points; 0 when sym
};

// What a fake quantization measures on the way, summed in double.
struct QuantErrorSums {
  double error_sq = 0;     // Σ (w − ŵ)²
  double weight_sq = 0;    // Σ w²
  double residual = 0;     // Σ |w/scale − round(w/scale)| (the grid residual's numerator)
  std::int64_t count = 0;  // elements

  // ‖W − Ŵ‖ / ‖W‖ (NaN for an all-zero W: there is no relative error to speak of).
  double relative_error() const;
  // Mean |w/scale − round(w/scale)|: 0.25 for weights spread evenly between grid points.
  double grid_residual() const;
};

// `w`: a 2-D floating tensor on any device (converted to float32; the result lives on
// w's device). Error naming `tensor` for another rank, an empty tensor or a group size
// that does not divide the rows.
Quantized quantize(const at::Tensor& w, const QuantScheme& scheme,
                   const std::string& tensor = "the tensor");
// The same by the references' torch operations, whatever the device (the path quantize
// takes off the CPU; on the CPU, tests compare it with the fused kernel).
Quantized quantize_torch_ops(const at::Tensor& w, const QuantScheme& scheme,
                             const std::string& tensor = "the tensor");

// ŵ only, written into `out` (a float32 tensor shaped like w on w's device; it may be w
// itself, for quantizing in place), and the sums. The probe's path: no codes, no scales.
QuantErrorSums fake_quantize_into(const at::Tensor& w, const at::Tensor& out,
                                  const QuantScheme& scheme,
                                  const std::string& tensor = "the tensor");

// The instruction sets of the fused CPU kernel: `portable` (plain loops at the build's
// baseline) everywhere, `avx2` (intrinsics) on x86-64 CPUs that have it, where it is the
// default. They give the same bits, sums included.
enum class KernelIsa { portable, avx2 };
const char* kernel_isa_name(KernelIsa isa);
std::vector<KernelIsa> available_kernel_isas();  // this CPU's, `portable` first
KernelIsa kernel_isa();                          // the one in use

// Makes the fused kernel use `isa` while it lives (tests and benchmarks compare them);
// Error when this CPU or build lacks it. Not for use while other threads quantize.
class ScopedKernelIsa {
 public:
  explicit ScopedKernelIsa(KernelIsa isa);
  ~ScopedKernelIsa();
  ScopedKernelIsa(const ScopedKernelIsa&) = delete;
  ScopedKernelIsa& operator=(const ScopedKernelIsa&) = delete;

 private:
  KernelIsa saved_;
};

}  // namespace qf::quant
