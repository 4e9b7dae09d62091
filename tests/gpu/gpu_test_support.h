#pragma once
// Shared by the GPU tests (test_gpu): skipping, loudly, where libtorch sees no CUDA
// device, and a tiny random GPT-NeoX to run on both devices.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>

#include "model/gpt_neox.h"

namespace qf::test {

// True when libtorch sees a CUDA device. Otherwise prints a banner once and returns false;
// with QF_REQUIRE_GPU=1 (bench/gpu.sh sets it on GPU machines) it also fails the test, so
// a GPU that libtorch can't use never passes as a skip.
bool have_cuda();

// Pythia-14m's shape cut to 2 layers and a vocabulary of 128, small enough for the CPU
// side: d 128, 4 heads of 32 (rotary on 8), exact GELU; parallel or sequential residual.
model::GptNeoXConfig tiny_config(bool parallel_residual = true);
// tiny_config's model, float32 on the CPU, Pythia's initialization from `seed`.
model::GptNeoXForCausalLM tiny_model(std::uint64_t seed, bool parallel_residual = true);
// [batch, seq] int64 ids in [0, vocab) on the CPU, from `seed`.
at::Tensor random_ids(std::int64_t vocab, std::int64_t batch, std::int64_t seq, std::uint64_t seed);

}  // namespace qf::test

#define QF_REQUIRE_CUDA()                                                              \
  do {                                                                                 \
    if (!::qf::test::have_cuda()) GTEST_SKIP() << "no CUDA device (GPU test skipped)"; \
  } while (0)
