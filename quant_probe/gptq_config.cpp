#include "quant_probe/gptq_config.h"

#include "core/errors.h"
#include "data/indexed_dataset.h"

namespace qf::quant {

void declare_gptq_config(ConfigSchema& s, const GptqKeys& k, bool for_probe) {
  const std::string& a = k.algorithm;
  const std::string& c = k.calibration;
  if (for_probe) {
    s.optional(a + "enabled", FieldType::Bool, "false",
               "Also measure INT4 perplexity after GPTQ (calibrated, Frantar et al.) of the "
               "same tensors with the same scheme as the round-to-nearest INT4: "
               "ppl_int4_gptq and gap_int4_gptq_pct.")
        .defines_result();
  }
  s.optional(a + "damp", FieldType::Float, "0.01",
             "GPTQ damping: this share of mean(diag H) is added to H's diagonal.")
      .defines_result()
      .optional(a + "block", FieldType::Int, "128", "GPTQ columns per lazy-update block.")
      .defines_result()
      .optional(a + "act_order", FieldType::Bool, "false",
                "Process columns by decreasing H_ii (GPTQ's act-order).")
      .defines_result()
      .optional(c + "dataset", FieldType::Path, "null",
                for_probe ? "Indexed dataset (.bin/.idx prefix) of the calibration windows; "
                            "null: the evaluation set's dataset."
                          : "Indexed dataset (.bin/.idx prefix) of the calibration windows "
                            "(--calibration).")
      .defines_result()
      .optional(c + "sequences", FieldType::Int, "128", "Calibration windows.")
      .at_least(1)
      .defines_result()
      .optional(c + "seq_len", FieldType::Int, "512",
                "Each calibration window holds seq_len + 1 tokens, all fed to the model, so "
                "seq_len + 1 must not exceed max_position_embeddings.")
      .at_least(1)
      .defines_result()
      .optional(c + "start_item", FieldType::Int, for_probe ? "-1" : "0",
                for_probe ? "First item of the calibration windows; -1: the first token after "
                            "the evaluation windows. The region must not overlap the "
                            "evaluation windows."
                          : "First item of the calibration windows.")
      .at_least(-1)
      .defines_result()
      .optional(c + "start_token", FieldType::Int, "0",
                "Tokens skipped after start_item's first token (or after the evaluation "
                "windows).")
      .at_least(0)
      .defines_result();
}

bool gptq_enabled(const Config& cfg, const GptqKeys& k) {
  return cfg.get_bool(k.algorithm + "enabled");
}

GptqOptions gptq_options(const Config& cfg, const GptqKeys& k, const QuantScheme& scheme) {
  GptqOptions o;
  o.scheme = scheme;
  o.damp = cfg.get_float(k.algorithm + "damp");
  o.block = cfg.get_int(k.algorithm + "block");
  o.act_order = cfg.get_bool(k.algorithm + "act_order");
  try {
    o.validate(k.algorithm);
  } catch (const ConfigError& e) {
    throw ConfigError("config " + cfg.where(k.algorithm + (o.block < 1 ? "block" : "damp")) + ": " +
                      e.what());
  }
  return o;
}

CalibrationOptions calibration_options(const Config& cfg, const GptqKeys& k) {
  const std::string& c = k.calibration;
  CalibrationOptions o;
  if (!cfg.is_null(c + "dataset")) o.dataset = cfg.get_path(c + "dataset");
  o.sequences = cfg.get_int(c + "sequences");
  o.seq_len = cfg.get_int(c + "seq_len");
  o.start_item = cfg.get_int(c + "start_item");
  o.start_token = cfg.get_int(c + "start_token");
  return o;
}

namespace {

bool same_dataset(const std::filesystem::path& a, const std::filesystem::path& b) {
  std::error_code ec;
  const auto pa = data::dataset_prefix(a), pb = data::dataset_prefix(b);
  const bool eq = std::filesystem::equivalent(pa.string() + ".bin", pb.string() + ".bin", ec);
  return ec ? pa == pb : eq;
}

}  // namespace

data::TokenRows load_calibration_set(const CalibrationOptions& o, const GptqKeys& k,
                                     const EvalSetOptions* eval) {
  const std::string& c = k.calibration;
  const bool eval_from_dataset = eval && eval->dataset;
  if (!o.dataset && !eval_from_dataset) {
    throw ConfigError(c + "dataset is needed: " +
                      (eval ? std::string("the evaluation set is not an indexed dataset")
                            : std::string("give the calibration data (--calibration PREFIX)")));
  }
  const std::filesystem::path path = o.dataset ? *o.dataset : *eval->dataset;
  const data::IndexedDataset ds = data::IndexedDataset::open(path);
  const bool shares_eval = eval_from_dataset && same_dataset(path, *eval->dataset);
  std::int64_t eval_first = 0, eval_end = 0;
  if (shares_eval) {
    if (eval->start_item < 0 || eval->start_item > ds.num_items()) {
      throw ConfigError("probe.eval.start_item " + std::to_string(eval->start_item) +
                        " is outside " + ds.bin_path().string());
    }
    eval_first = ds.item_offset(eval->start_item);
    eval_end = eval_first + eval->sequences * (eval->seq_len + 1);
  }
  std::int64_t first = 0;
  if (o.start_item == -1) {
    if (!shares_eval) {
      throw ConfigError(c + "start_item = -1 means 'after the evaluation windows', but " +
                        path.string() + " is not the evaluation set's dataset; give a start item");
    }
    first = eval_end + o.start_token;
  } else {
    if (o.start_item > ds.num_items()) {
      throw ConfigError(c + "start_item " + std::to_string(o.start_item) + " is outside " +
                        ds.bin_path().string() + " (" + std::to_string(ds.num_items()) + " items)");
    }
    first = (o.start_item == ds.num_items() ? ds.total_tokens() : ds.item_offset(o.start_item)) +
            o.start_token;
  }
  const std::int64_t needed = o.sequences * (o.seq_len + 1);
  if (shares_eval && first < eval_end && eval_first < first + needed) {
    throw ConfigError("the GPTQ calibration windows (tokens [" + std::to_string(first) + ", " +
                      std::to_string(first + needed) + ") of " + ds.bin_path().string() +
                      ", from " + c +
                      "start_item/start_token) overlap the evaluation windows "
                      "(tokens [" +
                      std::to_string(eval_first) + ", " + std::to_string(eval_end) +
                      ")): a calibrated quantizer must not see the text it is scored on");
  }
  if (first + needed > ds.total_tokens()) {
    throw ConfigError("the GPTQ calibration needs " + std::to_string(o.sequences) + " x " +
                      std::to_string(o.seq_len + 1) + " = " + std::to_string(needed) +
                      " tokens from token " + std::to_string(first) + " of " +
                      ds.bin_path().string() + ", which holds " +
                      std::to_string(ds.total_tokens()) + "; lower " + c + "sequences or " + c +
                      "seq_len, or start earlier");
  }
  data::TokenRows rows{o.sequences, o.seq_len + 1,
                       std::vector<int64_t>(static_cast<size_t>(needed))};
  ds.read_tokens(first, needed, rows.tokens.data());
  return rows;
}

at::Tensor load_probe_calibration(const Config& cfg) {
  if (!gptq_enabled(cfg, kProbeGptqKeys)) return {};
  const EvalSetOptions eval = eval_set_options(cfg);
  const data::TokenRows rows =
      load_calibration_set(calibration_options(cfg, kProbeGptqKeys), kProbeGptqKeys, &eval);
  return at::tensor(rows.tokens, at::kLong).view({rows.rows, rows.row_tokens});
}

}  // namespace qf::quant
