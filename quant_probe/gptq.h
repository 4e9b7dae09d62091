#pragma once
// GPTQ (Frantar et al., ICLR 2023) of one weight matrix, as the authors' reference code
// (IST-DASLab/gptq, gptq.py + quant.py) runs it; docs/method.md has the steps:
//   H = 2/n · Σ XᵀX, accumulated batch by batch with a running rescale (add_batch);
//   dead input columns (H_ii = 0) get H_ii = 1 and zero weights; optional act-order
//   (columns by decreasing H_ii); damping λ = damp · mean(diag H); U = the upper Cholesky
//   factor of H⁻¹; columns in blocks with lazy updates; each column rounded on its group's
//   grid, its error (w − q)/U_ii fed to the columns after it.
// The grid is quant.py's Quantizer (perchannel, mse off), which differs from the probe's
// round-to-nearest (quant_scheme.h): the range always contains 0, there is no 1e-5 floor,
// and codes are unsigned in [0, 2^b − 1] for both symmetric and asymmetric grids
// (symmetric: zero = 2^(b−1)). A group's grid is found from the weights as they stand
// when its first column is reached (earlier blocks' updates applied, not the current
// block's); for one group per row (`_channel`) from the weights before anything.
// All arithmetic is float32, rounding half to even, as the reference's.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "quant_probe/quant_scheme.h"

namespace qf::quant {

struct GptqOptions {
  QuantScheme scheme = QuantScheme::parse("int4_asym_g128");
  double damp = 0.01;        // percdamp: λ = damp · mean(diag H)
  std::int64_t block = 128;  // columns per lazy-update block
  bool act_order = false;    // process columns by decreasing H_ii
  // Keep each element's rounding argument w/scale (diagnostics: how close to a tie a
  // code was decided, which is what tells two implementations' differences apart).
  bool keep_rounding_arguments = false;

  // ConfigError naming `prefix` + the key ("gptq.damp", ...) for a value GPTQ cannot take.
  void validate(const std::string& prefix) const;
};

// The Hessian of one Linear's inputs, accumulated as gptq.py's add_batch does.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(std::int64_t columns);
  // `input`: [b, T, in] (b sequences) or [T, in] (one). Moves H to the input's device on
  // the first call. Error naming `tensor` for another width.
  void add_batch(const at::Tensor& input, const std::string& tensor = "the layer");
  const at::Tensor& hessian() const { return h_; }  // float32 [in, in]
  std::int64_t samples() const { return n_; }       // n: sequences, not tokens
  std::int64_t tokens() const { return tokens_; }

 private:
  at::Tensor h_;
  std::int64_t n_ = 0, tokens_ = 0;
};

struct GptqResult {
  at::Tensor dequantized;         // float32 [out, in]: scale · (code − zero), original columns
  at::Tensor codes;               // uint8 [out, in] in [0, 2^b − 1], original column order
  at::Tensor scales;              // float32 [out, groups], in the order the groups were found
  at::Tensor zeros;               // float32 [out, groups] (integers)
  at::Tensor g_idx;               // int32 [in]: the group of each original column
  at::Tensor perm;                // int32 [in], act-order only: position j processes column perm[j]
  at::Tensor rounding_arguments;  // float32 [out, in] w/scale, when asked for
  double error = 0;               // Σ (w − q)² / U_jj² / 2: what fasterquant prints
  std::int64_t dead_columns = 0;
};

// `weight`: 2-D [out, in] floating tensor; `hessian`: [in, in] float32 from a
// HessianAccumulator (copied, not changed). Error naming `tensor` for mismatched shapes,
// a group size that does not divide the row, inputs that were all zero (every column
// dead: nothing to calibrate on), or a Hessian that stays singular after damping.
GptqResult gptq_quantize(const at::Tensor& weight, const at::Tensor& hessian,
                         const GptqOptions& options, const std::string& tensor = "the tensor");

}  // namespace qf::quant
