#include "quant_probe/audit.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/progress.h"
#include "core/run_events.h"
#include "quant_probe/audit_lawa.h"
#include "quant_probe/probe_report.h"

namespace fs = std::filesystem;

namespace qf::quant {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kTensorsTable = "tensors";
// audit.on_error: whether a checkpoint that cannot be probed stops the audit.
const EnumNames<bool> kStopOnError = {{"skip", false}, {"stop", true}};

}  // namespace

void declare_audit_config(ConfigSchema& s) {
  s.optional("audit.checkpoints", FieldType::StringList, "[]",
             "Checkpoint directories or glob patterns (e.g. 'pythia-160m/step*'), besides "
             "those on the command line.")
      .optional("audit.step_pattern", FieldType::String, "'step([0-9]+)'",
                "Regular expression searched in each checkpoint directory's name; its first "
                "group is the global step.")
      .optional("audit.step_map", FieldType::Path, "null",
                "YAML file {directory name: step} for checkpoints whose names hold no step; "
                "wins over step_pattern.")
      .optional("audit.on_error", FieldType::String, "skip",
                "A checkpoint that cannot be probed: skip (log it, write a row marked failed, "
                "go on) or stop.")
      .one_of(kStopOnError);
  declare_phase_config(s);
  declare_audit_lawa_config(s);
}

AuditOptions audit_options(const Config& cfg) {
  AuditOptions o;
  o.stop_on_error = cfg.get_enum("audit.on_error", kStopOnError);
  o.step_pattern = cfg.get_string("audit.step_pattern");
  try {
    const std::regex check(o.step_pattern);
    if (check.mark_count() < 1) throw std::regex_error(std::regex_constants::error_badrepeat);
  } catch (const std::regex_error&) {
    throw ConfigError("config " + cfg.where("audit.step_pattern") +
                      ": expected a regular expression with a group around the step's digits");
  }
  if (!cfg.is_null("audit.step_map")) o.step_map = cfg.get_path("audit.step_map");
  o.checkpoints = cfg.get_string_list("audit.checkpoints");
  o.phases = phase_options(cfg);
  o.lawa_k = audit_lawa_k(cfg);
  return o;
}

namespace {

// The YAML text at a dotted key, if the tree holds it.
std::optional<std::string> dump_at(const YAML::Node& node, const std::string& key) {
  const auto dot = key.find('.');
  if (!node.IsMap()) return std::nullopt;
  const YAML::Node child = node[key.substr(0, dot)];  // const access: never inserts
  if (!child) return std::nullopt;
  return dot == std::string::npos ? YAML::Dump(child) : dump_at(child, key.substr(dot + 1));
}

// The probe settings that decide its numbers (the schema's defines_result fields under
// probe.; device, batch size and memory do not) as YAML text, "probe.eval.seq_len" ->
// "128". A key the YAML does not hold had its default then.
std::map<std::string, std::string> probe_settings(const ConfigSchema& schema,
                                                  const std::string& yaml) {
  std::map<std::string, std::string> out;
  const YAML::Node root = YAML::Load(yaml);
  for (const FieldSpec& f : schema.fields()) {
    if (!f.defines_result || f.key.rfind("probe.", 0) != 0) continue;
    const auto given = dump_at(root, f.key);
    out[f.key] = given ? *given : f.default_value ? YAML::Dump(*f.default_value) : "(absent)";
  }
  return out;
}

void check_same_probe(const AuditFile& file, const std::string& path, const Config& config) {
  const auto before = probe_settings(config.schema(), file.config_yaml());
  const auto now = probe_settings(config.schema(), config.dump());
  for (const auto& [key, value] : now) {
    const std::string& old = before.at(key);
    if (old != value) {
      throw ConfigError("audit: '" + path + "' was made with " + key + " = " + old +
                        ", this run has " + value +
                        "; resuming would mix two probes in one file (write to a new --out)");
    }
  }
}

AuditRow failed_row(std::int64_t step) {
  AuditRow row;
  row.step = step;
  row.phase = kFailedProbePhase;
  row.phase_index = -1;
  row.loss_fp32 = row.ppl_fp32 = row.ppl_int4 = row.ppl_int8 = kNaN;
  row.gap_int4_pct = row.gap_int8_pct = row.kurtosis_mean = row.grid_residual_mean = kNaN;
  row.tokens_evaluated = 0;
  return row;
}

std::string short_number(double v, int decimals) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(decimals);
  o << v;
  return o.str();
}

