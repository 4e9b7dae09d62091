// core/torch's oneDNN products against libtorch's own: same values to float32 rounding,
// same gradients, every layout the model passes, and the fallbacks.
#include "core/torch/cpu_gemm.h"

#include <gtest/gtest.h>

#include "model_test_support.h"

namespace qf::test {
namespace {

at::Tensor randn(at::IntArrayRef shape, std::uint64_t seed) {
  return at::randn(shape, at::make_generator<at::CPUGeneratorImpl>(seed));
}

TEST(CpuGemmTest, ProductsMatchLibtorchInEveryLayout) {
  std::printf("[ cpu gemm ] oneDNN in use: %s\n", cpu_gemm_uses_dnnl() ? "yes" : "no");
  const at::Tensor a = randn({37, 50}, 1), b = randn({50, 23}, 2);
  const at::Tensor reference = at::mm(a, b);
  // Plain, transposed views of both operands.
  EXPECT_LT(max_abs_diff(gemm(a, b), reference), 1e-4);
  EXPECT_LT(max_abs_diff(gemm(a.t().contiguous().t(), b.t().contiguous().t()), reference), 1e-4);
  // Accumulation into a slice of a larger matrix (the fused loss writes row blocks).
  at::Tensor big = at::ones({40, 23});
  gemm_out(big.narrow(0, 3, 37), a, b, /*accumulate=*/true);
  EXPECT_LT(max_abs_diff(big.narrow(0, 3, 37), reference + 1), 1e-4);
  EXPECT_TRUE(at::equal(big.narrow(0, 0, 3), at::ones({3, 23})));
  // Other dtypes and empty matrices take libtorch's path.
  EXPECT_LT(max_abs_diff(gemm(a.to(at::kDouble), b.to(at::kDouble)), reference), 1e-4);
  EXPECT_EQ(gemm(at::zeros({0, 5}), at::zeros({5, 3})).sizes(), (at::IntArrayRef{0, 3}));
}

TEST(CpuGemmTest, LinearHasAtLinearsValuesAndGradients) {
  for (bool with_bias : {true, false}) {
    const at::Tensor x0 = randn({3, 5, 16}, 3), w0 = randn({24, 16}, 4), b0 = randn({24}, 5);
    at::Tensor grads[2][3];
    at::Tensor outs[2];
    for (int fast = 0; fast < 2; ++fast) {
      const at::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
      const at::Tensor b = with_bias ? b0.clone().requires_grad_(true) : at::Tensor();
      outs[fast] = fast ? qf::linear(x, w, b) : at::linear(x, w, b);
      (outs[fast] * randn({3, 5, 24}, 6)).sum().backward();
      grads[fast][0] = x.grad();
      grads[fast][1] = w.grad();
      grads[fast][2] = with_bias ? b.grad() : at::Tensor();
    }
    EXPECT_EQ(outs[1].sizes(), outs[0].sizes());
    EXPECT_LT(max_abs_diff(outs[1], outs[0]), 1e-4) << with_bias;
    for (int i = 0; i < (with_bias ? 3 : 2); ++i) {
      EXPECT_LT(max_abs_diff(grads[1][i], grads[0][i]), 1e-4) << with_bias << " grad " << i;
    }
  }
}

}  // namespace
}  // namespace qf::test
