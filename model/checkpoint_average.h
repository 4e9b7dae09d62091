#pragma once
// LAWA (latest weight averaging, Kaddour 2022; method.md, "Beyond the paper"): the
// uniform average of checkpoints of one architecture, a model like any other, so it can
// be probed or saved as an HF checkpoint.
//
// Every input is read as float32 (exact for float32, bfloat16 and float16 files), summed
// in float64 and divided by their number, then rounded once to float32: the result is the
// float64 mean of the inputs' tensors, rounded to nearest. The inputs must agree on every
// setting of config.json that shapes the network (sizes, activation, rotary, LayerNorm
// epsilon, residual wiring, biases); training-only settings (dropout, initializer_range)
// and the stored dtype may differ.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "model/gpt_neox.h"

namespace qf::model {

struct AverageInput {
  std::filesystem::path dir;
  std::optional<std::int64_t> step;  // recorded in the output's metadata when known
};

struct AveragedModel {
  GptNeoXForCausalLM model{nullptr};  // float32, on the CPU
  std::vector<AverageInput> inputs;
  // The dtype of the first input's stored weights (for saving "as the inputs were").
  at::ScalarType input_dtype = at::kFloat;
};

// ConfigError naming both checkpoints and the setting for architectures that differ;
// UsageError for no inputs; the loader's errors (naming file and tensor) for unreadable
// or malformed ones.
AveragedModel average_checkpoints(const std::vector<AverageInput>& inputs);

// Writes an HF checkpoint (model/hf_checkpoint.h) in `dtype` (float32 when absent) whose
// safetensors metadata records the average: quantfork.average = "lawa",
// quantfork.averaged_steps = the inputs' steps as a JSON array (null where unknown) and
// quantfork.averaged_checkpoints = their directories as a JSON array.
void save_averaged_checkpoint(AveragedModel& average, const std::filesystem::path& dir,
                              std::optional<at::ScalarType> dtype = std::nullopt);

}  // namespace qf::model