// The audit file at `out`, created, or reopened to resume when it holds the same probe.
// A file that HDF5 cannot open at all was left by a kill while it was being created or
// written: it holds nothing that cannot be probed again, so it is set aside (renamed,
// never deleted) and the audit starts over. A readable file of another kind stays an
// error.
AuditFile open_audit_file(const fs::path& out, const std::vector<AuditCheckpoint>& checkpoints,
                          const Config& config) {
  if (fs::exists(out)) {
    try {
      hdf5::File::open(out.string(), hdf5::Access::kReadOnly);
    } catch (const Error& e) {
      const fs::path aside = out.string() + ".unreadable";
      spdlog::warn(
          "audit: {} cannot be read ({}); it is set aside as {} and the audit starts "
          "over",
          out.string(), e.what(), aside.string());
      fs::rename(out, aside);
    }
  }
  if (fs::exists(out)) {
    AuditFile f = AuditFile::open_for_append(out.string());
    check_same_probe(f, out.string(), config);
    return f;
  }
  RunAttributes a;
  a.experiment = "audit";
  a.start_step = checkpoints.empty() ? 0 : checkpoints.front().step;
  a.base_checkpoint = checkpoints.empty() ? "" : checkpoints.front().dir.string();
  // Created under a temporary name and renamed, so a kill never leaves half a file under
  // the audit's own name.
  const fs::path tmp = out.string() + ".creating";
  std::error_code ec;
  fs::remove(tmp, ec);
  AuditFile::create(tmp.string(), a, config.dump()).close();
  fs::rename(tmp, out);
  sync_directory(fs::absolute(out).parent_path());
  return AuditFile::open_for_append(out.string());
}

}  // namespace

AuditSummary run_audit(const std::vector<AuditCheckpoint>& checkpoints, const at::Tensor& windows,
                       const ProbeOptions& probe, const AuditOptions& o, const fs::path& out,
                       const Config& config, const at::Tensor& calibration) {
  AuditFile file = open_audit_file(out, checkpoints, config);
  hdf5::Table tensors =
      file.file().contains(kTensorsTable)
          ? hdf5::Table::open(file.file(), kTensorsTable, audit_tensors_schema())
          : hdf5::Table::create(file.file(), kTensorsTable, audit_tensors_schema());
  std::set<std::int64_t> done;
  for (const auto& row : file.read_audit()) {
    if (row.phase == kFailedProbePhase) {
      done.erase(row.step);
    } else {
      done.insert(row.step);
    }
  }

  AuditSummary summary;
  std::vector<const AuditCheckpoint*> todo;
  for (const auto& c : checkpoints) {
    if (done.count(c.step)) {
      ++summary.already_done;
    } else {
      todo.push_back(&c);
    }
  }
  if (summary.already_done > 0) {
    spdlog::info("audit: resuming {}: {} checkpoint(s) already probed, {} to go", out.string(),
                 summary.already_done, todo.size());
  }
  Progress progress("audit", static_cast<std::int64_t>(todo.size()), "ckpt");
  for (std::size_t i = 0; i < todo.size(); ++i) {
    const AuditCheckpoint& c = *todo[i];
    try {
      const ProbeResult r = probe_checkpoint(c.dir, windows, probe, calibration);
      AuditRow row;
      static_cast<ProbeRow&>(row) = to_probe_row(r, c.step);
      file.append_audit(row);
      append_tensor_rows(tensors, r, c.step);
      file.append_attribution(to_attribution_rows(r, c.step));
      if (o.events) log_probe_row(*o.events, row);
      ++summary.probed;
      spdlog::info(
          "audit: step {}: ppl fp32 {} int4 {} int8 {}, gap int4 {}% int8 {}%{} ({:.1f} s)", c.step,
          short_number(r.fp32.ppl, 4), short_number(r.int4.ppl, 4), short_number(r.int8.ppl, 4),
          short_number(r.gap_int4_pct, 3), short_number(r.gap_int8_pct, 3),
          r.int4_gptq ? ", gptq int4 " + short_number(r.gap_int4_gptq_pct, 3) + "%" : std::string(),
          r.seconds);
      progress.update(
          static_cast<std::int64_t>(i + 1),
          {{"step", std::to_string(c.step)}, {"gap4", short_number(r.gap_int4_pct, 2) + "%"}});
    } catch (const std::exception& e) {
      const std::string what = "audit: checkpoint '" + c.dir.string() + "' (step " +
                               std::to_string(c.step) + "): " + e.what();
      if (o.stop_on_error) throw Error(what);
      spdlog::error("{}; recorded as failed, going on", what);
      file.append_audit(failed_row(c.step));
      ++summary.failed;
      progress.update(static_cast<std::int64_t>(i + 1),
                      {{"step", std::to_string(c.step)}, {"failed", "yes"}});
    }
  }
  progress.finish();
  if (o.lawa_k > 0) {
    summary.lawa_probed =
        run_audit_lawa(file, checkpoints, o.lawa_k, windows, probe, o.stop_on_error, calibration);
  }
  summary.phases = detect_and_write_phases(file, o.phases);
  return summary;
}

}  // namespace qf::quant
