#pragma once
// TensorBoard event files, as torchtitan, gpt-neox and the Hugging Face Trainer write
// them, so that `tensorboard --logdir OUT` shows quantfork's runs beside theirs.
//
// A file `events.out.tfevents.<seconds>.<host>` is a sequence of TFRecords: u64 length,
// u32 masked CRC-32C of those 8 bytes, the data, u32 masked CRC-32C of the data (all
// little-endian; core/crc32c.h). Each record's data is a serialized tensorboard.Event
// (core/tensorboard_event.proto); the first has file_version "brain.Event:2". Scalars are
// simple_value summaries; text is a string tensor tagged for the text plugin.
//
// Events are buffered and reach the file with one write() per flush(), so a kill leaves
// at worst a record cut short at the end, which readers (TensorBoard's, and
// drop_events_after) skip.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/event_log.h"
#include "core/unique_fd.h"

namespace qf {

class TensorBoardWriter final : public EventLog {
 public:
  // Creates `dir` when missing and a new event file in it whose <seconds> is now, or
  // later than every event file already there (TensorBoard reads a directory's files in
  // name order, so a resumed run's file comes after the earlier ones). IoError naming
  // the path when it cannot be made.
  static std::unique_ptr<TensorBoardWriter> create(const std::filesystem::path& dir);
  ~TensorBoardWriter() override;  // flushes; errors are logged, not thrown

  void scalar(std::string_view tag, std::int64_t step, double value) override;
  void text(std::string_view tag, std::int64_t step, std::string_view text) override;
  // IoError naming the file when the system refuses (disk full).
  void flush() override;
  // A SessionLog START at `step`: a resumed run goes on from there, and a TensorBoard
  // that already read later events of the earlier files drops them (its loader purges
  // on it, as after a TensorFlow supervisor's restart).
  void session_start(std::int64_t step);

  const std::filesystem::path& path() const { return path_; }

 private:
  TensorBoardWriter(UniqueFd fd, std::filesystem::path path)
      : fd_(std::move(fd)), path_(std::move(path)) {}
  void append_record(const std::string& data);

  UniqueFd fd_;
  std::filesystem::path path_;
  std::string pending_;  // framed records not yet written
};

// Whether `name` is an event file's name (TensorBoard's test: it contains "tfevents").
bool is_event_file_name(const std::string& name);

// The data of every whole record of an event file, in order (serialized Events). Reading
// stops at a record cut short or failing its CRC; `bad_bytes` (if given) gets what
// follows the last good record. IoError when the file cannot be read.
std::vector<std::string> read_event_records(const std::filesystem::path& path,
                                            std::size_t* bad_bytes = nullptr);

// For a resumed run: rewrites (atomically) every event file in `dir` that holds events
// after `step` or a bad tail, without them, so that the steps logged again after the
// checkpoint appear once. Returns the number of events dropped; a missing `dir` is none.
std::size_t drop_events_after(const std::filesystem::path& dir, std::int64_t step);

}  // namespace qf
