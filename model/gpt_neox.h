#pragma once
// GPT-NeoX as Hugging Face's GPTNeoXForCausalLM computes it (pythia.md), in libtorch.
// Parameter names are HF's state-dict keys (gpt_neox.layers.3.attention.dense.weight, ...),
// so reading and writing HF checkpoints is a direct mapping of names.
#include <torch/torch.h>

#include <cstdint>
#include <functional>

#include "model/gpt_neox_config.h"

namespace qf::model {

// Parameters only, registered under HF's names ("weight" and, when given, "bias"); the
// layers below do the math with at:: functions, so nothing is initialized twice (a 12b
// model loaded from disk never runs a default init) and no module adds hidden copies.
class ParamsImpl : public torch::nn::Module {
 public:
  ParamsImpl(at::IntArrayRef weight_shape, std::int64_t bias_size);  // bias_size 0: none
  at::Tensor weight, bias;
};
TORCH_MODULE(Params);

// Sees the input of each Linear of a layer as the layer runs, named relative to the layer
// ("attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h",
// "mlp.dense_4h_to_h"): what GPTQ's calibration hooks read (Hugging Face's forward hooks
// on nn.Linear). The input is the tensor the Linear multiplies, [B, T, in].
using LinearInputTap = std::function<void(const char* linear, const at::Tensor& input)>;

class GptNeoXAttentionImpl : public torch::nn::Module {
 public:
  explicit GptNeoXAttentionImpl(const GptNeoXConfig& c);
  // x: [B, T, d]; cos, sin: [T, rotary_ndims] (see rotary_tables).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const LinearInputTap* tap = nullptr);

  Params query_key_value, dense;

 private:
  std::int64_t heads_, head_dim_;
  double dropout_;
};
TORCH_MODULE(GptNeoXAttention);

class GptNeoXMlpImpl : public torch::nn::Module {
 public:
  explicit GptNeoXMlpImpl(const GptNeoXConfig& c);
  at::Tensor forward(const at::Tensor& x, const LinearInputTap* tap = nullptr);

  Params dense_h_to_4h, dense_4h_to_h;

 private:
  bool tanh_;
};
TORCH_MODULE(GptNeoXMlp);

class GptNeoXLayerImpl : public torch::nn::Module {
 public:
  explicit GptNeoXLayerImpl(const GptNeoXConfig& c);
  // `tap`, when given, sees each Linear's input (see LinearInputTap).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const LinearInputTap* tap = nullptr);

  Params input_layernorm, post_attention_layernorm;
  GptNeoXAttention attention;
  GptNeoXMlp mlp;

 private:
  bool parallel_;
  double eps_, dropout_;
};
TORCH_MODULE(GptNeoXLayer);

// HF's GPTNeoXModel: the registered name of this module is "gpt_neox".
class GptNeoXModelImpl : public torch::nn::Module {
 public:
  explicit GptNeoXModelImpl(const GptNeoXConfig& c);
  // ids: [B, T] int64, already checked. Returns the final LayerNorm's output [B, T, d].
  at::Tensor forward(const at::Tensor& ids);

  Params embed_in;
  torch::nn::ModuleList layers;
  Params final_layer_norm;

 private:
  GptNeoXConfig config_;
};
TORCH_MODULE(GptNeoXModel);

class GptNeoXForCausalLMImpl : public torch::nn::Module {
 public:
  // Parameters are allocated uninitialized (float32, CPU): load a checkpoint into them or
  // call init_pythia(). Throws ConfigError when the config is invalid.
  explicit GptNeoXForCausalLMImpl(const GptNeoXConfig& config);

  // ids: [B, T] integer token ids on the model's device. Logits [B, T, vocab] in the
  // parameters' dtype. Throws Error naming the value for an id outside [0, vocab) or
  // T > max_position_embeddings.
  at::Tensor forward(const at::Tensor& ids);
  // The final hidden states [B, T, d] (what embed_out reads).
  at::Tensor hidden_states(const at::Tensor& ids);
  // Mean next-token cross-entropy (float32 scalar) of the logits at positions 0..T-2
  // against ids 1..T-1: the same value as next_token_loss(forward(ids), ids), computed
  // without materializing the logits (see linear_cross_entropy), which is how training
  // should call it. Needs T >= 2; the model runs on ids 0..T-2 only, so T may be
  // max_position_embeddings + 1 (Pythia: 2049-token windows, 2048 positions).
  at::Tensor loss(const at::Tensor& ids);

  // Pythia's initialization from scratch (pythia.md): normal(0, sqrt(2 / (5 d))) for
  // embed_in, query_key_value, dense_h_to_4h and embed_out ("small_init"), normal(0,
  // 2 / L / sqrt(d)) for attention.dense and dense_4h_to_h ("wang_init"), zero biases,
  // LayerNorms 1 and 0. Drawn on the CPU in float32 from `seed` whatever the parameters'
  // device and dtype, so the same seed gives the same model everywhere.
  void init_pythia(std::uint64_t seed);

  const GptNeoXConfig& config() const { return config_; }
  // The parameters' dtype and device (all parameters share them).
  at::ScalarType dtype() const;
  at::Device device() const;

  GptNeoXModel gpt_neox;
  Params embed_out;

 private:
  // `ids` on the model's device as int64, after checking shape, type and range; at most
  // max_position_embeddings + extra_tokens per sequence.
  at::Tensor checked_ids(const at::Tensor& ids, std::int64_t extra_tokens = 0) const;
  at::Tensor checked_hidden_states(const at::Tensor& checked);
  GptNeoXConfig config_;
};
TORCH_MODULE(GptNeoXForCausalLM);

// HF's loss: mean cross-entropy (float32) of logits[:, :-1] against ids[:, 1:].
at::Tensor next_token_loss(const at::Tensor& logits, const at::Tensor& ids);

}  // namespace qf::model
