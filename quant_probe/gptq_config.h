#pragma once
// GPTQ's configuration and calibration set, declared once for both users: the probe
// (`probe.gptq.*`, calibration under `probe.gptq.calibration.*`) and `quantfork quantize
// --method gptq` (`gptq.*`). Calibration windows hold seq_len + 1 tokens cut from an
// indexed dataset as evaluation windows are (data/eval_set.h), from `start_item`'s first
// token plus `start_token`, and are fed whole to the model.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "core/config.h"
#include "data/token_rows.h"
#include "quant_probe/gptq.h"
#include "quant_probe/probe_config.h"

namespace qf::quant {

// Where the keys live: {"probe.gptq.", "probe.gptq.calibration."} or {"gptq.", "gptq."}.
struct GptqKeys {
  std::string algorithm;
  std::string calibration;
};
inline const GptqKeys kProbeGptqKeys{"probe.gptq.", "probe.gptq.calibration."};
inline const GptqKeys kQuantizeGptqKeys{"gptq.", "gptq."};

struct CalibrationOptions {
  std::optional<std::filesystem::path> dataset;  // unset: the evaluation set's dataset
  std::int64_t sequences = 128;
  std::int64_t seq_len = 512;
  // −1: from the first token after the evaluation windows (the probe's default); needs
  // the evaluation set's dataset.
  std::int64_t start_item = -1;
  std::int64_t start_token = 0;  // tokens skipped after start_item's first token
};

// `for_probe`: with the probe's on/off switch (probe.gptq.enabled), and calibration from
// after the evaluation windows by default (start_item −1); else from item 0.
void declare_gptq_config(ConfigSchema& schema, const GptqKeys& keys, bool for_probe);
bool gptq_enabled(const Config& config, const GptqKeys& keys);
// ConfigError naming the key for a value GPTQ cannot take; `scheme` is the INT4 scheme
// (the probe's, so that GPTQ's gap and round-to-nearest's are of the same format).
GptqOptions gptq_options(const Config& config, const GptqKeys& keys, const QuantScheme& scheme);
CalibrationOptions calibration_options(const Config& config, const GptqKeys& keys);

// The calibration windows [sequences, seq_len + 1]. ConfigError naming the key when the
// region overlaps the evaluation windows of `eval` (same dataset), starts outside the
// dataset, or the dataset holds too few tokens; when no dataset is given and `eval` has
// none either.
data::TokenRows load_calibration_set(const CalibrationOptions& options, const GptqKeys& keys,
                                     const EvalSetOptions* eval);

// The probe's calibration windows as [N, seq_len + 1] ids when probe.gptq.enabled, else an
// undefined tensor (what probe_model takes).
at::Tensor load_probe_calibration(const Config& config);

}  // namespace qf::quant
