#pragma once
// A run's rows as TensorBoard shows them (core/event_log.h), in one place for the three
// writers: the trainer (/train rows, the schedule's phase), the probe hook and the audit
// (/probe rows). Each row is flushed whole, so what `tensorboard` shows is what run.h5
// holds, row for row, while the run goes on.
//
// Tags: train/loss, train/lr, train/grad_norm, train/tokens_per_s at a /train row's step;
// probe/<column> for every floating-point /probe column (ppl_fp32, gap_int4_pct,
// gap_int8_pct, kurtosis_mean, ...; a column added to the schema comes with them) that
// holds a number (NaN: not measured) at a probe's step, probe_ema/<column> for the rows
// of the weight average (weights "ema"); run/phase, text, at the first
// update of each schedule phase.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>

#include "core/config_schema.h"
#include "core/event_log.h"
#include "core/run_file.h"

namespace qf {

inline constexpr std::string_view kPhaseTag = "run/phase";

// log.tensorboard (default true).
void declare_tensorboard_config(ConfigSchema& schema);

void log_train_row(EventLog& log, const TrainRow& row);
void log_probe_row(EventLog& log, const ProbeRow& row);

// A new event file in `dir` (core/tensorboard_writer.h). A run passes the last step whose
// rows run.h5 kept (a resume: the checkpoint's; a fresh start: -1): the later events of
// earlier files are dropped first, so no step appears twice, and the new file says
// where the run goes on from (a SessionLog START at the next step, which makes a
// TensorBoard already showing the dropped events forget them). nullopt keeps them all.
std::unique_ptr<EventLog> open_tensorboard_log(const std::filesystem::path& dir,
                                               std::optional<std::int64_t> keep_through_step);

}  // namespace qf
