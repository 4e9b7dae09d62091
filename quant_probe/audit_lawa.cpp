#include "quant_probe/audit_lawa.h"

#include <spdlog/spdlog.h>

#include <set>

#include "core/errors.h"
#include "model/checkpoint_average.h"
#include "quant_probe/phases_io.h"

namespace fs = std::filesystem;

namespace qf::quant {

void declare_audit_lawa_config(ConfigSchema& s) {
  s.optional("audit.lawa.k", FieldType::Int, "0",
             "LAWA beside the raw rows: for each checkpoint also probe the uniform average "
             "of it and the k - 1 checkpoints before it, into /audit_lawa (0: off; else at "
             "least 2).");
}

std::int64_t audit_lawa_k(const Config& cfg) {
  const std::int64_t k = cfg.get_int("audit.lawa.k");
  if (k != 0 && k < 2) {
    throw ConfigError("config " + cfg.where("audit.lawa.k") +
                      ": expected 0 (off) or at least 2 checkpoints");
  }
  return k;
}

const hdf5::Schema& audit_lawa_schema() {
  return lawa_schema();
}

namespace {

// The table, rebuilt when it was made for another k.
hdf5::Table open_table(AuditFile& file, std::int64_t k) {
  hdf5::File& f = file.file();
  if (!f.contains(kAuditLawaTable)) {
    f.set_int_attribute("lawa_k", k);
    return hdf5::Table::create(f, kAuditLawaTable, audit_lawa_schema());
  }
  hdf5::Table table = hdf5::Table::open(f, kAuditLawaTable, audit_lawa_schema());
  const auto stored = f.int_attribute("lawa_k");
  if (!stored || *stored != k) {
    spdlog::info("audit: /audit_lawa was made with k = {}, now k = {}: probing it anew",
                 stored ? std::to_string(*stored) : "?", k);
    table.clear();
    f.set_int_attribute("lawa_k", k);
  }
  return table;
}

void append(hdf5::Table& table, const ProbeResult& r, std::int64_t step, std::int64_t first_step,
            std::int64_t count) {
  hdf5::RowBuilder b = table.row();
  b.set("step", step)
      .set("first_step", first_step)
      .set("checkpoints", static_cast<std::int32_t>(count))
      .set("loss_fp32", r.fp32.loss)
      .set("ppl_fp32", r.fp32.ppl)
      .set("ppl_int4", r.int4.ppl)
      .set("ppl_int8", r.int8.ppl)
      .set("gap_int4_pct", r.gap_int4_pct)
      .set("gap_int8_pct", r.gap_int8_pct)
      .set("kurtosis_mean", r.stats.kurtosis_mean)
      .set("grid_residual_mean", r.stats.grid_residual_mean);
  table.append(b);
}

}  // namespace

std::int64_t run_audit_lawa(AuditFile& file, const std::vector<AuditCheckpoint>& checkpoints,
                            std::int64_t k, const at::Tensor& windows, const ProbeOptions& probe,
                            bool stop_on_error, const at::Tensor& calibration) {
  hdf5::Table table = open_table(file, k);
  std::set<std::int64_t> good, done;
  for (const auto& row : last_good_rows(file.read_audit())) good.insert(row.step);
  for (std::int64_t step : table.read_ints("step")) done.insert(step);
  std::vector<model::AverageInput> usable;
  for (const auto& c : checkpoints) {
    if (good.count(c.step)) usable.push_back({c.dir, c.step});
  }
  std::int64_t probed = 0;
  for (std::size_t i = 0; i < usable.size(); ++i) {
    const std::int64_t step = *usable[i].step;
    if (done.count(step)) continue;
    const std::size_t first = i + 1 >= static_cast<std::size_t>(k) ? i + 1 - k : 0;
    const std::vector<model::AverageInput> window(usable.begin() + first, usable.begin() + i + 1);
    try {
      model::AveragedModel average = model::average_checkpoints(window);
      average.model->to(at::Device(probe.device));
      const ProbeResult r = probe_model(average.model, windows, probe, calibration);
      append(table, r, step, *window.front().step, static_cast<std::int64_t>(window.size()));
      ++probed;
      spdlog::info("audit: LAWA of steps {}-{} ({}): gap int4 {:.3g}% int8 {:.3g}%",
                   *window.front().step, step, window.size(), r.gap_int4_pct, r.gap_int8_pct);
    } catch (const std::exception& e) {
      const std::string what =
          "audit: the LAWA average ending at step " + std::to_string(step) + ": " + e.what();
      if (stop_on_error) throw Error(what);
      spdlog::error("{}; left out, going on", what);
    }
  }
  return probed;
}

}  // namespace qf::quant
