#include "quant_probe/gptq_model.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <optional>
#include <regex>

#include "core/errors.h"
#include "core/progress.h"
#include "core/torch/compat.h"
#include "model/attention.h"

namespace qf::quant {

namespace {

struct Selected {
  std::string name;
  std::int64_t layer;
  std::string linear;  // relative to the layer: "attention.dense", ...
  at::Tensor param;
};

std::vector<Selected> select_linears(model::GptNeoXForCausalLM& m, const GptqModelOptions& o) {
  const std::regex include(o.include);
  const std::optional<std::regex> exclude =
      o.exclude.empty() ? std::nullopt : std::optional<std::regex>(std::regex(o.exclude));
  static const std::regex in_layer(R"(^gpt_neox\.layers\.([0-9]+)\.(.+)\.weight$)");
  static const std::regex linear_name(
      R"(^(attention\.query_key_value|attention\.dense|mlp\.dense_h_to_4h|mlp\.dense_4h_to_h)$)");
  std::vector<Selected> out;
  for (auto& item : m->named_parameters()) {
    const std::string& name = item.key();
    if (!std::regex_match(name, include) || (exclude && std::regex_match(name, *exclude))) continue;
    std::smatch match;
    const bool is_layer_linear =
        std::regex_match(name, match, in_layer) && std::regex_match(match[2].str(), linear_name);
    if (!is_layer_linear) {
      throw ConfigError("GPTQ quantizes the Linear weights inside the transformer layers; '" +
                        name +
                        "', matched by probe.tensors.include, is not one (narrow the "
                        "pattern or exclude it)");
    }
    out.push_back({name, std::stoll(match[1]), match[2].str(), item.value()});
  }
  if (out.empty()) {
    throw ConfigError("probe.tensors.include '" + o.include + "' (minus probe.tensors.exclude '" +
                      o.exclude + "') selects no Linear weight for GPTQ");
  }
  return out;
}

void check_calibration(const model::GptNeoXForCausalLM& m, const at::Tensor& ids,
                       const std::vector<Selected>& selected, const std::string& keys) {
  const auto& c = m->config();
  if (ids.dim() != 2 || ids.size(0) < 1 || ids.size(1) < 1) {
    throw Error("GPTQ calibration windows must be [N >= 1, L >= 1] token ids");
  }
  if (ids.size(1) > c.max_position_embeddings) {
    throw ConfigError("GPTQ calibration windows of " + std::to_string(ids.size(1)) +
                      " tokens exceed the model's max_position_embeddings (" +
                      std::to_string(c.max_position_embeddings) +
                      "); the windows are fed whole, so " + keys + "seq_len + 1 must fit");
  }
  const std::int64_t lo = ids.min().item<std::int64_t>(), hi = ids.max().item<std::int64_t>();
  if (lo < 0 || hi >= c.vocab_size) {
    throw Error("GPTQ calibration token id " + std::to_string(lo < 0 ? lo : hi) +
                " is outside the model's vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  }
  std::int64_t widest = 0;
  std::string widest_name;
  for (const auto& s : selected) {
    if (s.param.size(1) > widest) {
      widest = s.param.size(1);
      widest_name = s.name;
    }
  }
  if (ids.numel() < widest) {
    throw ConfigError("GPTQ calibration holds " + std::to_string(ids.numel()) +
                      " tokens, fewer than the " + std::to_string(widest) + " inputs of '" +
                      widest_name +
                      "': its Hessian would be singular before damping and GPTQ would fit "
                      "the damping, not the data; raise " +
                      keys + "sequences or " + keys + "seq_len");
  }
}

// ‖A Xᵀ‖² = n/2 · tr(A H Aᵀ) for H = 2/n Σ XᵀX: the output error without keeping X.
double output_norm_sq(const at::Tensor& a, const at::Tensor& h) {
  const at::Tensor ad = a.to(at::kDouble);
  return (at::mm(ad, h.to(at::kDouble)) * ad).sum().item<double>();
}

}  // namespace

GptqModelResult gptq_model(model::GptNeoXForCausalLM& m, const at::Tensor& calibration,
                           const GptqModelOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  o.gptq.validate("gptq.");
  torch::NoGradGuard no_grad;
  torch_compat::ScopedNoTf32 no_tf32;
  const bool was_training = m->is_training();
  m->eval();
  struct RestoreMode {
    model::GptNeoXForCausalLM& m;
    bool training;
    ~RestoreMode() { m->train(training); }
  } restore_mode{m, was_training};

  std::vector<Selected> selected = select_linears(m, o);
  const at::Tensor ids = calibration.to(m->device(), at::kLong);
  check_calibration(m, ids, selected, o.calibration_keys);
  const auto& c = m->config();
  auto& body = *m->gpt_neox;
  const std::int64_t n = ids.size(0), len = ids.size(1);
  const auto [cos, sin] =
      model::rotary_tables(len, c.rotary_ndims(), c.rotary_emb_base, m->device(), m->dtype());

  std::map<std::int64_t, std::vector<std::size_t>> by_layer;
  for (std::size_t i = 0; i < selected.size(); ++i) by_layer[selected[i].layer].push_back(i);

  GptqModelResult result;
  result.calibration_tokens = n * len;
  result.tensors.resize(selected.size());
  at::Tensor inps = at::embedding(body.embed_in->weight, ids);  // [N, L, d]
  at::Tensor outs = at::empty_like(inps);
  const std::int64_t last_layer = by_layer.rbegin()->first;
  std::optional<Progress> progress;
  if (o.show_progress) progress.emplace("gptq", last_layer + 1, "layer", stderr, 30.0);
  for (std::int64_t l = 0; l <= last_layer; ++l) {
    auto& layer = *body.layers[static_cast<std::size_t>(l)]->as<model::GptNeoXLayer>();
    const auto it = by_layer.find(l);
    if (it == by_layer.end()) {  // nothing to quantize here: the float layer feeds the next
      for (std::int64_t s = 0; s < n; ++s)
        outs[s].copy_(layer.forward(inps[s].unsqueeze(0), cos, sin)[0]);
      std::swap(inps, outs);
      if (progress) progress->update(l + 1);
      continue;
    }
    std::map<std::string, std::size_t> by_linear;
    std::vector<HessianAccumulator> hessians;
    for (std::size_t i : it->second) {
      by_linear[selected[i].linear] = hessians.size();
      hessians.emplace_back(selected[i].param.size(1));
    }
    // One window at a time, as opt.py feeds them: add_batch sees [1, L, in].
    const model::LinearInputTap tap = [&](const char* linear, const at::Tensor& x) {
      const auto h = by_linear.find(linear);
      if (h != by_linear.end()) hessians[h->second].add_batch(x, linear);
    };
    for (std::int64_t s = 0; s < n; ++s) layer.forward(inps[s].unsqueeze(0), cos, sin, &tap);

    // (parameter, float copy): put back however this layer ends, errors included.
    struct Swapped {
      std::vector<std::pair<at::Tensor, at::Tensor>> items;
      ~Swapped() {
        for (auto& [param, original] : items) param.copy_(original);
      }
    } swapped;
    for (std::size_t i : it->second) {
      const Selected& sel = selected[i];
      const at::Tensor& h = hessians[by_linear.at(sel.linear)].hessian();
      GptqTensor& t = result.tensors[i];
      t.name = sel.name;
      t.layer = l;
      t.result = gptq_quantize(sel.param, h, o.gptq, "'" + sel.name + "'");
      const at::Tensor w = sel.param.to(at::kFloat);
      const at::Tensor delta = w - t.result.dequantized;
      t.rel_error_weight = delta.norm().item<double>() / w.norm().item<double>();
      t.rel_error_output = std::sqrt(output_norm_sq(delta, h) / output_norm_sq(w, h));
      swapped.items.emplace_back(sel.param, sel.param.clone());
      sel.param.copy_(t.result.dequantized);
    }
    for (std::int64_t s = 0; s < n; ++s)
      outs[s].copy_(layer.forward(inps[s].unsqueeze(0), cos, sin)[0]);
    std::swap(inps, outs);
    spdlog::debug("gptq: layer {} done ({} tensors)", l, it->second.size());
    if (progress) progress->update(l + 1);
  }
  if (progress) progress->finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace qf::quant
