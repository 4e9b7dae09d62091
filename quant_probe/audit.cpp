#include "quant_probe/audit.h"

#include <glob.h>
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

// Probe keys that change only speed or placement, not the numbers a resumed audit adds.
const std::set<std::string> kRunOnlyKeys = {"probe.device", "probe.batch_size",
                                            "probe.activation_memory"};

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
                "go on) or stop.");
  declare_phase_config(s);
  declare_audit_lawa_config(s);
}

AuditOptions audit_options(const Config& cfg) {
  AuditOptions o;
  const std::string on_error = cfg.get_string("audit.on_error");
  if (on_error != "skip" && on_error != "stop") {
    throw ConfigError("config " + cfg.where("audit.on_error") + ": '" + on_error +
                      "', expected skip or stop");
  }
  o.stop_on_error = on_error == "stop";
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

std::optional<std::int64_t> step_from_name(const fs::path& dir, const std::string& pattern) {
  const std::string name = (dir.has_filename() ? dir : dir.parent_path()).filename().string();
  std::smatch m;
  const std::regex re(pattern);
  if (!std::regex_search(name, m, re) || m.size() < 2 || !m[1].matched) return std::nullopt;
  try {
    return std::stoll(m[1]);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

namespace {

std::map<std::string, std::int64_t> read_step_map(const fs::path& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    throw ConfigError("audit.step_map '" + path.string() + "': " + e.what());
  }
  if (!root.IsMap()) {
    throw ConfigError("audit.step_map '" + path.string() + "': expected {directory name: step}");
  }
  std::map<std::string, std::int64_t> steps;
  for (const auto& kv : root) {
    try {
      steps[kv.first.as<std::string>()] = kv.second.as<std::int64_t>();
    } catch (const YAML::Exception&) {
      throw ConfigError("audit.step_map '" + path.string() + "': the step of '" +
                        kv.first.as<std::string>() + "' is not an integer");
    }
  }
  return steps;
}

std::vector<fs::path> expand(const std::string& pattern) {
  if (pattern.find_first_of("*?[") == std::string::npos) return {fs::path(pattern)};
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<fs::path> out;
  if (rc == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i) {
      if (fs::is_directory(g.gl_pathv[i])) out.emplace_back(g.gl_pathv[i]);
    }
  }
  globfree(&g);
  if (out.empty()) throw UsageError("audit: '" + pattern + "' matches no checkpoint directory");
  return out;
}

}  // namespace

std::vector<AuditCheckpoint> find_checkpoints(const std::vector<std::string>& patterns,
                                              const AuditOptions& o) {
  const auto map = o.step_map ? read_step_map(*o.step_map) : std::map<std::string, std::int64_t>{};
  std::vector<AuditCheckpoint> out;
  std::map<std::int64_t, fs::path> seen;
  for (const auto& pattern : patterns) {
    for (const auto& dir : expand(pattern)) {
      const std::string name = (dir.has_filename() ? dir : dir.parent_path()).filename().string();
      std::optional<std::int64_t> step;
      if (auto it = map.find(name); it != map.end()) step = it->second;
      if (auto it = map.find(dir.string()); it != map.end()) step = it->second;
      if (!step) step = step_from_name(dir, o.step_pattern);
      if (!step) {
        throw UsageError("audit: no step in the name of checkpoint '" + dir.string() +
                         "' (audit.step_pattern '" + o.step_pattern +
                         "'); name it stepN or list it in audit.step_map");
      }
      if (auto it = seen.find(*step); it != seen.end()) {
        if (fs::weakly_canonical(it->second) == fs::weakly_canonical(dir)) continue;
        throw UsageError("audit: '" + it->second.string() + "' and '" + dir.string() +
                         "' are both step " + std::to_string(*step));
      }
      seen.emplace(*step, dir);
      out.push_back({dir, *step});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const AuditCheckpoint& a, const AuditCheckpoint& b) { return a.step < b.step; });
  return out;
}

namespace {

// "probe.eval.seq_len" -> "128" for every scalar under `node`.
void flatten(const YAML::Node& node, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) flatten(kv.second, prefix + "." + kv.first.as<std::string>(), out);
  } else {
    out[prefix] = YAML::Dump(node);
  }
}

std::map<std::string, std::string> probe_settings(const std::string& yaml) {
  std::map<std::string, std::string> out;
  const YAML::Node root = YAML::Load(yaml);
  if (root.IsMap() && root["probe"]) flatten(root["probe"], "probe", out);
  for (const auto& key : kRunOnlyKeys) out.erase(key);
  return out;
}

void check_same_probe(const AuditFile& file, const std::string& path, const Config& config) {
  const auto before = probe_settings(file.config_yaml());
  const auto now = probe_settings(config.dump());
  for (const auto& [key, value] : now) {
    auto it = before.find(key);
    const std::string old = it == before.end() ? "(absent)" : it->second;
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

}  // namespace

AuditSummary run_audit(const std::vector<AuditCheckpoint>& checkpoints, const at::Tensor& windows,
                       const ProbeOptions& probe, const AuditOptions& o, const fs::path& out,
                       const Config& config, const at::Tensor& calibration) {
  // A file that HDF5 cannot open at all was left by a kill while it was being created or
  // written: it holds nothing that cannot be probed again, so it is set aside (renamed,
  // never deleted) and the audit starts over. A readable file of another kind stays an
  // error below.
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
  const bool resume = fs::exists(out);
  AuditFile file = [&] {
    if (!resume) {
      RunAttributes a;
      a.experiment = "audit";
      a.start_step = checkpoints.empty() ? 0 : checkpoints.front().step;
      a.base_checkpoint = checkpoints.empty() ? "" : checkpoints.front().dir.string();
      // Created under a temporary name and renamed, so a kill never leaves half a file
      // under the audit's own name.
      const fs::path tmp = out.string() + ".creating";
      std::error_code ec;
      fs::remove(tmp, ec);
      AuditFile::create(tmp.string(), a, config.dump()).close();
      fs::rename(tmp, out);
      sync_directory(fs::absolute(out).parent_path());
    }
    AuditFile f = AuditFile::open_for_append(out.string());
    if (!resume) return f;
    check_same_probe(f, out.string(), config);
    return f;
  }();
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
