#include "model/gpt_neox.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/errors.h"
#include "core/torch/compat.h"
#include "core/torch/cpu_gemm.h"
#include "model/attention.h"
#include "model/linear_cross_entropy.h"

namespace qf::model {
namespace {

at::Tensor maybe_dropout(const at::Tensor& x, double p, bool training) {
  return training && p > 0 ? at::dropout(x, p, /*train=*/true) : x;
}

at::Tensor norm(const Params& p, const at::Tensor& x, double eps) {
  return at::layer_norm(x, {x.size(-1)}, p->weight, p->bias, eps);
}

at::Tensor linear(const Params& p, const at::Tensor& x, const LinearInputTap* tap = nullptr,
                  const char* name = nullptr) {
  if (tap) (*tap)(name, x);
  return qf::linear(x, p->weight, p->bias);
}

std::string sizes_text(at::IntArrayRef sizes) {
  std::string s = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

}  // namespace

ParamsImpl::ParamsImpl(at::IntArrayRef weight_shape, std::int64_t bias_size) {
  weight = register_parameter("weight", torch::empty(weight_shape));
  if (bias_size > 0) bias = register_parameter("bias", torch::empty({bias_size}));
}

GptNeoXAttentionImpl::GptNeoXAttentionImpl(const GptNeoXConfig& c)
    : query_key_value(register_module("query_key_value",
                                      Params(at::IntArrayRef{3 * c.hidden_size, c.hidden_size},
                                             c.attention_bias ? 3 * c.hidden_size : 0))),
      dense(register_module("dense", Params(at::IntArrayRef{c.hidden_size, c.hidden_size},
                                            c.attention_bias ? c.hidden_size : 0))),
      heads_(c.num_attention_heads),
      head_dim_(c.head_dim()),
      dropout_(c.attention_dropout) {}

at::Tensor GptNeoXAttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                         const at::Tensor& sin, const LinearInputTap* tap) {
  const std::int64_t b = x.size(0), t = x.size(1), d = head_dim_;
  // Fused projection, viewed per head as [q | k | v] (HF's layout), then [B, H, T, 3D]
  // without copying; rotary writes q and k out contiguous in the layout attention reads.
  const at::Tensor qkv =
      linear(query_key_value, x, tap, "attention.query_key_value")
          .view({b, t, heads_, 3 * d})
          .permute({0, 2, 1, 3});
  const auto qkv_parts = qkv.split(d, -1);  // backward: one cat, not three zero-fills
  const at::Tensor q = apply_rotary(qkv_parts[0], cos, sin);
  const at::Tensor k = apply_rotary(qkv_parts[1], cos, sin);
  const at::Tensor out = causal_attention(q, k, qkv_parts[2], is_training() ? dropout_ : 0.0);
  return linear(dense, out.transpose(1, 2).reshape({b, t, heads_ * d}), tap, "attention.dense");
}

GptNeoXMlpImpl::GptNeoXMlpImpl(const GptNeoXConfig& c)
    : dense_h_to_4h(register_module(
          "dense_h_to_4h",
          Params(at::IntArrayRef{c.intermediate_size, c.hidden_size}, c.intermediate_size))),
      dense_4h_to_h(register_module(
          "dense_4h_to_h",
          Params(at::IntArrayRef{c.hidden_size, c.intermediate_size}, c.hidden_size))),
      tanh_(c.gelu_tanh()) {}

at::Tensor GptNeoXMlpImpl::forward(const at::Tensor& x, const LinearInputTap* tap) {
  at::Tensor h = linear(dense_h_to_4h, x, tap, "mlp.dense_h_to_4h");
  const char* approximate = tanh_ ? "tanh" : "none";
  // Without a backward nothing needs h: the activation goes in place (the same kernel).
  h = at::GradMode::is_enabled() ? at::gelu(h, approximate) : at::gelu_(h, approximate);
  return linear(dense_4h_to_h, h, tap, "mlp.dense_4h_to_h");
}

GptNeoXLayerImpl::GptNeoXLayerImpl(const GptNeoXConfig& c)
    : input_layernorm(register_module("input_layernorm",
                                      Params(at::IntArrayRef{c.hidden_size}, c.hidden_size))),
      post_attention_layernorm(register_module(
          "post_attention_layernorm", Params(at::IntArrayRef{c.hidden_size}, c.hidden_size))),
      attention(register_module("attention", GptNeoXAttention(c))),
      mlp(register_module("mlp", GptNeoXMlp(c))),
      parallel_(c.use_parallel_residual),
      eps_(c.layer_norm_eps),
      dropout_(c.hidden_dropout) {}

at::Tensor GptNeoXLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                     const at::Tensor& sin, const LinearInputTap* tap) {
  const bool train = is_training();
  const at::Tensor attn =
      maybe_dropout(attention(norm(input_layernorm, x, eps_), cos, sin, tap), dropout_, train);
  // HF's order of additions, so that the sums round as HF's do.
  if (parallel_) {
    const at::Tensor m =
        maybe_dropout(mlp(norm(post_attention_layernorm, x, eps_), tap), dropout_, train);
    return m + attn + x;
  }
  const at::Tensor h = attn + x;
  return maybe_dropout(mlp(norm(post_attention_layernorm, h, eps_), tap), dropout_, train) + h;
}

