#pragma once
// GPT-NeoX's attention pieces: partial rotary embedding (rotate-half convention) and
// causal scaled-dot-product attention, with an exact math path next to libtorch's fused
// kernel (where it has one) and a test holding them together.
#include <ATen/ATen.h>

#include <utility>

namespace qf::model {

// cos and sin [T, rotary_ndims] for positions 0..T-1, computed in float32 exactly as HF
// does (inv_freq = 1 / base^(2i / r), freqs = t * inv_freq, emb = cat(freqs, freqs)),
// then cast to `dtype`.
std::pair<at::Tensor, at::Tensor> rotary_tables(std::int64_t seq_len, std::int64_t rotary_ndims,
                                                double base, at::Device device,
                                                at::ScalarType dtype);

// x: [B, H, T, D] (any strides). Rotates the first cos.size(-1) dimensions,
// x * cos + rotate_half(x) * sin with rotate_half(x) = cat(-x2, x1), and passes the rest
// through. Returns a contiguous [B, H, T, D] tensor.
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// softmax(q k^T / sqrt(D) + causal mask) v over [B, H, T, D] tensors, softmax in float32:
// the reference path, which every libtorch has.
at::Tensor causal_attention_math(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 double dropout_p);
// The fused kernel where libtorch has one (torch_compat::kHasSdpa); else, for float32 on
// the CPU without dropout, the math path's arithmetic with oneDNN products (see
// core/torch/cpu_gemm.h): without gradients a few heads at a time (the scores of all
// heads never exist at once), with them a backward that keeps only the probabilities;
// else the math path itself.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double dropout_p);

}  // namespace qf::model
