#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "core/errors.h"

namespace fs = std::filesystem;

namespace qf {

void write_text_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw IoError(errno_message("cannot create", tmp.string()));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() &&
                  std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    throw IoError(errno_message("cannot write", tmp.string()));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw IoError(errno_message("cannot rename into place", path.string()));
  }
}

void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void replace_directory(const fs::path& tmp, const fs::path& dir) {
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  sync_directory(tmp);
  std::error_code ec;
  fs::path aside;
  if (fs::exists(dir)) {
    aside = parent / (dir.filename().string() + ".old." + std::to_string(::getpid()));
    fs::remove_all(aside, ec);
    fs::rename(dir, aside, ec);
    if (ec) throw IoError("cannot move '" + dir.string() + "' aside: " + ec.message());
  }
  fs::rename(tmp, dir, ec);
  if (ec)
    throw IoError("cannot rename '" + tmp.string() + "' to '" + dir.string() +
                  "': " + ec.message());
  sync_directory(parent);
  if (!aside.empty()) fs::remove_all(aside, ec);
}

namespace {
constexpr const char* kDeletingSuffix = ".deleting";
}

fs::path move_aside_for_deletion(const fs::path& dir) {
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  const fs::path doomed = parent / ("." + dir.filename().string() + kDeletingSuffix);
  std::error_code ec;
  fs::remove_all(doomed, ec);
  fs::rename(dir, doomed, ec);
  if (ec) throw IoError("cannot move '" + dir.string() + "' aside to delete it: " + ec.message());
  sync_directory(parent);
  return doomed;
}

void remove_directory_atomically(const fs::path& dir) {
  std::error_code ec;
  fs::remove_all(move_aside_for_deletion(dir), ec);
}

bool is_deletion_leftover(const std::string& name) {
  const std::string suffix = kDeletingSuffix;
  return name.size() > suffix.size() + 1 && name[0] == '.' &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace qf
