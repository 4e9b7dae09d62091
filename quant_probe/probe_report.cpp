#include "quant_probe/probe_report.h"

#include <cmath>
#include <cstdio>
#include <limits>

namespace qf::quant {

namespace {

nlohmann::json number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

std::string fixed(double v, int decimals) {
  if (std::isnan(v)) return "nan";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  return text;
}

}  // namespace

nlohmann::json to_json(const ProbeResult& r, std::optional<std::int64_t> step) {
  nlohmann::json j;
  if (step) j["step"] = *step;
  j["ppl_fp32"] = number(r.fp32.ppl);
  j["ppl_int4"] = number(r.int4.ppl);
  j["ppl_int8"] = number(r.int8.ppl);
  j["gap_int4_pct"] = number(r.gap_int4_pct);
  j["gap_int8_pct"] = number(r.gap_int8_pct);
  j["loss_fp32"] = number(r.fp32.loss);
  j["loss_int4"] = number(r.int4.loss);
  j["loss_int8"] = number(r.int8.loss);
  j["kurtosis_mean"] = number(r.stats.kurtosis_mean);
  j["grid_residual_mean"] = number(r.stats.grid_residual_mean);
  j["rel_error_int4_mean"] = number(r.stats.rel_error_int4_mean);
  j["rel_error_int8_mean"] = number(r.stats.rel_error_int8_mean);
  j["outlier_groups_mean"] = number(r.stats.outlier_groups_mean);
  j["tokens_evaluated"] = r.fp32.tokens;
  j["int4_scheme"] = r.int4_scheme;
  j["int8_scheme"] = r.int8_scheme;
  j["seconds"] = r.seconds;
  j["nonfinite_tensors"] = r.stats.nonfinite_tensors;
  const bool gptq = r.int4_gptq.has_value();
  j["ppl_int4_gptq"] = gptq ? number(r.int4_gptq->ppl) : nlohmann::json(nullptr);
  j["loss_int4_gptq"] = gptq ? number(r.int4_gptq->loss) : nlohmann::json(nullptr);
  j["gap_int4_gptq_pct"] = number(r.gap_int4_gptq_pct);
  if (gptq) {
    j["gptq_calibration_tokens"] = r.gptq_calibration_tokens;
    j["gptq_seconds"] = r.gptq_seconds;
  }
  nlohmann::json tensors = nlohmann::json::object();
  for (const auto& t : r.tensors) {
    nlohmann::json& e = tensors[t.name];
    e = {{"kurtosis", number(t.kurtosis)},
         {"rel_error_int4", number(t.rel_error_int4)},
         {"rel_error_int8", number(t.rel_error_int8)},
         {"grid_residual", number(t.grid_residual)},
         {"outlier_groups", number(t.outlier_groups)},
         {"nonfinite", t.nonfinite}};
    if (gptq) {
      e["rel_error_int4_gptq"] = number(t.rel_error_int4_gptq);
      e["rel_output_error_int4_gptq"] = number(t.rel_output_error_int4_gptq);
    }
  }
  j["tensors"] = tensors;
  if (r.attribution) {
    const Attribution& a = *r.attribution;
    nlohmann::json gaps = nlohmann::json::array();
    for (const auto& u : a.units) {
      gaps.push_back({{"unit", u.unit},
                      {"layer", u.layer},
                      {"gap_int4_pct", number(u.gap_int4_pct)},
                      {"gap_int4_gptq_pct", number(u.gap_int4_gptq_pct)}});
    }
    j["attribution"] = {{"units", attribution_units_name(a.units_kind)},
                        {"sum_gap_int4_pct", number(a.sum_gap_int4_pct)},
                        {"sum_gap_int4_gptq_pct", number(a.sum_gap_int4_gptq_pct)},
                        {"layer_passes", a.layer_passes},
                        {"full_pass_layers", a.full_pass_layers},
                        {"seconds", a.seconds},
                        {"gaps", gaps}};
  }
  return j;
}

std::string format_table(const ProbeResult& r) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-6s %-18s %12s %12s %10s\n", "", "scheme", "perplexity",
                "loss", "gap %");
  out += line;
  const auto row = [&](const char* label, const std::string& scheme, const EvalResult& e,
                       const std::string& gap) {
    std::snprintf(line, sizeof line, "%-6s %-18s %12s %12s %10s\n", label, scheme.c_str(),
                  fixed(e.ppl, 4).c_str(), fixed(e.loss, 6).c_str(), gap.c_str());
    out += line;
  };
  row("FP32", "float32", r.fp32, "");
  row("INT4", r.int4_scheme, r.int4, fixed(r.gap_int4_pct, 3));
  row("INT8", r.int8_scheme, r.int8, fixed(r.gap_int8_pct, 3));
  if (r.int4_gptq) row("GPTQ4", r.int4_scheme, *r.int4_gptq, fixed(r.gap_int4_gptq_pct, 3));
  std::snprintf(line, sizeof line, "%lld tokens evaluated in %.1f s\n\n",
                static_cast<long long>(r.fp32.tokens), r.seconds);
  out += line;
  std::snprintf(line, sizeof line, "%-56s %9s %9s %9s %8s %8s\n", "tensor", "kurtosis", "err int4",
                "err int8", "grid res", "outlier");
  out += line;
  const auto tensor_line = [&](const std::string& name, double k, double e4, double e8, double g,
                               double o) {
    std::snprintf(line, sizeof line, "%-56s %9s %9s %9s %8s %8s\n", name.c_str(),
                  fixed(k, 3).c_str(), fixed(e4, 5).c_str(), fixed(e8, 5).c_str(),
                  fixed(g, 4).c_str(), fixed(o, 4).c_str());
    out += line;
  };
  for (const auto& t : r.tensors) {
    tensor_line(t.name, t.kurtosis, t.rel_error_int4, t.rel_error_int8, t.grid_residual,
                t.outlier_groups);
  }
  tensor_line("mean", r.stats.kurtosis_mean, r.stats.rel_error_int4_mean,
              r.stats.rel_error_int8_mean, r.stats.grid_residual_mean, r.stats.outlier_groups_mean);
  for (const auto& name : r.stats.nonfinite_tensors) {
    out += "warning: " + name + " holds NaN/Inf weights; left out of the means\n";
  }
  if (r.attribution) {
    const Attribution& a = *r.attribution;
    std::snprintf(line, sizeof line, "\n%-56s %12s %12s\n", "unit quantized alone",
                  "INT4 gap %", "GPTQ gap %");
    out += line;
    for (const auto& u : a.units) {
      std::snprintf(line, sizeof line, "%-56s %12s %12s\n", u.unit.c_str(),
                    fixed(u.gap_int4_pct, 3).c_str(), fixed(u.gap_int4_gptq_pct, 3).c_str());
      out += line;
    }
    std::snprintf(line, sizeof line, "%-56s %12s %12s\n%-56s %12s %12s\n", "sum of the units",
                  fixed(a.sum_gap_int4_pct, 3).c_str(), fixed(a.sum_gap_int4_gptq_pct, 3).c_str(),
                  "all together (the probe)", fixed(r.gap_int4_pct, 3).c_str(),
                  fixed(r.gap_int4_gptq_pct, 3).c_str());
    out += line;
  }
  return out;
}