GptNeoXModelImpl::GptNeoXModelImpl(const GptNeoXConfig& c)
    : embed_in(
          register_module("embed_in", Params(at::IntArrayRef{c.vocab_size, c.hidden_size}, 0))),
      layers(register_module("layers", torch::nn::ModuleList())),
      final_layer_norm(register_module("final_layer_norm",
                                       Params(at::IntArrayRef{c.hidden_size}, c.hidden_size))),
      config_(c) {
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(GptNeoXLayer(c));
}

at::Tensor GptNeoXModelImpl::forward(const at::Tensor& ids) {
  at::Tensor x =
      maybe_dropout(at::embedding(embed_in->weight, ids), config_.hidden_dropout, is_training());
  const auto [cos, sin] = rotary_tables(ids.size(1), config_.rotary_ndims(),
                                        config_.rotary_emb_base, x.device(), x.scalar_type());
  for (const auto& layer : *layers) x = layer->as<GptNeoXLayer>()->forward(x, cos, sin);
  return norm(final_layer_norm, x, config_.layer_norm_eps);
}

GptNeoXForCausalLMImpl::GptNeoXForCausalLMImpl(const GptNeoXConfig& config)
    : gpt_neox(nullptr), embed_out(nullptr), config_(config) {
  config_.validate("model config");
  gpt_neox = register_module("gpt_neox", GptNeoXModel(config_));
  embed_out = register_module("embed_out",
                              Params(at::IntArrayRef{config_.vocab_size, config_.hidden_size}, 0));
}

at::ScalarType GptNeoXForCausalLMImpl::dtype() const {
  return embed_out->weight.scalar_type();
}
at::Device GptNeoXForCausalLMImpl::device() const {
  return embed_out->weight.device();
}

