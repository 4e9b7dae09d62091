// The pieces of attention and the fused loss against plain, HF-shaped formulas: the fast
// paths must compute what the slow, obvious ones do.
#include "model/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/torch/cpu_gemm.h"
#include "model/linear_cross_entropy.h"
#include "model_test_support.h"

namespace qf::test {
namespace {

at::Tensor randn(at::IntArrayRef shape, std::uint64_t seed) {
  return at::randn(shape, at::make_generator<at::CPUGeneratorImpl>(seed));
}

// HF's rotate_half and apply_rotary_pos_emb, spelled out.
at::Tensor hf_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const std::int64_t r = cos.size(-1), d = x.size(-1);
  const at::Tensor rot = x.narrow(-1, 0, r);
  const at::Tensor half1 = rot.narrow(-1, 0, r / 2), half2 = rot.narrow(-1, r / 2, r / 2);
  const at::Tensor rotated = at::cat({-half2, half1}, -1);
  return at::cat({rot * cos + rotated * sin, x.narrow(-1, r, d - r)}, -1);
}

TEST(RotaryTest, TablesFollowHfsFormula) {
  const auto [cos, sin] = model::rotary_tables(7, 4, 10000.0, at::kCPU, at::kFloat);
  ASSERT_EQ(cos.sizes(), (at::IntArrayRef{7, 4}));
  // inv_freq = [1, 1/100] for r = 4, base 1e4; emb = cat(freqs, freqs).
  for (int t = 0; t < 7; ++t) {
    EXPECT_FLOAT_EQ(cos[t][0].item<float>(), std::cos(static_cast<float>(t)));
    EXPECT_FLOAT_EQ(cos[t][1].item<float>(), std::cos(t * 0.01f));
    EXPECT_EQ(cos[t][2].item<float>(), cos[t][0].item<float>());
    EXPECT_FLOAT_EQ(sin[t][3].item<float>(), std::sin(t * 0.01f));
  }
}

TEST(RotaryTest, ApplyRotaryIsBitwiseHfsRotateHalf) {
  for (std::int64_t rotary : {4, 16}) {
    const auto [cos, sin] = model::rotary_tables(9, rotary, 10000.0, at::kCPU, at::kFloat);
    // A strided view, as the attention layer passes it.
    const at::Tensor x = randn({2, 9, 3, 48}, 1).permute({0, 2, 1, 3}).narrow(-1, 16, 16);
    const at::Tensor ours = model::apply_rotary(x, cos, sin);
    EXPECT_TRUE(ours.is_contiguous());
    EXPECT_TRUE(at::equal(ours, hf_rotary(x, cos, sin))) << "rotary dims " << rotary;
  }
}

// HF 4.36's eager attention: baddbmm from zeros, where(mask, scores, finfo.min), softmax.
at::Tensor hf_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const std::int64_t b = q.size(0), h = q.size(1), t = q.size(2), d = q.size(3);
  const double scale = 1.0 / std::sqrt(static_cast<float>(d));
  at::Tensor scores = at::baddbmm(at::zeros({b * h, t, t}), q.reshape({b * h, t, d}),
                                  k.reshape({b * h, t, d}).transpose(1, 2), 1.0, scale);
  const at::Tensor causal = at::ones({t, t}, at::kBool).tril();
  scores = at::where(causal, scores.view({b, h, t, t}),
                     at::full({}, std::numeric_limits<float>::lowest()));
  return at::matmul(at::softmax(scores, -1), v);
}

TEST(CausalAttentionTest, MathPathIsHfsEagerAttention) {
  const at::Tensor q = randn({2, 3, 17, 16}, 2), k = randn({2, 3, 17, 16}, 3),
                   v = randn({2, 3, 17, 16}, 4);
  const at::Tensor reference = hf_attention(q, k, v);
  const double d = max_abs_diff(model::causal_attention_math(q, k, v, 0.0), reference);
  EXPECT_LT(d, 1e-6);
  // The fused kernel (libtorch >= 2.0) or, on 1.13, the same math path.
  EXPECT_LT(max_abs_diff(model::causal_attention(q, k, v, 0.0), reference), 1e-5);
}

// causal_attention's own backward (on float32 CPU with oneDNN) against autograd through
// the math path.
TEST(CausalAttentionTest, GradientsMatchTheMathPath) {
  at::Tensor grads[2][3];
  for (int fast = 0; fast < 2; ++fast) {
    at::Tensor in[3] = {randn({2, 3, 11, 8}, 21), randn({2, 3, 11, 8}, 22),
                        randn({2, 3, 11, 8}, 23)};
    for (auto& t : in) t.requires_grad_(true);
    // A strided v, as the attention layer passes it.
    const at::Tensor v = in[2].transpose(1, 2).contiguous().transpose(1, 2);
    const at::Tensor out = fast ? model::causal_attention(in[0], in[1], v, 0.0)
                                : model::causal_attention_math(in[0], in[1], v, 0.0);
    (out * randn({2, 3, 11, 8}, 24)).sum().backward();
    for (int i = 0; i < 3; ++i) grads[fast][i] = in[i].grad();
  }
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(grads[1][i], grads[0][i]), 1e-5) << i;
}

