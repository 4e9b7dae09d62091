#pragma once
// The audit of a trajectory (method.md, "The audit and its phases"): probe every
// checkpoint of a run into an audit file (schema quantfork.audit/3, core/run_file.h),
// then locate the phases (phases.h) and store them beside the rows.
//
// - Checkpoints are HF directories given as paths or glob patterns, each with its step
//   (audit_checkpoints.h).
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
#include "quant_probe/audit_checkpoints.h"
#include "quant_probe/phases_io.h"
#include "quant_probe/probe.h"

namespace qf::quant {

struct AuditOptions : CheckpointNaming {  // audit.step_pattern, audit.step_map
  bool stop_on_error = false;
  std::vector<std::string> checkpoints;  // paths or glob patterns, besides the command line's
  PhaseOptions phases;
  std::int64_t lawa_k = 0;     // audit.lawa.k: also probe LAWA averages (audit_lawa.h); 0 off
  EventLog* events = nullptr;  // gets each probed row's scalars (core/run_events.h)
};

void declare_audit_config(ConfigSchema& schema);
AuditOptions audit_options(const Config& config);

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
