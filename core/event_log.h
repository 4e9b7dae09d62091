#pragma once
// What a run shows people watching it live: scalars and text by tag and step. An
// interface, so that the trainer, the probe hook and the audit write without knowing the
// file format (TensorBoard's, core/tensorboard_writer.h).
#include <cstdint>
#include <string_view>

namespace qf {

class EventLog {
 public:
  virtual ~EventLog() = default;
  virtual void scalar(std::string_view tag, std::int64_t step, double value) = 0;
  virtual void text(std::string_view tag, std::int64_t step, std::string_view text) = 0;
  // Makes everything logged so far visible to readers of the log.
  virtual void flush() = 0;
};

}  // namespace qf
