#include "quant_probe/quantized_file.h"

#include <spdlog/spdlog.h>

#include "core/errors.h"
#include "core/torch/tensor_io.h"
#include "model/hf_checkpoint.h"
#include "quant_probe/gptq_model.h"
#include "quant_probe/quantize.h"

namespace qf::quant {

namespace {

constexpr const char* kSuffixes[] = {".codes", ".scales", ".zeros", ".g_idx", ".perm"};

double relative_error(const at::Tensor& w, const at::Tensor& q) {
  const at::Tensor wd = w.to(at::kDouble);
  return (wd - q.to(at::kDouble)).norm().item<double>() / wd.norm().item<double>();
}

QuantizedTensor from_gptq(const GptqResult& r) {
  return {r.dequantized, r.codes, r.scales,
          r.zeros,       r.g_idx, r.perm.defined() ? r.perm : at::Tensor()};
}

}  // namespace

std::size_t write_quantized_file(const std::filesystem::path& in, const std::filesystem::path& out,
                                 const std::regex& pattern, const TensorQuantizer& quantize,
                                 const std::map<std::string, std::string>& metadata) {
  const auto tensors = load_tensors(in);
  std::vector<std::pair<std::string, at::Tensor>> written;
  std::size_t quantized = 0;
  for (const auto& [name, t] : tensors) {
    if (!std::regex_match(name, pattern) || t.dim() != 2 || !at::isFloatingType(t.scalar_type())) {
      written.emplace_back(name, t);
      continue;
    }
    for (const char* suffix : kSuffixes) {
      if (tensors.count(name + suffix)) {
        throw Error(in.string() + ": holds both '" + name + "' and '" + name + suffix +
                    "'; quantizing the first would overwrite the second");
      }
    }
    const QuantizedTensor q = quantize(name, t);
    spdlog::info("{}: relative error {:.6g}", name, relative_error(t, q.dequantized));
    written.emplace_back(name, q.dequantized);
    written.emplace_back(name + ".codes", q.codes);
    written.emplace_back(name + ".scales", q.scales);
    written.emplace_back(name + ".zeros", q.zeros);
    if (q.g_idx.defined()) written.emplace_back(name + ".g_idx", q.g_idx);
    if (q.perm.defined()) written.emplace_back(name + ".perm", q.perm);
    ++quantized;
  }
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  save_safetensors(out, written, meta);
  return quantized;
}

std::size_t quantize_safetensors_file(const std::filesystem::path& in,
                                      const std::filesystem::path& out, const QuantScheme& scheme,
                                      const std::regex& pattern,
                                      const std::optional<GptqOptions>& gptq,
                                      const std::optional<std::filesystem::path>& hessians) {
  std::map<std::string, at::Tensor> h;
  if (hessians) h = load_tensors(*hessians);
  const TensorQuantizer rtn = [&](const std::string& name, const at::Tensor& w) {
    const Quantized q = quantize(w, scheme, "'" + name + "' of " + in.string());
    return QuantizedTensor{q.dequantized, q.codes, q.scales, q.zeros, {}, {}};
  };
  const TensorQuantizer by_gptq = [&](const std::string& name, const at::Tensor& w) {
    const auto it = h.find(name);
    if (it == h.end()) {
      throw UsageError("quantize --method gptq: " + hessians->string() + " holds no Hessian '" +
                       name + "' for the tensor of that name in " + in.string() +
                       " (narrow --tensors to the tensors it has)");
    }
    return from_gptq(gptq_quantize(w, it->second, *gptq, "'" + name + "'"));
  };
  std::map<std::string, std::string> meta = {{"quantfork.scheme", scheme.name()},
                                             {"quantfork.method", gptq ? "gptq" : "rtn"}};
  const std::size_t n = write_quantized_file(in, out, pattern, gptq ? by_gptq : rtn, meta);
  if (n == 0) spdlog::warn("quantize: no floating 2-D tensor of {} matches", in.string());
  return n;
}

std::size_t quantize_hf_checkpoint(const std::filesystem::path& in,
                                   const std::filesystem::path& out, const QuantScheme& scheme,
                                   const std::string& pattern,
                                   const std::optional<GptqOptions>& gptq,
                                   const data::TokenRows* calibration) {
  model::LoadedModel loaded = model::load_hf_checkpoint(in, {at::kFloat, at::kCPU});
  torch::NoGradGuard no_grad;
  std::size_t quantized = 0;
  if (gptq) {
    if (!calibration) throw std::logic_error("quantize_hf_checkpoint: GPTQ without calibration");
    GptqModelOptions o;
    o.gptq = *gptq;
    o.include = pattern;
    o.show_progress = true;
    const GptqModelResult r = gptq_model(loaded.model,
                                         at::tensor(calibration->tokens, at::kLong)
                                             .view({calibration->rows, calibration->row_tokens}),
                                         o);
    std::map<std::string, at::Tensor> params;
    for (auto& item : loaded.model->named_parameters()) params[item.key()] = item.value();
    std::vector<std::pair<std::string, at::Tensor>> grids;
    for (const auto& t : r.tensors) {
      params.at(t.name).copy_(t.result.dequantized);
      spdlog::info("{}: relative error {:.6g} (weights), {:.6g} (outputs on the calibration set)",
                   t.name, t.rel_error_weight, t.rel_error_output);
      const std::string base = t.name.substr(0, t.name.size() - std::string(".weight").size());
      grids.emplace_back(base + ".codes", t.result.codes);
      grids.emplace_back(base + ".scales", t.result.scales);
      grids.emplace_back(base + ".zeros", t.result.zeros);
      grids.emplace_back(base + ".g_idx", t.result.g_idx);
      if (t.result.perm.defined()) grids.emplace_back(base + ".perm", t.result.perm);
      ++quantized;
    }
    model::save_hf_checkpoint(loaded.model, out, at::kFloat);
    save_safetensors(out / "quantization.safetensors", grids,
                     {{"format", "pt"},
                      {"quantfork.scheme", scheme.name()},
                      {"quantfork.method", "gptq"},
                      {"quantfork.calibration_tokens", std::to_string(r.calibration_tokens)}});
    return quantized;
  }
  const std::regex re(pattern);
  for (auto& item : loaded.model->named_parameters()) {
    at::Tensor& p = item.value();
    if (!std::regex_match(item.key(), re) || p.dim() != 2) continue;
    const at::Tensor original = p.clone();
    fake_quantize_into(p, p, scheme, "'" + item.key() + "' of " + in.string());
    spdlog::info("{}: relative error {:.6g}", item.key(), relative_error(original, p));
    ++quantized;
  }
  if (quantized == 0) {
    throw UsageError("quantize: no 2-D weight of " + in.string() + " matches --tensors");
  }
  model::save_hf_checkpoint(loaded.model, out, at::kFloat);
  return quantized;
}

}  // namespace qf::quant
