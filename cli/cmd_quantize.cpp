// quantfork quantize: fake-quantizes the tensors of a safetensors file (writing codes,
// scales and zero points beside them, quant_probe/quantized_file.h) or the Linear weights
// of a whole HF checkpoint, by round-to-nearest (default) or by GPTQ.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <regex>

#include "cli/command.h"
#include "core/errors.h"
#include "core/torch/tensor_io.h"
#include "model/hf_checkpoint.h"
#include "quant_probe/gptq_config.h"
#include "quant_probe/gptq_model.h"
#include "quant_probe/quantize.h"
#include "quant_probe/quantized_file.h"

namespace fs = std::filesystem;

namespace qf::cli {
namespace {

std::regex tensor_pattern(const std::string& text) {
  try {
    return std::regex(text);
  } catch (const std::regex_error& e) {
    throw UsageError("quantfork quantize: --tensors '" + text +
                     "' is not a regular expression: " + e.what());
  }
}

quant::QuantizedTensor from_gptq(const quant::GptqResult& r) {
  return {r.dequantized, r.codes, r.scales,
          r.zeros,       r.g_idx, r.perm.defined() ? r.perm : at::Tensor()};
}

// FILE -> FILE. GPTQ takes each tensor's Hessian from `hessians` under the tensor's name.
std::size_t quantize_file(const fs::path& in, const fs::path& out, const quant::QuantScheme& scheme,
                          const std::regex& pattern, const std::optional<quant::GptqOptions>& gptq,
                          const std::optional<fs::path>& hessians) {
  std::map<std::string, at::Tensor> h;
  if (hessians) h = load_tensors(*hessians);
  const quant::TensorQuantizer rtn = [&](const std::string& name, const at::Tensor& w) {
    const quant::Quantized q = quant::quantize(w, scheme, "'" + name + "' of " + in.string());
    return quant::QuantizedTensor{q.dequantized, q.codes, q.scales, q.zeros, {}, {}};
  };
  const quant::TensorQuantizer by_gptq = [&](const std::string& name, const at::Tensor& w) {
    const auto it = h.find(name);
    if (it == h.end()) {
      throw UsageError("quantize --method gptq: " + hessians->string() + " holds no Hessian '" +
                       name + "' for the tensor of that name in " + in.string() +
                       " (narrow --tensors to the tensors it has)");
    }
    return from_gptq(quant::gptq_quantize(w, it->second, *gptq, "'" + name + "'"));
  };
  std::map<std::string, std::string> meta = {{"quantfork.scheme", scheme.name()},
                                             {"quantfork.method", gptq ? "gptq" : "rtn"}};
  const std::size_t n = quant::write_quantized_file(in, out, pattern, gptq ? by_gptq : rtn, meta);
  if (n == 0) spdlog::warn("quantize: no floating 2-D tensor of {} matches", in.string());
  return n;
}

// DIR -> DIR: an HF checkpoint whose matching weights are replaced by their dequantized
// values, saved in float32 (a float16 copy would round them off the grid again).
std::size_t quantize_checkpoint(const fs::path& in, const fs::path& out,
                                const quant::QuantScheme& scheme, const std::string& pattern,
                                const std::optional<quant::GptqOptions>& gptq, const Config& cfg) {
  model::LoadedModel loaded = model::load_hf_checkpoint(in, {at::kFloat, at::kCPU});
  torch::NoGradGuard no_grad;
  std::size_t quantized = 0;
  if (gptq) {
    const data::TokenRows rows =
        quant::load_calibration_set(quant::calibration_options(cfg, quant::kQuantizeGptqKeys),
                                    quant::kQuantizeGptqKeys, nullptr);
    quant::GptqModelOptions o;
    o.gptq = *gptq;
    o.include = pattern;
    o.show_progress = true;
    const quant::GptqModelResult r = quant::gptq_model(
        loaded.model, at::tensor(rows.tokens, at::kLong).view({rows.rows, rows.row_tokens}), o);
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
  const std::regex re = tensor_pattern(pattern);
  for (auto& item : loaded.model->named_parameters()) {
    at::Tensor& p = item.value();
    if (!std::regex_match(item.key(), re) || p.dim() != 2) continue;
    const at::Tensor original = p.clone();
    quant::fake_quantize_into(p, p, scheme, "'" + item.key() + "' of " + in.string());
    spdlog::info("{}: relative error {:.6g}", item.key(),
                 (original.to(at::kDouble) - p.to(at::kDouble)).norm().item<double>() /
                     original.to(at::kDouble).norm().item<double>());
    ++quantized;
  }
  if (quantized == 0)
    throw UsageError("quantize: no 2-D weight of " + in.string() + " matches --tensors");
  model::save_hf_checkpoint(loaded.model, out, at::kFloat);
  return quantized;
}

// YAML single-quoted: the value stays a string whatever it holds.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace

int run_quantize(const std::vector<std::string>& args) {
  ArgParser parser(
      "quantize",
      "--in PATH --out PATH --scheme SCHEME [--method rtn|gptq] [--calibration PREFIX | "
      "--hessians FILE] [--tensors REGEX] [--config FILE] [--set KEY=VALUE]",
      "Fake quantization by round-to-nearest (llm-awq's pseudo_quantize_tensor, the default) "
      "or GPTQ (Frantar et al., as IST-DASLab/gptq runs it; gptq.* keys). For a safetensors "
      "file, every matching floating 2-D tensor NAME is written as NAME (dequantized, "
      "float32), NAME.codes (uint8; int8 for symmetric round-to-nearest), NAME.scales and "
      "NAME.zeros (float32 [rows, groups]), with GPTQ also NAME.g_idx (and NAME.perm with "
      "act-order); other tensors are copied. GPTQ of a file needs --hessians FILE holding each "
      "tensor's Hessian H = 2/n sum X^T X under its name. With --in DIR --out DIR, a Hugging "
      "Face GPT-NeoX checkpoint is written back with its matching weights fake-quantized "
      "(float32); GPTQ calibrates it sequentially on windows of gptq.seq_len + 1 tokens of "
      "--calibration PREFIX (gptq.dataset) and also writes DIR/quantization.safetensors (the "
      "codes and grids). Schemes: int{2..8}_{asym,sym}_g{N} and int{2..8}_{asym,sym}_channel.");
  parser.option("in", "PATH", "a safetensors file, or an HF checkpoint directory")
      .option("out", "PATH", "the file or directory to write")
      .option("scheme", "SCHEME", "e.g. int4_asym_g128, int8_sym_channel")
      .option("method", "rtn|gptq", "round-to-nearest (default) or GPTQ")
      .option("calibration", "PREFIX",
              "indexed dataset of GPTQ's calibration windows (gptq.dataset)")
      .option("hessians", "FILE", "safetensors of per-tensor Hessians (GPTQ of a file)")
      .option("tensors", "REGEX",
              "tensors to quantize (matched against the whole name); default: every floating "
              "2-D tensor of a file, the Linear weights inside the layers of a checkpoint");
  add_config_options(parser);
  if (!parser.parse(args)) return 0;
  ConfigSchema schema;
  quant::declare_gptq_config(schema, quant::kQuantizeGptqKeys, /*for_probe=*/false);
  std::vector<std::string> shortcuts;
  if (parser.has("calibration"))
    shortcuts.push_back("gptq.dataset=" + quoted(parser.get("calibration")));
  Config cfg;
  if (!load_config(parser, schema, cfg, "", "", shortcuts)) return 0;

  const quant::QuantScheme scheme = quant::QuantScheme::parse(parser.get("scheme"));
  const std::string method = parser.has("method") ? parser.get("method") : "rtn";
  if (method != "rtn" && method != "gptq") {
    throw UsageError("quantize: --method '" + method + "' is not rtn or gptq");
  }
  std::optional<quant::GptqOptions> gptq;
  if (method == "gptq") gptq = quant::gptq_options(cfg, quant::kQuantizeGptqKeys, scheme);
  const fs::path in = parser.get("in"), out = parser.get("out");
  if (!fs::exists(in)) throw UsageError("quantize: --in '" + in.string() + "' does not exist");
  const bool dir = fs::is_directory(in);
  if (gptq && dir && parser.has("hessians")) {
    throw UsageError(
        "quantize: --hessians is for a safetensors file; a checkpoint is "
        "calibrated on --calibration PREFIX");
  }
  if (gptq && !dir && !parser.has("hessians")) {
    throw UsageError("quantize --method gptq of a safetensors file needs --hessians FILE");
  }
  if (!gptq && (parser.has("hessians") || parser.has("calibration"))) {
    throw UsageError("quantize: --hessians and --calibration are for --method gptq");
  }
  const std::string pattern = parser.has("tensors") ? parser.get("tensors")
                              : dir                 ? quant::kDefaultTensorPattern
                                                    : ".*";
  tensor_pattern(pattern);
  const std::size_t n =
      dir ? quantize_checkpoint(in, out, scheme, pattern, gptq, cfg)
          : quantize_file(in, out, scheme, tensor_pattern(pattern), gptq,
                          parser.has("hessians") ? std::optional<fs::path>(parser.get("hessians"))
                                                 : std::nullopt);
  spdlog::info("quantize: {} tensor(s) quantized with {} ({}) -> {}", n, scheme.name(), method,
               out.string());
  return 0;
}

}  // namespace qf::cli
