// quantfork quantize: fake-quantizes the tensors of a safetensors file (writing codes,
// scales and zero points beside them, quant_probe/quantized_file.h) or the Linear weights
// of a whole HF checkpoint, by round-to-nearest (default) or by GPTQ.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <regex>

#include "cli/command.h"
#include "core/errors.h"
#include "core/torch/tensor_io.h"
#include "quant_probe/gptq_config.h"
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
  std::size_t n = 0;
  if (dir) {
    std::optional<data::TokenRows> calibration;
    if (gptq) {
      calibration =
          quant::load_calibration_set(quant::calibration_options(cfg, quant::kQuantizeGptqKeys),
                                      quant::kQuantizeGptqKeys, nullptr);
    }
    n = quant::quantize_hf_checkpoint(in, out, scheme, pattern, gptq,
                                      calibration ? &*calibration : nullptr);
  } else {
    n = quant::quantize_safetensors_file(
        in, out, scheme, tensor_pattern(pattern), gptq,
        parser.has("hessians") ? std::optional<fs::path>(parser.get("hessians")) : std::nullopt);
  }
  spdlog::info("quantize: {} tensor(s) quantized with {} ({}) -> {}", n, scheme.name(), method,
               out.string());
  return 0;
}

}  // namespace qf::cli
