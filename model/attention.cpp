#include "model/attention.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/torch/compat.h"
#include "core/torch/cpu_gemm.h"

namespace qf::model {

std::pair<at::Tensor, at::Tensor> rotary_tables(std::int64_t seq_len, std::int64_t rotary_ndims,
                                                double base, at::Device device,
                                                at::ScalarType dtype) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  const at::Tensor exponents =
      at::arange(0, rotary_ndims, 2, f32.dtype(at::kLong)).to(at::kFloat) / rotary_ndims;
  // Python's `1.0 / t` is t.reciprocal() * 1.0, which is what HF's inv_freq evaluates.
  const at::Tensor inv_freq = at::reciprocal(at::pow(base, exponents));
  const at::Tensor t = at::arange(seq_len, f32.dtype(at::kLong)).to(at::kFloat);
  const at::Tensor freqs = at::outer(t, inv_freq);
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const std::int64_t rotary = cos.size(-1), half = rotary / 2;
  // split, not narrow: the backward of split is one cat, that of each narrow a zero-filled
  // tensor of x's size.
  const auto parts = x.split_with_sizes({half, half, x.size(-1) - rotary}, -1);
  const at::Tensor &x1 = parts[0], &x2 = parts[1];
  // cos and sin repeat after `half` (emb = cat(freqs, freqs)), so each half of the
  // rotated part needs only the first half of the tables. x1*c - x2*s rounds exactly as
  // HF's x1*c + (-x2)*s: negation is exact.
  const at::Tensor c = cos.narrow(-1, 0, half), s = sin.narrow(-1, 0, half);
  return at::cat({x1 * c - x2 * s, x2 * c + x1 * s, parts[2]}, -1);
}

namespace {

// HF scales scores by 1 / sqrt(float32(head_dim)).
double score_scale(std::int64_t head_dim) {
  return 1.0 / static_cast<double>(std::sqrt(static_cast<float>(head_dim)));
}

// The causal mask as an additive [T, T] term: 0 on and below the diagonal, -inf above.
// Added to the scores it leaves them bitwise as they were, and the masked ones softmax to
// exactly 0, as HF's finfo.min does.
at::Tensor causal_bias(std::int64_t t, const at::TensorOptions& options) {
  return at::full({t, t}, -std::numeric_limits<double>::infinity(), options).triu_(1);
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The math path with its five batched products run by gemm_out (oneDNN on float32 CPU)
// and a hand-written backward that saves only q, k, v and the probabilities: the same
// arithmetic as causal_attention_math, without dropout.
class GemmCausalAttention : public torch::autograd::Function<GemmCausalAttention> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v) {
    const std::int64_t b = q.size(0), h = q.size(1), t = q.size(2), d = q.size(3);
    const double scale = score_scale(d);
    const at::Tensor q3 = q.reshape({b * h, t, d}), k3 = k.reshape({b * h, t, d});
    const at::Tensor v3 = v.reshape({b * h, t, d});
    // scores = mask + scale * q k^T, as one accumulating product into the mask's copy.
    at::Tensor scores = causal_bias(t, q.options()).expand({b * h, t, t}).contiguous();
    gemm_out(scores, q3, k3.transpose(1, 2), /*accumulate=*/true, scale);
    const at::Tensor probs = at::softmax(scores, -1);
    ctx->save_for_backward({q3, k3, v3, probs});
    return gemm(probs, v3).view({b, h, t, d});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q3 = saved[0], &k3 = saved[1], &v3 = saved[2], &probs = saved[3];
    const auto sizes = grads[0].sizes().vec();
    const at::Tensor g = grads[0].reshape(q3.sizes());
    const double scale = score_scale(q3.size(2));
    const at::Tensor grad_scores =
        at::_softmax_backward_data(gemm(g, v3.transpose(1, 2)), probs, -1, at::kFloat);
    return {gemm(grad_scores, k3, scale).view(sizes),
            gemm(grad_scores.transpose(1, 2), q3, scale).view(sizes),
            gemm(probs.transpose(1, 2), g).view(sizes)};
  }
};

// Without gradients nothing needs the probabilities afterwards, so they are formed a few
// heads at a time in one reused buffer of about 8 MB, softmax in place: the [B*H, T, T]
// scores and probabilities (100 MB each for Pythia's 4 x 512 batch) never exist whole.
// Per head it is GemmCausalAttention's arithmetic.
at::Tensor causal_attention_no_grad(const at::Tensor& q, const at::Tensor& k,
                                    const at::Tensor& v) {
  const std::int64_t b = q.size(0), h = q.size(1), t = q.size(2), d = q.size(3);
  const double scale = score_scale(d);
  const at::Tensor q3 = q.reshape({b * h, t, d}), k3 = k.reshape({b * h, t, d});
  const at::Tensor v3 = v.reshape({b * h, t, d});
  const at::Tensor bias = causal_bias(t, q.options());
  const std::int64_t group =
      std::clamp<std::int64_t>((std::int64_t{8} << 20) / (t * t * q.element_size()), 1, b * h);
  const at::Tensor buffer = at::empty({group, t, t}, q.options());
  const at::Tensor out = at::empty({b * h, t, d}, q.options());
  for (std::int64_t first = 0; first < b * h; first += group) {
    const std::int64_t n = std::min(group, b * h - first);
    at::Tensor scores = buffer.narrow(0, 0, n);
    scores.copy_(bias.expand({n, t, t}));
    gemm_out(scores, q3.narrow(0, first, n), k3.narrow(0, first, n).transpose(1, 2),
             /*accumulate=*/true, scale);
    at::_softmax_out(scores, scores, -1, /*half_to_float=*/false);  // in place, bitwise
    gemm_out(out.narrow(0, first, n), scores, v3.narrow(0, first, n));
  }
  return out.view({b, h, t, d});
}

}  // namespace

at::Tensor causal_attention_math(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 double dropout_p) {
  const std::int64_t b = q.size(0), h = q.size(1), t = q.size(2), d = q.size(3);
  // The mask is the additive term of the one baddbmm that HF also uses (with zeros), so
  // scaling and masking cost no extra pass over the scores.
  const at::Tensor scores =
      at::baddbmm(causal_bias(t, q.options()), q.reshape({b * h, t, d}),
                  k.reshape({b * h, t, d}).transpose(1, 2), 1.0, score_scale(d));
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(v.scalar_type());
  if (dropout_p > 0) probs = at::dropout(probs, dropout_p, /*train=*/true);
  return at::bmm(probs, v.reshape({b * h, t, d})).view({b, h, t, d});
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double dropout_p) {
  if constexpr (torch_compat::kHasSdpa) {
    return torch_compat::fused_causal_attention(q, k, v, dropout_p);
  }
  if (dropout_p == 0 && q.scalar_type() == at::kFloat && q.device().is_cpu()) {
    const bool grad_wanted = at::GradMode::is_enabled() &&
                             (q.requires_grad() || k.requires_grad() || v.requires_grad());
    if (!grad_wanted) return causal_attention_no_grad(q, k, v);
    if (cpu_gemm_uses_dnnl()) return GemmCausalAttention::apply(q, k, v);
  }
  return causal_attention_math(q, k, v, dropout_p);
}

}  // namespace qf::model
