// A few training steps on a CUDA GPU follow the CPU's in float32 (TF32 off): the same
// losses step by step and the same weights after. Skipped, loudly, without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "core/torch/compat.h"
#include "gpu_test_support.h"
#include "model/model_test_support.h"

namespace qf::test {
namespace {

constexpr int kSteps = 4;

// libtorch's AdamW until train/'s optimizer lands; then this runs that one instead.
// eps 1e-6 instead of 1e-8: the key bias's non-rotary part gets a gradient that is zero
// in exact arithmetic (softmax ignores a shift shared by all keys) and ~1e-9 of rounding
// noise in practice, which AdamW with eps 1e-8 would turn into updates of up to ±lr whose
// sign differs between devices.
std::vector<double> train(model::GptNeoXForCausalLM& m, const std::vector<at::Tensor>& batches) {
  torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(1e-3)
                                               .betas(std::make_tuple(0.9, 0.95))
                                               .eps(1e-6)
                                               .weight_decay(0.1));
  m->train();
  std::vector<double> losses;
  for (const at::Tensor& ids : batches) {
    opt.zero_grad();
    const at::Tensor loss = m->loss(ids.to(m->device()));
    loss.backward();
    opt.step();
    losses.push_back(loss.item<double>());
  }
  return losses;
}

TEST(CudaTraining, AdamWStepsMatchTheCpuInFloat32) {
  QF_REQUIRE_CUDA();
  torch_compat::ScopedNoTf32 no_tf32;
  std::vector<at::Tensor> batches;
  for (int s = 0; s < kSteps; ++s) batches.push_back(random_ids(128, 4, 32, 100 + s));
  auto cpu = tiny_model(3);
  auto gpu = tiny_model(3);
  gpu->to(at::kCUDA);
  const std::vector<double> cpu_losses = train(cpu, batches);
  const std::vector<double> gpu_losses = train(gpu, batches);

  for (int s = 0; s < kSteps; ++s) {
    std::printf("[ step %d ] loss CPU %.7f, GPU %.7f\n", s, cpu_losses[s], gpu_losses[s]);
    EXPECT_NEAR(gpu_losses[s], cpu_losses[s], 1e-4) << "step " << s;
  }
  // AdamW's first step moves every weight with a gradient by about lr = 1e-3, so a step
  // taken differently on one device shows up far above the bound.
  const auto initial = tiny_model(3)->named_parameters();
  const auto gpu_params = gpu->named_parameters();
  double moved = 0, worst = 0;
  std::string worst_name;
  for (const auto& p : cpu->named_parameters()) {
    moved = std::max(moved, max_abs_diff(p.value(), initial[p.key()]));
    const double d = max_abs_diff(gpu_params[p.key()].cpu(), p.value());
    if (d > worst) worst = d, worst_name = p.key();
  }
  std::printf("[ after %d steps ] weights moved up to %.3g; max |dweight| GPU vs CPU = %.3g (%s)\n",
              kSteps, moved, worst, worst_name.c_str());
  EXPECT_GT(moved, 1e-3) << "the optimizer did not move the weights";
  EXPECT_LE(worst, 2e-5) << worst_name;
}

}  // namespace
}  // namespace qf::test
