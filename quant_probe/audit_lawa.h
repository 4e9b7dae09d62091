#pragma once
// LAWA along an audited trajectory (audit.lawa.k; method.md, "Beyond the paper": weight
// averaging): for each checkpoint, the uniform average of it and the k − 1 checkpoints
// before it (model/checkpoint_average.h) is probed exactly as a checkpoint is, into the
// audit file's /audit_lawa table beside the raw /audit rows:
//
//   step i8 (the newest checkpoint averaged), first_step i8 (the oldest), checkpoints i4
//   (how many were averaged: fewer than k for the first k − 1), loss_fp32, ppl_fp32,
//   ppl_int4, ppl_int8, gap_int4_pct, gap_int8_pct, kurtosis_mean, grid_residual_mean f8.
//
// Only checkpoints with a good /audit row take part (a failed one is left out of every
// window). Resumable like the audit: steps already in /audit_lawa are skipped; a file
// whose table was made with another k (root attribute lawa_k) has it rebuilt.
#include <cstdint>
#include <filesystem>
#include <vector>

#include "core/config.h"
#include "core/run_file.h"
#include "quant_probe/audit.h"
#include "quant_probe/probe.h"

namespace qf::quant {

// audit.lawa.k, documented.
void declare_audit_lawa_config(ConfigSchema& schema);
// 0 (off) or k >= 2; ConfigError otherwise.
std::int64_t audit_lawa_k(const Config& config);

// core/run_file.h's lawa_schema() (LawaRow).
const hdf5::Schema& audit_lawa_schema();

// Probes the averages of `checkpoints` (in step order) into `file`'s /audit_lawa. Returns
// how many were probed now. A checkpoint that cannot be averaged or probed is logged and
// left out, or stops the audit with `stop_on_error`.
std::int64_t run_audit_lawa(AuditFile& file, const std::vector<AuditCheckpoint>& checkpoints,
                            std::int64_t k, const at::Tensor& windows, const ProbeOptions& probe,
                            bool stop_on_error, const at::Tensor& calibration = {});

}  // namespace qf::quant
