#pragma once
// AdamW as Pythia was trained with it (pythia.md): decoupled weight decay on weights and
// embeddings, none on biases and LayerNorm parameters; global-norm gradient clipping.
//
// The arithmetic is torch.optim.AdamW's (PyTorch 1.13, single-tensor path) and
// torch.nn.utils.clip_grad_norm_'s, operation for operation, so on the CPU a step here is
// bitwise the step the Python reference takes (tests/train/optimizer_test.cpp runs both).
// On CUDA with libtorch >= 2.1 the fused kernel does the same update in one launch
// (torch_compat::fused_adamw), equal to float32 rounding, not bit for bit.
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace qf::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double clip_norm = 1.0;  // <= 0: no clipping
  bool fused = true;       // use the fused CUDA kernel where libtorch has one
};

// Pythia's parameter groups: no weight decay for biases and LayerNorm parameters (every
// 1-D parameter of GPT-NeoX), decay for everything else.
bool decays(const std::string& name, const at::Tensor& param);

class AdamW {
 public:
  // `params`: (name, parameter) in the model's order. Moments start at zero (a fork from
  // a Pythia revision starts Adam fresh: none were published).
  AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWOptions options);

  // clip_grad_norm_(max_norm = clip_norm) over every gradient (missing ones count as
  // absent, as in PyTorch), returning the total norm before clipping (float32, as the
  // reference computes it). Infinite or NaN norms are returned as they are; the caller
  // decides what to do before step().
  double clip_gradients();
  // The global L2 norm of the gradients, without clipping.
  double gradient_norm() const;
  // One update with learning rate `lr` (the schedule's) for every parameter with a
  // gradient.
  void step(double lr);
  void zero_grad();

  int64_t steps_taken() const { return steps_; }
  const AdamWOptions& options() const { return options_; }

  // Optimizer state as named tensors ("exp_avg/<param>", "exp_avg_sq/<param>") plus the
  // step count, for checkpoints; load_state checks names and shapes and names what
  // differs.
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;
  void load_state(const std::map<std::string, at::Tensor>& tensors, int64_t steps,
                  const std::string& source);

 private:
  std::vector<at::Tensor> grads() const;
  void step_fused(double lr);

  struct Slot {
    std::string name;
    at::Tensor param, exp_avg, exp_avg_sq;
    bool decay;
  };
  std::vector<Slot> slots_;
  AdamWOptions options_;
  int64_t steps_ = 0;
};

}  // namespace qf::train
