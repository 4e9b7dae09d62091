#include "core/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <fstream>
#include <sstream>

#include "core/errors.h"

namespace fs = std::filesystem;

namespace qf {
namespace {

constexpr const char* kLockFile = ".lock";

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

LockHolder read_holder(const fs::path& lock_file) {
  LockHolder h;
  std::ifstream in(lock_file);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "pid") h.pid = value;
    if (key == "host") h.host = value;
    if (key == "since") h.since = value;
  }
  return h;
}

}  // namespace

std::string LockHolder::describe() const {
  if (pid.empty()) return "a process that is just starting";
  return "pid " + pid + " on host " + host + (since.empty() ? "" : " since " + since);
}

DirectoryLock DirectoryLock::acquire(const fs::path& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError("cannot create " + what + " '" + dir.string() + "': " + ec.message());
  const fs::path file = dir / kLockFile;
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) throw IoError(errno_message("cannot create the lock file", file.string()));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      errno = err;
      throw IoError(errno_message("cannot lock", file.string()));
    }
    throw Error(what + " '" + dir.string() + "' is in use by another quantfork process (" +
                read_holder(file).describe() +
                "); wait for it to finish, stop it, or choose another " + what);
  }
  std::ostringstream text;
  text << "pid=" << ::getpid() << "\nhost=" << host_name() << "\nsince=" << utc_now() << "\n";
  const std::string s = text.str();
  // Best effort: the lock itself is the flock, the text only says who holds it.
  if (::ftruncate(fd.get(), 0) == 0 &&
      ::pwrite(fd.get(), s.data(), s.size(), 0) == static_cast<ssize_t>(s.size())) {
    ::fsync(fd.get());
  }
  return DirectoryLock(std::move(fd), file);
}

std::optional<LockHolder> DirectoryLock::holder(const fs::path& dir) {
  const fs::path file = dir / kLockFile;
  const UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return std::nullopt;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return std::nullopt;
  return read_holder(file);
}

}  // namespace qf
