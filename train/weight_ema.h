#pragma once
// The exponential moving average of the weights kept during training (train.ema; method.md,
// "Beyond the paper": weight averaging): w̄ ← β·w̄ + (1 − β)·w after every `every`-th
// optimizer step (counted over the whole run, so a resumed run updates on the same steps),
// starting from the weights training starts from.
//
// The average lives in float32 on the weights' device whatever the weights' dtype, so a
// long average does not lose its small (1 − β) increments to bf16 rounding. Its tensors
// travel in trainer_state.safetensors as "ema/<parameter>", so a resumed run goes on from
// exactly the average the uninterrupted one had (bitwise on the CPU), and the finished run
// writes it as its own HF checkpoint (run.dir/ema/).
#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/gpt_neox.h"

namespace qf::train {

struct EmaOptions {
  double beta = 0;    // 0: no average is kept
  int64_t every = 1;  // optimizer steps between updates
  bool enabled() const { return beta > 0; }
};

inline constexpr const char* kEmaTensorPrefix = "ema/";

class WeightEma {
 public:
  // Copies `params` (name, parameter) as the average's starting point.
  WeightEma(const std::vector<std::pair<std::string, at::Tensor>>& params, EmaOptions options);

  // After optimizer step `optimizer_steps` (the run's count, 1 for its first): updates the
  // average when that count is a multiple of `every`.
  void update(int64_t optimizer_steps);

  // The average as "ema/<name>" tensors, for trainer_state.safetensors.
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;
  // Restores the average from a checkpoint's tensors; FormatError naming `source` when a
  // parameter's average is missing or has another shape.
  void load_state(const std::map<std::string, at::Tensor>& tensors, const std::string& source);

  // A float32 copy of `like` (same config, on the same device) holding the average.
  model::GptNeoXForCausalLM averaged_model(const model::GptNeoXForCausalLM& like) const;
  // Writes the average as an HF checkpoint (float32), its β and the global step in the
  // safetensors metadata (quantfork.ema_beta, quantfork.ema_global_step).
  void save(const model::GptNeoXForCausalLM& like, const std::filesystem::path& dir,
            int64_t global_step) const;

  const EmaOptions& options() const { return options_; }

 private:
  struct Slot {
    std::string name;
    at::Tensor param;    // the live weight
    at::Tensor average;  // float32, on the weight's device
  };
  EmaOptions options_;
  std::vector<Slot> slots_;
};

}  // namespace qf::train
