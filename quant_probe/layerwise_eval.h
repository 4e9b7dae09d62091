#pragma once
// Perplexity of a GPT-NeoX model on an evaluation set, run one transformer layer at a
// time over a chunk of sequences: all of the chunk's batches go through layer 0, then
// layer 1, and so on. Hooks around each layer may change its weights (the probe
// quantizes them in place and restores them afterwards), so a quantized model never
// needs more than one layer's saved weights beside the FP32 model; a chunk's
// activations, sized by the caller, are the price. Each batch meets exactly the
// operations of GptNeoXForCausalLM::loss() on its inputs (tests hold the two together).
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "model/gpt_neox.h"

namespace qf::quant {

struct EvalOptions {
  std::int64_t batch_size = 4;  // sequences per forward pass
  // Sequences whose activations are held at once while hooks are set (rounded down to
  // whole batches, at least one batch). Without hooks one batch at a time.
  std::int64_t chunk_sequences = 4;
};

struct LayerHooks {
  std::function<void(std::int64_t layer)> before;  // before a layer meets a chunk
  std::function<void(std::int64_t layer)> after;   // after it has seen the whole chunk
  explicit operator bool() const { return before || after; }
};

struct EvalResult {
  double loss = 0;  // mean next-token cross-entropy over every predicted token
  double ppl = 0;   // exp(loss)
  std::int64_t tokens = 0;
};

// A quantized perplexity's gap to the float one, in percent: 100·(ppl_q − ppl_fp32)/ppl_fp32.
inline double gap_pct(double quantized, double fp32) {
  return 100.0 * (quantized - fp32) / fp32;
}

// `windows`: [N, T + 1] int64 token ids on the model's device; each window predicts its
// last T tokens from the ones before (its first T tokens are the model's input). The
// model runs in eval mode without gradients (its training flag is restored after).
// Error for ids outside the vocabulary or T beyond max_position_embeddings.
EvalResult evaluate_layerwise(model::GptNeoXForCausalLM& model, const at::Tensor& windows,
                              const EvalOptions& options, const LayerHooks& hooks = {});

// One change of the model confined to one layer (e.g. one tensor quantized): `apply`
// before `layer` meets the activations, `restore` after.
struct LayerPerturbation {
  std::int64_t layer = 0;
  std::function<void()> apply, restore;
};

// The perplexity of the model under each perturbation alone, as evaluate_layerwise with
// hooks that apply it would give (the same operations batch by batch, so the same bits),
// but sharing the float work below each one: per chunk of sequences the float
// activations entering every layer are computed once and kept, and each perturbation
// runs from its own layer's input. Memory: (layers + 1) copies of one chunk's
// activations (options.chunk_sequences is divided among them). `layer_passes`, when
// given, gets the number of layer-over-chunk passes run (for the cost figures).
std::vector<EvalResult> evaluate_perturbations(model::GptNeoXForCausalLM& model,
                                               const at::Tensor& windows,
                                               const EvalOptions& options,
                                               const std::vector<LayerPerturbation>& units,
                                               std::int64_t* layer_passes = nullptr);

}  // namespace qf::quant
