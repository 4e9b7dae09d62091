#pragma once
// One writer per directory: an exclusive advisory lock (flock) on DIR/.lock, held for as
// long as the DirectoryLock lives and released by the kernel when the process dies, so a
// kill -9 never leaves a stale lock behind. The holder writes its pid, host and start time
// into the file, so whoever is refused can be told who holds it.
#include <filesystem>
#include <optional>
#include <string>

#include "core/unique_fd.h"

namespace qf {

struct LockHolder {
  std::string pid, host, since;  // as the holder wrote them; empty when not yet written
  std::string describe() const;  // "pid 123 on host node7 since 2026-12-04T22:44:08Z"
};

class DirectoryLock {
 public:
  // Creates `dir` when missing and locks it without waiting. Error naming the directory
  // and the holder when another process holds it; IoError when the lock file cannot be
  // made. `what` names the user of the directory in that message ("run.dir").
  static DirectoryLock acquire(const std::filesystem::path& dir, const std::string& what);
  // The holder of `dir`'s lock, or nothing when no live process holds it (the lock file
  // is only read, never taken).
  static std::optional<LockHolder> holder(const std::filesystem::path& dir);

  const std::filesystem::path& path() const { return path_; }

 private:
  DirectoryLock(UniqueFd fd, std::filesystem::path path)
      : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;  // closing it releases the lock
  std::filesystem::path path_;
};

}  // namespace qf
