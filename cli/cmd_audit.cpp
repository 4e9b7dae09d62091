// quantfork audit: probes a trajectory of checkpoints into an audit file and locates its
// phases (method.md, "The audit and its phases"; quant_probe/audit.h).
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "cli/probe_cli.h"
#include "core/errors.h"
#include "core/run_events.h"
#include "quant_probe/audit.h"
#include "quant_probe/gptq_config.h"

namespace fs = std::filesystem;

namespace qf::cli {

int run_audit(const std::vector<std::string>& args) {
  ArgParser parser(
      "audit", "--out FILE.h5 --eval PREFIX [options] CHECKPOINT_DIR_OR_GLOB...",
      "Probes every checkpoint (Hugging Face directories named stepN, or see "
      "audit.step_pattern / audit.step_map) in step order into FILE.h5 (quantfork.audit/3) "
      "and its scalars into TensorBoard event files in tb/<name>/ beside it, "
      "then fits the phases of the INT4 gap and prints them. Resumable: run it again with the "
      "same output and the checkpoints already probed are skipped. A checkpoint that cannot "
      "be probed is logged and recorded as failed (audit.on_error: skip), or stops the audit "
      "(stop). --phases-only recomputes the phases of an existing file (e.g. after changing "
      "audit.phases.*) without probing.");
  parser.option("out", "FILE.h5", "the audit file (created, or resumed when it exists)", "audit.h5")
      .flag("phases-only", "only recompute and print the phases of --out")
      .positional("CHECKPOINT", "checkpoint directories or glob patterns ('run/step*')");
  add_probe_shortcut_options(parser);
  add_config_options(parser);
  if (!parser.parse(args)) return 0;
  ConfigSchema schema;
  quant::declare_probe_config(schema);
  quant::declare_audit_config(schema);
  declare_tensorboard_config(schema);
  Config cfg;
  if (!load_config(parser, schema, cfg, "", "", probe_shortcuts(parser))) return 0;
  quant::AuditOptions options = quant::audit_options(cfg);
  const fs::path out = parser.get("out");

  if (parser.has("phases-only")) {
    if (!fs::exists(out))
      throw UsageError("quantfork audit --phases-only: '" + out.string() + "' does not exist");
    AuditFile file = AuditFile::open_for_append(out.string());
    std::cout << quant::format_phases(quant::detect_and_write_phases(file, options.phases));
    return 0;
  }
  std::vector<std::string> patterns = options.checkpoints;
  for (const auto& p : parser.positionals()) patterns.push_back(p);
  if (patterns.empty()) throw UsageError("quantfork audit: no checkpoints given (see --help)");
  const auto checkpoints = quant::find_checkpoints(patterns, options);
  const quant::ProbeOptions probe = quant::probe_options(cfg);
  const at::Tensor windows =
      quant::windows_tensor(quant::load_eval_set(quant::eval_set_options(cfg)));
  spdlog::info("audit: {} checkpoint(s), steps {} to {}, {} x {} evaluation tokens -> {}",
               checkpoints.size(), checkpoints.front().step, checkpoints.back().step,
               windows.size(0), windows.size(1), out.string());
  // Beside the audit file, as a run's are beside its run.h5: OUT_DIR/tb/<name>/.
  std::unique_ptr<EventLog> events;
  if (cfg.get_bool("log.tensorboard")) {
    events = open_tensorboard_log(out.parent_path() / "tb" / out.stem(), std::nullopt);
    options.events = events.get();
  }
  const at::Tensor calibration = quant::load_probe_calibration(cfg);
  const quant::AuditSummary s =
      quant::run_audit(checkpoints, windows, probe, options, out, cfg, calibration);
  std::cout << "probed " << s.probed << ", already in the file " << s.already_done << ", failed "
            << s.failed << "\n"
            << quant::format_phases(s.phases);
  return 0;
}

}  // namespace qf::cli