TEST(CausalAttentionTest, NoPositionSeesTheFuture) {
  const at::Tensor q = randn({1, 2, 8, 8}, 5), k = randn({1, 2, 8, 8}, 6);
  at::Tensor v = randn({1, 2, 8, 8}, 7);
  const at::Tensor before = model::causal_attention_math(q, k, v, 0.0);
  v.narrow(2, 5, 3).add_(100.0);  // change positions 5..7 only
  const at::Tensor after = model::causal_attention_math(q, k, v, 0.0);
  EXPECT_TRUE(at::equal(before.narrow(2, 0, 5), after.narrow(2, 0, 5)));
  EXPECT_FALSE(at::equal(before.narrow(2, 5, 3), after.narrow(2, 5, 3)));
}

// Without gradients the scores are formed a few heads at a time (5 of the 12 here, at
// T = 600): the same values as the path that keeps them for the backward, bit for bit
// where both run on oneDNN.
TEST(CausalAttentionTest, WithoutGradientsHeadsInGroupsGiveTheSameValues) {
  const at::Tensor q = randn({2, 6, 600, 8}, 31), k = randn({2, 6, 600, 8}, 32);
  // A strided v, as the attention layer passes it.
  const at::Tensor v = randn({2, 600, 6, 8}, 33).transpose(1, 2);
  at::Tensor with_grad;
  {
    const at::Tensor qg = q.clone().requires_grad_(true);
    with_grad = model::causal_attention(qg, k, v, 0.0).detach();
  }
  at::Tensor without;
  {
    torch::NoGradGuard no_grad;
    without = model::causal_attention(q.clone().requires_grad_(true), k, v, 0.0);
  }
  EXPECT_FALSE(without.requires_grad());
  if (cpu_gemm_uses_dnnl()) {
    EXPECT_TRUE(at::equal(without, with_grad)) << max_abs_diff(without, with_grad);
  } else {
    EXPECT_LT(max_abs_diff(without, with_grad), 1e-6);
  }
  EXPECT_LT(max_abs_diff(without, hf_attention(q, k, v)), 1e-5);
}

// The attention and the loss run their softmax in place (out = self); libtorch's last-dimension
// kernels must give exactly what they give out of place.
TEST(SoftmaxInPlaceTest, InPlaceEqualsOutOfPlaceBitwise) {
  at::Tensor x = randn({6, 37, 1031}, 41) * 8;
  x.select(-1, 3).fill_(-std::numeric_limits<float>::infinity());
  at::Tensor a = x.clone(), b = x.clone();
  at::_softmax_out(a, a, -1, false);
  at::_log_softmax_out(b, b, -1, false);
  EXPECT_TRUE(at::equal(a, at::softmax(x, -1)));
  EXPECT_TRUE(at::equal(b, at::log_softmax(x, -1)));
}

struct ChainResult {
  at::Tensor loss, grad_hidden, grad_weight;
};

ChainResult run_chain(bool fused, const at::Tensor& hidden0, const at::Tensor& weight0,
                      const at::Tensor& targets, std::int64_t block_rows) {
  const at::Tensor hidden = hidden0.clone().requires_grad_(true);
  const at::Tensor weight = weight0.clone().requires_grad_(true);
  const at::Tensor loss =
      fused ? model::linear_cross_entropy(hidden, weight, targets, block_rows)
            : at::nll_loss(at::log_softmax(at::mm(hidden, weight.t()), 1, at::kFloat), targets);
  (loss * 3.0).backward();  // a non-unit incoming gradient must scale both gradients
  return {loss.detach(), hidden.grad(), weight.grad()};
}

TEST(LinearCrossEntropyTest, MatchesLogitsThenCrossEntropyForAnyBlockSize) {
  const at::Tensor hidden = randn({37, 24}, 8), weight = randn({101, 24}, 9);
  const at::Tensor targets = at::randint(101, {37}, at::make_generator<at::CPUGeneratorImpl>(10));
  const ChainResult plain = run_chain(false, hidden, weight, targets, 0);
  for (std::int64_t block : {1, 7, 37, 0}) {
    const ChainResult fused = run_chain(true, hidden, weight, targets, block);
    EXPECT_NEAR(fused.loss.item<double>(), plain.loss.item<double>(), 1e-6) << block;
    EXPECT_LT(max_abs_diff(fused.grad_hidden, plain.grad_hidden), 1e-6) << block;
    EXPECT_LT(max_abs_diff(fused.grad_weight, plain.grad_weight), 1e-6) << block;
  }
}

TEST(LinearCrossEntropyTest, Bfloat16WeightsGiveFloat32LossAndTheirOwnGradientDtype) {
  const at::Tensor hidden = randn({16, 8}, 11).to(at::kBFloat16);
  const at::Tensor weight = randn({50, 8}, 12).to(at::kBFloat16);
  const at::Tensor targets = at::randint(50, {16}, at::make_generator<at::CPUGeneratorImpl>(13));
  const ChainResult fused = run_chain(true, hidden, weight, targets, 5);
  const ChainResult plain = run_chain(false, hidden, weight, targets, 0);
  EXPECT_EQ(fused.loss.scalar_type(), at::kFloat);
  EXPECT_EQ(fused.grad_weight.scalar_type(), at::kBFloat16);
  EXPECT_NEAR(fused.loss.item<double>(), plain.loss.item<double>(), 1e-5);
  EXPECT_LT(max_abs_diff(fused.grad_weight, plain.grad_weight), 2e-2);
}

}  // namespace
}  // namespace qf::test