ProbeRow to_probe_row(const ProbeResult& r, std::int64_t step) {
  ProbeRow row;
  row.step = step;
  row.loss_fp32 = r.fp32.loss;
  row.ppl_fp32 = r.fp32.ppl;
  row.ppl_int4 = r.int4.ppl;
  row.ppl_int8 = r.int8.ppl;
  row.gap_int4_pct = r.gap_int4_pct;
  row.gap_int8_pct = r.gap_int8_pct;
  row.kurtosis_mean = r.stats.kurtosis_mean;
  row.grid_residual_mean = r.stats.grid_residual_mean;
  row.tokens_evaluated = r.fp32.tokens;
  row.ppl_int4_gptq = r.int4_gptq ? r.int4_gptq->ppl : std::numeric_limits<double>::quiet_NaN();
  row.gap_int4_gptq_pct = r.gap_int4_gptq_pct;
  return row;
}

std::vector<AttributionRow> to_attribution_rows(const ProbeResult& r, std::int64_t step) {
  std::vector<AttributionRow> rows;
  if (!r.attribution) return rows;
  for (const auto& u : r.attribution->units) {
    rows.push_back({step, u.unit, u.layer, u.gap_int4_pct, u.gap_int4_gptq_pct});
  }
  rows.push_back({step, "sum", -1, r.attribution->sum_gap_int4_pct,
                  r.attribution->sum_gap_int4_gptq_pct});
  return rows;
}

std::vector<ProbeTensorRow> to_tensor_rows(const ProbeResult& r, std::int64_t step) {
  std::vector<ProbeTensorRow> rows;
  for (const auto& t : r.tensors) {
    rows.push_back({step, t.name, t.kurtosis, t.rel_error_int4, t.rel_error_int8, t.grid_residual});
  }
  return rows;
}

const hdf5::Schema& audit_tensors_schema() {
  static const hdf5::Schema schema = [] {
    hdf5::Schema s = probe_tensors_schema();
    s.push_back(hdf5::f8("outlier_groups"));
    s.push_back(hdf5::i8("nonfinite"));
    return s;
  }();
  return schema;
}

void append_tensor_rows(hdf5::Table& table, const ProbeResult& r, std::int64_t step) {
  std::vector<hdf5::RowBuilder> rows;
  for (const auto& t : r.tensors) {
    hdf5::RowBuilder b = table.row();
    b.set("step", step)
        .set("tensor", t.name)
        .set("kurtosis", t.kurtosis)
        .set("rel_error_int4", t.rel_error_int4)
        .set("rel_error_int8", t.rel_error_int8)
        .set("grid_residual", t.grid_residual)
        .set("outlier_groups", t.outlier_groups)
        .set("nonfinite", t.nonfinite);
    rows.push_back(std::move(b));
  }
  table.append(rows);
}

}  // namespace qf::quant
