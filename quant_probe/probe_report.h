#pragma once
// A probe's result for people and programs: a readable table, JSON, and the HDF5 rows of
// core/run_file.h.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/run_file.h"
#include "quant_probe/probe.h"

namespace qf::quant {

// {"step", "ppl_fp32", "ppl_int4", "ppl_int8", "gap_int4_pct", "gap_int8_pct",
//  "ppl_int4_gptq", "loss_int4_gptq", "gap_int4_gptq_pct" (null without probe.gptq;
//  with it also "gptq_calibration_tokens", "gptq_seconds" and per tensor
//  "rel_error_int4_gptq", "rel_output_error_int4_gptq"),
//  "loss_fp32", "loss_int4", "loss_int8", "kurtosis_mean", "grid_residual_mean",
//  "rel_error_int4_mean", "rel_error_int8_mean", "outlier_groups_mean",
//  "tokens_evaluated", "int4_scheme", "int8_scheme", "seconds", "nonfinite_tensors",
//  with probe.attribution "attribution": {"units": "tensor"|"layer", "sum_gap_int4_pct",
//  "sum_gap_int4_gptq_pct", "layer_passes", "full_pass_layers", "seconds", "gaps":
//  [{"unit", "layer", "gap_int4_pct", "gap_int4_gptq_pct"}]},
//  "tensors": {NAME: {"kurtosis", "rel_error_int4", "rel_error_int8", "grid_residual",
//  "outlier_groups", "nonfinite"}}} — probe_reference.json's keys and more. NaN is null.
nlohmann::json to_json(const ProbeResult& result, std::optional<std::int64_t> step = std::nullopt);

// Perplexities and gaps, then one line per tensor.
std::string format_table(const ProbeResult& result);

ProbeRow to_probe_row(const ProbeResult& result, std::int64_t step);
// The /probe_attribution rows: one per unit, then "sum" (empty without attribution).
std::vector<AttributionRow> to_attribution_rows(const ProbeResult& result, std::int64_t step);
std::vector<ProbeTensorRow> to_tensor_rows(const ProbeResult& result, std::int64_t step);

// The /tensors table of audit files (an extension of quantfork.audit/3): the columns of
// /probe_tensors, then `outlier_groups` f8 and `nonfinite` i8.
const hdf5::Schema& audit_tensors_schema();
void append_tensor_rows(hdf5::Table& table, const ProbeResult& result, std::int64_t step);

}  // namespace qf::quant
