#pragma once
// Sequential GPTQ of a whole GPT-NeoX (the reference's opt_sequential, docs/method.md):
// the calibration windows' hidden states enter layer 0; for each layer in turn the
// still-float layer runs on them once while every selected Linear's Hessian is
// accumulated from its inputs (one add_batch per window, as the reference feeds them),
// the layer's selected weights are quantized by GPTQ, and the layer, now quantized, runs
// again to give the next layer's inputs. So layer l is calibrated on the outputs of the
// already-quantized layers before it.
//
// The model is left as it came in (float32 weights, bit for bit); the quantized weights
// come back in the result. Memory: the model, the result's dequantized weights, two
// copies of the calibration activations [N, L, d] and one layer's Hessians.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/gpt_neox.h"
#include "quant_probe/gptq.h"
#include "quant_probe/probe_config.h"

namespace qf::quant {

struct GptqModelOptions {
  GptqOptions gptq;
  std::string include = kDefaultTensorPattern;  // which Linears (probe.tensors.*)
  std::string exclude;
  bool show_progress = false;  // a step line per layer on stderr (the quantize command)
  // Where the calibration's keys live, for messages ("gptq." or "probe.gptq.calibration.").
  std::string calibration_keys = "gptq.";
};

struct GptqTensor {
  std::string name;  // HF parameter name
  std::int64_t layer = 0;
  GptqResult result;
  double rel_error_weight = 0;  // ‖W − Q‖ / ‖W‖
  // ‖(W − Q) Xᵀ‖ / ‖W Xᵀ‖ over the calibration inputs X this tensor saw, from its Hessian
  // (‖A Xᵀ‖² = n/2 · tr(A H Aᵀ)).
  double rel_error_output = 0;
};

struct GptqModelResult {
  std::vector<GptqTensor> tensors;  // in the model's order
  std::int64_t calibration_tokens = 0;
  double seconds = 0;
};

// `calibration`: [N, L] token ids, each window fed whole to the model (L at most
// max_position_embeddings). Error naming the tensor for GPTQ's own errors (all-zero
// inputs, a singular Hessian); ConfigError when the patterns select nothing or a tensor
// outside the layers, or when the calibration holds fewer tokens than the widest selected
// Linear has inputs (its Hessian would be singular before damping).
GptqModelResult gptq_model(model::GptNeoXForCausalLM& model, const at::Tensor& calibration,
                           const GptqModelOptions& options);

}  // namespace qf::quant
