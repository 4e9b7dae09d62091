#include "core/run_events.h"

#include <spdlog/spdlog.h>

#include <cmath>

#include "core/tensorboard_writer.h"

namespace qf {

void declare_tensorboard_config(ConfigSchema& s) {
  s.optional("log.tensorboard", FieldType::Bool, "true",
             "Write TensorBoard event files as the run goes (rank 0, into run.dir/tb/; an "
             "audit beside its file, in tb/<name>/): `tensorboard --logdir OUT` shows "
             "every run.");
}

void log_train_row(EventLog& log, const TrainRow& row) {
  log.scalar("train/loss", row.step, row.loss);
  log.scalar("train/lr", row.step, row.lr);
  log.scalar("train/grad_norm", row.step, row.grad_norm);
  log.scalar("train/tokens_per_s", row.step, row.tokens_per_s);
  log.flush();
}

void log_probe_row(EventLog& log, const ProbeRow& row) {
  // The weight average's rows (train.ema) under their own tags, beside the raw ones.
  const std::string prefix = row.weights == kRawWeights ? "probe/" : "probe_" + row.weights + "/";
  for (const auto& [column, value] : float_columns(row)) {
    // NaN: a measurement this probe did not make (e.g. GPTQ when probe.gptq is off).
    if (!std::isnan(value)) log.scalar(prefix + column, row.step, value);
  }
  log.flush();
}

std::unique_ptr<EventLog> open_tensorboard_log(const std::filesystem::path& dir,
                                               std::optional<std::int64_t> keep_through_step) {
  if (keep_through_step) {
    if (const std::size_t n = drop_events_after(dir, *keep_through_step)) {
      spdlog::info("{}: dropped {} event(s) logged after step {}", dir.string(), n,
                   *keep_through_step);
    }
  }
  auto writer = TensorBoardWriter::create(dir);
  if (keep_through_step) {
    writer->session_start(*keep_through_step + 1);
    writer->flush();
  }
  return writer;
}

}  // namespace qf
