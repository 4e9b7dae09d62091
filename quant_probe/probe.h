#pragma once
// The probe of one checkpoint (method.md, "The probe"): FP32, INT4 and INT8 perplexity
// on a fixed evaluation set, the gaps in percent, and the weight statistics of every
// quantized tensor.
//
// Memory: the FP32 model, plus the saved FP32 copy of one layer's quantized tensors and
// one chunk of activations (probe.activation_memory). For each quantized evaluation the
// model runs layer by layer (layerwise_eval.h); before a layer meets a chunk its selected
// weights are copied aside and quantized in place, and afterwards copied back, so the
// model leaves the probe bit for bit as it came in (also when the probe throws). Selected
// tensors outside the layers (only when the patterns ask for them) stay quantized for a
// whole evaluation and cost their own copy.
#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "model/gpt_neox.h"
#include "quant_probe/layerwise_eval.h"
#include "quant_probe/probe_config.h"
#include "quant_probe/weight_stats.h"

namespace qf::quant {

struct SelectedTensor {
  std::string name;    // HF parameter name
  std::int64_t layer;  // index of the transformer layer holding it; −1 outside the layers
  at::Tensor param;
};

// The parameters matching options.include and not options.exclude, in the model's order.
// ConfigError when none match, or a match is not a 2-D floating weight whose rows both
// schemes can group.
std::vector<SelectedTensor> select_tensors(model::GptNeoXForCausalLM& model,
                                           const ProbeOptions& options);

struct ProbeResult {
  EvalResult fp32, int4, int8;
  double gap_int4_pct = 0, gap_int8_pct = 0;
  // With probe.gptq: INT4 after GPTQ (same tensors, same scheme); else unset and NaN.
  std::optional<EvalResult> int4_gptq;
  double gap_int4_gptq_pct = std::numeric_limits<double>::quiet_NaN();
  std::int64_t gptq_calibration_tokens = 0;
  double gptq_seconds = 0;
  std::optional<Attribution> attribution;  // with probe.attribution
  std::vector<TensorStats> tensors;
  CheckpointStats stats;
  std::string int4_scheme, int8_scheme;
  double seconds = 0;
};

// `windows`: [N, T + 1] token ids (any device; moved to the model's). The model must be
// float32 (the probe measures float32 perplexity); TF32 is off while it runs.
// `calibration`: GPTQ's calibration windows [N', L] (gptq_config.h), needed exactly when
// options.gptq is set.
ProbeResult probe_model(model::GptNeoXForCausalLM& model, const at::Tensor& windows,
                        const ProbeOptions& options, const at::Tensor& calibration = {});

// The evaluation set as [N, T + 1] int64 ids.
at::Tensor windows_tensor(const data::TokenRows& rows);

// Loads `dir` (HF layout) as float32 on options.device and probes it.
ProbeResult probe_checkpoint(const std::filesystem::path& dir, const at::Tensor& windows,
                             const ProbeOptions& options, const at::Tensor& calibration = {});

}  // namespace qf::quant
