#include "quant_probe/probe_config.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <tuple>

#include "core/errors.h"
#include "data/eval_set.h"
#include "data/indexed_dataset.h"
#include "data/tokenizer.h"
#include "quant_probe/attribution.h"
#include "quant_probe/gptq_config.h"

namespace qf::quant {

void declare_probe_config(ConfigSchema& s) {
  s.optional("probe.int4_scheme", FieldType::String, "int4_asym_g128",
             "The low-bit probe's quantizer: int{2..8}_{asym,sym}_g{N} or _channel. Its "
             "numbers go to the *_int4 columns whatever its bit width (the file's config "
             "and the report name the scheme).")
      .defines_result()
      .optional("probe.int8_scheme", FieldType::String, "int8_sym_channel",
                "The high-bit probe's quantizer, in the same notation (the *_int8 columns).")
      .defines_result()
      .optional("probe.tensors.include", FieldType::String,
                std::string("'") + kDefaultTensorPattern + "'",
                "Regular expression (ECMAScript, matched against the whole HF parameter "
                "name) of the tensors to quantize; default: the Linear weights inside the "
                "layers.")
      .defines_result()
      .optional("probe.tensors.exclude", FieldType::String, "''",
                "Regular expression of tensors to leave in float32 even when included; "
                "empty: none.")
      .defines_result()
      .optional("probe.batch_size", FieldType::Int, "4",
                "Evaluation sequences per forward pass (the paper's batches are 4 x 512).")
      .at_least(1)
      .optional("probe.activation_memory", FieldType::Float, "0.02",
                "Share of the FP32 weights' size that the activations of the layer-by-layer "
                "quantized evaluation may hold at once (at least one batch). Each layer is "
                "quantized once per such chunk of sequences; quantizing costs little next "
                "to a batch's forward, so a small share loses no speed.")
      .at_least(0)
      .optional("probe.outlier_ratio", FieldType::Float, "0.5",
                "A group is outlier-set when dropping its most extreme weight shrinks its "
                "range to at most this share of it.")
      .above(0)
      .below(1)
      .defines_result()
      .optional("probe.device", FieldType::String, "cpu", "cpu, cuda, cuda:1, ...")
      .optional("probe.eval.dataset", FieldType::Path, "null",
                "Indexed dataset (.bin/.idx prefix) the evaluation windows are cut from.")
      .defines_result()
      .optional("probe.eval.text", FieldType::Path, "null",
                "Or a text file (one document), encoded with probe.eval.tokenizer.")
      .defines_result()
      .optional("probe.eval.tokenizer", FieldType::Path, "null",
                "tokenizer.json for probe.eval.text.")
      .defines_result()
      .optional("probe.eval.sequences", FieldType::Int, "128", "N: evaluation sequences.")
      .at_least(1)
      .defines_result()
      .optional("probe.eval.seq_len", FieldType::Int, "512",
                "T: predicted tokens per sequence (each window holds T + 1 tokens).")
      .at_least(1)
      .defines_result()
      .optional("probe.eval.start_item", FieldType::Int, "0",
                "First item of the indexed dataset the windows start at.")
      .at_least(0)
      .defines_result();
  s.optional("probe.attribution", FieldType::String, "none",
             "Also quantize one unit at a time, the rest float32, and log each unit's INT4 "
             "gap (and GPTQ gap): none, tensor (each selected tensor) or layer (each layer's "
             "selected tensors together).")
      .one_of(attribution_unit_names())
      .defines_result();
  declare_gptq_config(s, kProbeGptqKeys, /*for_probe=*/true);
}

namespace {

QuantScheme scheme_at(const Config& cfg, const std::string& key) {
  try {
    return QuantScheme::parse(cfg.get_string(key));
  } catch (const UsageError& e) {
    throw ConfigError("config " + cfg.where(key) + ": " + e.what());
  }
}

std::optional<std::filesystem::path> optional_path(const Config& cfg, const std::string& key) {
  if (cfg.is_null(key)) return std::nullopt;
  return cfg.get_path(key);
}

}  // namespace

ProbeOptions probe_options(const Config& cfg) {
  ProbeOptions o;
  o.int4 = scheme_at(cfg, "probe.int4_scheme");
  o.int8 = scheme_at(cfg, "probe.int8_scheme");
  // The columns keep their names (the file format's contract); a quantizer of another
  // width is said once here, and the report names it beside every table it feeds.
  for (const auto& [key, scheme, bits] :
       {std::tuple{"probe.int4_scheme", o.int4, 4}, std::tuple{"probe.int8_scheme", o.int8, 8}}) {
    if (scheme.bits != bits) {
      spdlog::warn("{} is {}: its {}-bit numbers go to the *_int{} columns", key, scheme.name(),
                   scheme.bits, bits);
    }
  }
  o.include = cfg.get_string("probe.tensors.include");
  o.exclude = cfg.get_string("probe.tensors.exclude");
  for (const char* key : {"probe.tensors.include", "probe.tensors.exclude"}) {
    try {
      std::regex check(cfg.get_string(key));
    } catch (const std::regex_error& e) {
      throw ConfigError("config " + cfg.where(key) + ": not a regular expression: " + e.what());
    }
  }
  o.batch_size = cfg.get_int("probe.batch_size");
  o.activation_memory = cfg.get_float("probe.activation_memory");
  o.outlier_ratio = cfg.get_float("probe.outlier_ratio");
  o.device = cfg.get_string("probe.device");
  if (gptq_enabled(cfg, kProbeGptqKeys)) o.gptq = gptq_options(cfg, kProbeGptqKeys, o.int4);
  o.attribution = cfg.get_enum("probe.attribution", attribution_unit_names());
  return o;
}

EvalSetOptions eval_set_options(const Config& cfg) {
  EvalSetOptions o;
  o.dataset = optional_path(cfg, "probe.eval.dataset");
  o.text = optional_path(cfg, "probe.eval.text");
  o.tokenizer = optional_path(cfg, "probe.eval.tokenizer");
  o.sequences = cfg.get_int("probe.eval.sequences");
  o.seq_len = cfg.get_int("probe.eval.seq_len");
  o.start_item = cfg.get_int("probe.eval.start_item");
  if (o.dataset.has_value() == o.text.has_value()) {
    throw ConfigError(
        "the probe needs exactly one evaluation source: probe.eval.dataset (an "
        "indexed dataset, or --eval PREFIX) or probe.eval.text with "
        "probe.eval.tokenizer");
  }
  if (o.text && !o.tokenizer) {
    throw ConfigError("config " + cfg.where("probe.eval.text") +
                      ": a text evaluation set needs probe.eval.tokenizer");
  }
  return o;
}

data::TokenRows load_eval_set(const EvalSetOptions& o) {
  if (o.dataset) {
    return data::eval_set_from_dataset(data::IndexedDataset::open(*o.dataset), o.sequences,
                                       o.seq_len, o.start_item);
  }
  if (!o.text || !o.tokenizer) {
    throw ConfigError(
        "the probe needs probe.eval.dataset, or probe.eval.text with probe.eval.tokenizer");
  }
  std::ifstream in(*o.text, std::ios::binary);
  if (!in) throw IoError(errno_message("cannot read the evaluation text", o.text->string()));
  std::ostringstream text;
  text << in.rdbuf();
  return data::eval_set_from_text(data::Tokenizer::load(*o.tokenizer), {text.str()}, o.sequences,
                                  o.seq_len);
}

}  // namespace qf::quant
