// quantfork phases: fits the phases of any trajectory table, an audit file or a CSV from
// another tool (method.md, "The audit and its phases"; quant_probe/phases.h), so that
// published trajectories can be re-analysed with the audit's own rules.
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli/command.h"
#include "core/atomic_file.h"
#include "core/errors.h"
#include "quant_probe/divergence_monitor.h"
#include "quant_probe/phases_io.h"
#include "quant_probe/trajectory_table.h"

namespace fs = std::filesystem;

namespace qf::cli {

namespace {

// A new audit file holding `rows`, then the phases written into it as `quantfork audit`
// writes them.
quant::PhaseReport write_audit_file(const fs::path& out, const fs::path& table,
                                    const std::vector<AuditRow>& rows,
                                    const quant::PhaseOptions& options, const Config& cfg) {
  RunAttributes attributes;
  attributes.experiment = "phases";
  attributes.start_step = rows.front().step;
  AuditFile file = AuditFile::create(out.string(), attributes, cfg.dump());
  file.file().set_string_attribute("source_table", table.string());
  for (const auto& row : rows) file.append_audit(row);
  return quant::detect_and_write_phases(file, options);
}

}  // namespace

int run_phases(const std::vector<std::string>& args) {
  ArgParser parser(
      "phases", "--table FILE [--json OUT.json] [--out FILE.h5] [options]",
      "Fits the phases of a trajectory with the rules of quantfork audit (audit.phases.*): "
      "the FP32 convergence step, the segmented fit of the log INT4 gap, the divergence "
      "onset and the pre-divergence checkpoint, or why there is none. --table is an audit "
      "file (quantfork.audit/3) or a CSV whose header names at least step, ppl_fp32 and "
      "gap_int4_pct (gap_int8_pct is kept when present; other columns are ignored, in any "
      "order). Prints the findings and segments; --json writes the landmarks (null when not "
      "found), segments and findings; --out writes a new audit file with the table's rows "
      "and the phases, which quantfork report reads. --monitor replays the online divergence "
      "monitor (monitor.*) over the table as a training run would have read it probe by probe, "
      "and says at which checkpoint it would have fired.");
  parser.option("table", "FILE", "the trajectory: an audit file or a CSV")
      .option("json", "OUT.json", "write the landmarks, segments and findings as JSON")
      .option("out", "FILE.h5", "write a new audit file (quantfork.audit/3) with the phases")
      .flag("monitor", "also replay the divergence monitor (monitor.*) over the table")
      .option("monitor-json", "OUT.json",
              "write the monitor's reading at every probe and where it fires (implies "
              "--monitor)");
  add_config_options(parser);
  if (!parser.parse(args)) return 0;
  ConfigSchema schema;
  quant::declare_phase_config(schema);
  quant::declare_monitor_config(schema);
  Config cfg;
  if (!load_config(parser, schema, cfg)) return 0;
  const quant::PhaseOptions options = quant::phase_options(cfg);
  std::optional<quant::MonitorOptions> monitor;
  if (parser.has("monitor") || parser.has("monitor-json")) monitor = quant::monitor_options(cfg);
  const fs::path table = parser.get("table");
  if (parser.has("out") && fs::exists(parser.get("out"))) {
    throw UsageError("quantfork phases: --out '" + parser.get("out") +
                     "' exists; give a new file (it is created, never overwritten)");
  }

  const std::vector<AuditRow> rows = quant::read_trajectory_table(table);
  if (rows.empty()) throw FormatError("quantfork phases: '" + table.string() + "' has no rows");
  const quant::PhaseReport report =
      parser.has("out") ? write_audit_file(parser.get("out"), table, rows, options, cfg)
                        : quant::detect_phases(quant::trajectory_points(rows), options);
  if (parser.has("json")) {
    write_text_atomically(parser.get("json"), quant::phases_json(report).dump(2) + "\n");
  }
  std::cout << quant::format_phases(report);
  if (monitor) {
    const auto readings =
        quant::replay_monitor(quant::monitor_points(rows, monitor->metric), *monitor);
    if (parser.has("monitor-json")) {
      write_text_atomically(parser.get("monitor-json"),
                            quant::monitor_replay_json(readings, *monitor).dump(2) + "\n");
    }
    std::cout << "\n" << quant::format_monitor_replay(readings, *monitor);
  }
  return 0;
}

}  // namespace qf::cli
