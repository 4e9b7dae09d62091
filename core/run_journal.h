#pragma once
// The crash-proof record of a run file's history (run.h5.journal beside run.h5).
//
// The HDF5 library makes no promise about a file that is open for writing when its
// process is killed: a kill inside an append can leave run.h5 unreadable. The journal is
// an append-only file that a kill can at worst cut short: every record is written with
// one write() call and carries its length and a CRC-32, so a reader keeps the intact
// records and drops a torn last one. RunFile (core/run_file.h) writes each row to the
// journal before it writes it to run.h5, and rebuilds run.h5 from the journal when a run
// is resumed, so every row logged before a kill survives it.
//
// Layout: an 8-byte magic "QFJRNL1\n", then records: u32 magic 0x524a4651 ("QFJR"), u8
// kind, u32 payload length, u32 CRC-32 (zlib's) of kind and payload, then the payload.
// Kind 0 is the header (once, first: JSON with the root attributes and the config);
// kinds 1.. are packed rows of one table (RowLayout's packed layout, any count).
// Integers are little-endian (the only byte order quantfork builds for).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/unique_fd.h"

namespace qf {

struct JournalContents {
  std::string header;                                       // kind 0's payload
  std::map<std::uint8_t, std::vector<unsigned char>> rows;  // kind -> concatenated payloads
  std::size_t intact_bytes = 0;  // the file's prefix that holds whole, checked records
  std::size_t torn_bytes = 0;    // what follows it (a record cut short by a kill)
};

class RunJournal {
 public:
  // Writes `contents` (header and rows; the sizes are ignored) as a new journal at
  // `path`, atomically (temporary name, fsync, rename), and opens it for appending.
  static RunJournal write(const std::filesystem::path& path, const JournalContents& contents);
  // The intact records of `path`. FormatError naming the file when it is not a journal or
  // has no header.
  static JournalContents read(const std::filesystem::path& path);

  // Appends one record of packed rows (one write() call). On failure (disk full) the
  // file is cut back to its previous length and IoError names it.
  void append(std::uint8_t kind, const unsigned char* data, std::size_t bytes);

  const std::filesystem::path& path() const { return path_; }

 private:
  RunJournal(UniqueFd fd, std::filesystem::path path)
      : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::filesystem::path path_;
};

// "run.h5" -> "run.h5.journal".
std::filesystem::path journal_path_for(const std::filesystem::path& run_file);

}  // namespace qf