at::Tensor GptNeoXForCausalLMImpl::checked_ids(const at::Tensor& ids,
                                               std::int64_t extra_tokens) const {
  if (ids.dim() != 2 || ids.size(1) == 0) {
    throw Error("token ids must be a non-empty [batch, sequence] tensor, found shape " +
                sizes_text(ids.sizes()));
  }
  if (!at::isIntegralType(ids.scalar_type(), /*includeBool=*/false)) {
    throw Error(std::string("token ids must be integers, found ") +
                c10::toString(ids.scalar_type()));
  }
  if (ids.size(1) > config_.max_position_embeddings + extra_tokens) {
    throw Error("sequence length " + std::to_string(ids.size(1)) +
                (extra_tokens
                     ? " (" + std::to_string(ids.size(1) - extra_tokens) + " read by the model)"
                     : std::string()) +
                " exceeds this model's max_position_embeddings (" +
                std::to_string(config_.max_position_embeddings) + ")");
  }
  const at::Tensor bad = (ids < 0).logical_or_(ids >= config_.vocab_size);
  if (bad.any().item<bool>()) {
    const at::Tensor where = bad.nonzero()[0].cpu();
    const std::int64_t row = where[0].item<std::int64_t>(), col = where[1].item<std::int64_t>();
    throw Error("token id " + std::to_string(ids[row][col].item<std::int64_t>()) + " at [" +
                std::to_string(row) + ", " + std::to_string(col) +
                "] is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
  }
  return ids.to(device(), at::kLong);
}

at::Tensor GptNeoXForCausalLMImpl::hidden_states(const at::Tensor& ids) {
  return checked_hidden_states(checked_ids(ids));
}

at::Tensor GptNeoXForCausalLMImpl::checked_hidden_states(const at::Tensor& checked) {
  if (device().is_cpu() && dtype() == at::kHalf && !torch_compat::kCpuHalfCompute) {
    throw Error("this libtorch (" TORCH_VERSION
                ") has no float16 kernels on the CPU; load the model as float32 or bfloat16");
  }
  return gpt_neox(checked);
}

at::Tensor GptNeoXForCausalLMImpl::forward(const at::Tensor& ids) {
  return qf::linear(hidden_states(ids), embed_out->weight, at::Tensor());
}

at::Tensor GptNeoXForCausalLMImpl::loss(const at::Tensor& ids) {
  if (ids.dim() == 2 && ids.size(1) < 2)
    throw Error("the loss needs sequences of at least 2 tokens");
  // The last token is only a target: the model reads T - 1 tokens, as gpt-neox reads
  // 2048 of its 2049-token items, so T - 1 may be max_position_embeddings.
  const at::Tensor all = checked_ids(ids, /*extra_tokens=*/1);
  const std::int64_t b = all.size(0), t = all.size(1);
  const at::Tensor h = checked_hidden_states(all.narrow(1, 0, t - 1));
  const at::Tensor inputs = h.reshape({b * (t - 1), h.size(2)});
  const at::Tensor targets = all.narrow(1, 1, t - 1).reshape({b * (t - 1)});
  return linear_cross_entropy(inputs, embed_out->weight, targets);
}

void GptNeoXForCausalLMImpl::init_pythia(std::uint64_t seed) {
  const double d = static_cast<double>(config_.hidden_size);
  const double small = std::sqrt(2.0 / (5.0 * d));
  const double wang = 2.0 / static_cast<double>(config_.num_hidden_layers) / std::sqrt(d);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    at::Tensor& param = item.value();
    const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    const bool is_norm =
        name.find("layernorm") != std::string::npos || name.find("layer_norm") != std::string::npos;
    const bool is_wang = name.find("attention.dense.") != std::string::npos ||
                         name.find("dense_4h_to_h.") != std::string::npos;
    if (is_bias) {
      param.zero_();
    } else if (is_norm) {
      param.fill_(1.0);
    } else {
      param.copy_(at::empty(param.sizes(), at::kFloat).normal_(0.0, is_wang ? wang : small, gen));
    }
  }
}

at::Tensor next_token_loss(const at::Tensor& logits, const at::Tensor& ids) {
  const std::int64_t t = logits.size(1), vocab = logits.size(2);
  if (t < 2) throw Error("the loss needs sequences of at least 2 tokens");
  const at::Tensor inputs = logits.narrow(1, 0, t - 1).reshape({-1, vocab});
  const at::Tensor targets = ids.to(logits.device(), at::kLong).narrow(1, 1, t - 1).reshape({-1});
  return at::nll_loss(at::log_softmax(inputs, 1, at::kFloat), targets);
}

}  // namespace qf::model
