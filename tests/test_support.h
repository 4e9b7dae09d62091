#pragma once
// Shared helpers for the GoogleTest binaries: fixture paths, temporary directories,
// messages of expected exceptions, running the quantfork binary.
#include <gtest/gtest.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>

namespace qf::test {

// The golden fixtures folder: $QF_FIXTURES_DIR, else the path CMake baked in.
std::filesystem::path fixtures_dir();
// The shared data folder (tokenizer, corpora): $QF_DATA_DIR, else CMake's.
std::filesystem::path data_dir();
// Prints a loud banner once when fixtures are absent. CI sets QF_REQUIRE_FIXTURES=1,
// which turns a missing folder into a failure instead of a skip.
void announce_fixtures();
// True when `fixtures_dir()/sub` exists; otherwise false (and fails the test when
// QF_REQUIRE_FIXTURES=1).
bool have_fixture(const std::string& sub);

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// The message of the E that `f` throws; fails the test when it throws nothing or another
// type (a FormatError thrown as a bare Error would change the exit status contract).
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw the wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "threw nothing";
  return "";
}

// This process's resident memory now and its high-water mark, in bytes (/proc/self/status
// VmRSS, VmHWM); reset_peak_memory() sets the mark to the current RSS (clear_refs 5).
// Peaks can't be measured under AddressSanitizer (its allocator keeps freed memory in
// quarantine): memory_peaks_measurable() says false there and tests skip.
std::int64_t resident_bytes();
std::int64_t peak_resident_bytes();
void reset_peak_memory();
bool memory_peaks_measurable();

// Reads a whole file into a string; writes a string to a file.
std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& content);

}  // namespace qf::test

#define QF_REQUIRE_FIXTURE(sub)                                          \
  do {                                                                    \
    if (!::qf::test::have_fixture(sub)) GTEST_SKIP() << "fixture " << sub \
                                                     << " absent";        \
  } while (0)

namespace qf::test {

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the built `quantfork` binary with `args` (a shell-quoted string) in `cwd`,
// capturing stdout and stderr.
CommandResult run_quantfork(const std::string& args,
                            const std::filesystem::path& cwd = std::filesystem::current_path(),
                            const std::string& stdin_text = "");
std::filesystem::path quantfork_binary();

}  // namespace qf::test
