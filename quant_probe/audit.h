#pragma once
// The audit of a trajectory (method.md, "The audit and its phases"): probe every
// checkpoint of a run into an audit file (schema quantfork.audit/3, core/run_file.h),
// then locate the phases (phases.h) and store them beside the rows.
//
// - Checkpoints are HF directories given as paths or glob patterns; the global step of
//   each is read from its name (audit.step_pattern, default `step([0-9]+)`, Pythia's
//   revision names) or from a mapping file (audit.step_map, YAML {name: step}).
// - Resumable: an existing audit file is reopened, and steps it already holds a good row
//   for are not probed again (a step whose row is marked failed is retried; readers take
//   a step's last row). The probe settings that change the numbers must equal the
//   file's, or the audit stops rather than mix two probes in one file.
// - A checkpoint that cannot be probed (missing, unreadable, malformed) is, with
//   audit.on_error = skip (default), logged and recorded as a row with phase "failed"
//   and NaN values; with stop, the audit stops with that error (rows already written
//   stay).
// - Besides /audit and /phases the file holds /tensors (probe_report.h) and root
//   attributes: the landmarks (fp32_convergence_step, divergence_onset_step,
//   pre_divergence_step; −1 when not found) and those of detect_and_write_phases
//   (phases_io.h).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/event_log.h"
#include "core/run_file.h"
#include "quant_probe/phases_io.h"
#include "quant_probe/probe.h"

namespace qf::quant {

struct AuditOptions {
  bool stop_on_error = false;
  std::string step_pattern = "step([0-9]+)";
  std::optional<std::filesystem::path> step_map;
  std::vector<std::string> checkpoints;  // paths or glob patterns, besides the command line's
  PhaseOptions phases;
  std::int64_t lawa_k = 0;  // audit.lawa.k: also probe LAWA averages (audit_lawa.h); 0 off
  EventLog* events = nullptr;  // gets each probed row's scalars (core/run_events.h)
};

void declare_audit_config(ConfigSchema& schema);
AuditOptions audit_options(const Config& config);

struct AuditCheckpoint {
  std::filesystem::path dir;
  std::int64_t step = 0;
};

// Expands the patterns (a pattern without glob characters is taken as a path, whether
// it exists or not: a missing checkpoint is the audit's to report), reads each step and
// sorts by step. UsageError for a glob that matches no directory, a name without a step
// or two checkpoints with one step.
std::vector<AuditCheckpoint> find_checkpoints(const std::vector<std::string>& patterns,
                                              const AuditOptions& options);

// The step in `dir`'s name (the pattern's first group, searched in the name), nullopt if
// none.
std::optional<std::int64_t> step_from_name(const std::filesystem::path& dir,
                                           const std::string& pattern);

struct AuditSummary {
  std::int64_t probed = 0, already_done = 0, failed = 0;
  std::int64_t lawa_probed = 0;  // LAWA averages probed into /audit_lawa
  PhaseReport phases;
};

// Probes into `out` (created, or reopened to resume) and writes the phases. `config` is
// the resolved configuration, stored in the file and compared on resume. `calibration`:
// GPTQ's windows when probe.gptq is on (gptq_config.h), else undefined.
AuditSummary run_audit(const std::vector<AuditCheckpoint>& checkpoints, const at::Tensor& windows,
                       const ProbeOptions& probe, const AuditOptions& options,
                       const std::filesystem::path& out, const Config& config,
                       const at::Tensor& calibration = {});

}  // namespace qf::quant
