#include "gpu_test_support.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace qf::test {

bool have_cuda() {
  if (torch::cuda::is_available()) return true;
  static const bool announced = [] {
    std::fprintf(stderr, "\n*** no CUDA device: libtorch (" TORCH_VERSION
                         ") sees none, so every GPU test is SKIPPED. Run them on a GPU machine "
                         "(bench/gpu.sh), where QF_REQUIRE_GPU=1 makes this a failure. ***\n\n");
    return true;
  }();
  (void)announced;
  const char* require = std::getenv("QF_REQUIRE_GPU");
  if (require != nullptr && std::strcmp(require, "1") == 0) {
    ADD_FAILURE() << "QF_REQUIRE_GPU=1 but torch::cuda::is_available() is false";
  }
  return false;
}

model::GptNeoXConfig tiny_config(bool parallel_residual) {
  model::GptNeoXConfig c = model::GptNeoXConfig::pythia("14m");  // d 128, 4 heads
  c.num_hidden_layers = 2;
  c.vocab_size = 128;
  c.use_parallel_residual = parallel_residual;
  return c;
}

model::GptNeoXForCausalLM tiny_model(std::uint64_t seed, bool parallel_residual) {
  model::GptNeoXForCausalLM m(tiny_config(parallel_residual));
  m->init_pythia(seed);
  return m;
}

at::Tensor random_ids(std::int64_t vocab, std::int64_t batch, std::int64_t seq,
                      std::uint64_t seed) {
  return at::randint(vocab, {batch, seq}, at::make_generator<at::CPUGeneratorImpl>(seed),
                     at::kLong);
}

}  // namespace qf::test
