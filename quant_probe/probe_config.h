#pragma once
// The probe's configuration (the `probe:` block): schemes, which tensors, batching,
// memory, device and the evaluation set. Declared and read here, next to nothing else,
// so that `quantfork probe`, `quantfork audit` and later the trainer's probe hook agree.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "core/config.h"
#include "data/token_rows.h"
#include "quant_probe/attribution.h"
#include "quant_probe/gptq.h"
#include "quant_probe/quant_scheme.h"

namespace qf::quant {

// The Linear weights inside the transformer layers (method.md).
inline constexpr const char* kDefaultTensorPattern =
    R"(^gpt_neox\.layers\.[0-9]+\.(attention\.query_key_value|attention\.dense|mlp\.dense_h_to_4h|mlp\.dense_4h_to_h)\.weight$)";

struct ProbeOptions {
  QuantScheme int4 = QuantScheme::parse("int4_asym_g128");
  QuantScheme int8 = QuantScheme::parse("int8_sym_channel");
  std::string include = kDefaultTensorPattern;  // ECMAScript regex, matched whole
  std::string exclude;                          // "" excludes nothing
  std::int64_t batch_size = 4;                  // the paper's 4 x 512
  // Share of the FP32 weights' bytes that one chunk of layer-by-layer activations may
  // take (layerwise_eval.h); at least one batch is always held.
  double activation_memory = 0.02;
  double outlier_ratio = 0.5;  // weight_stats.h
  std::string device = "cpu";
  // GPTQ INT4 beside round-to-nearest INT4 (probe.gptq.*), with the INT4 scheme; unset:
  // off. Its calibration windows are passed to the probe beside the evaluation windows.
  std::optional<GptqOptions> gptq;
  // probe.attribution: each unit's INT4 gap alone (attribution.h).
  AttributionUnits attribution = AttributionUnits::none;
};

// Where the evaluation tokens come from (method.md: N sequences of T + 1 tokens).
struct EvalSetOptions {
  std::optional<std::filesystem::path> dataset;  // indexed dataset prefix (.bin/.idx)
  std::optional<std::filesystem::path> text;     // or a text file, with a tokenizer
  std::optional<std::filesystem::path> tokenizer;
  std::int64_t sequences = 128;
  std::int64_t seq_len = 512;
  std::int64_t start_item = 0;
};

void declare_probe_config(ConfigSchema& schema);
// ConfigError naming the key for a bad scheme, regex or value.
ProbeOptions probe_options(const Config& config);
EvalSetOptions eval_set_options(const Config& config);

// The N windows of T + 1 tokens. ConfigError when neither or both sources are set, Error
// (from data/eval_set.h) when the source holds too few tokens.
data::TokenRows load_eval_set(const EvalSetOptions& options);

}  // namespace qf::quant
