#include "test_support.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

namespace fs = std::filesystem;

namespace qf::test {

namespace {
fs::path env_or(const char* var, const char* fallback) {
  const char* v = std::getenv(var);
  return fs::path(v && *v ? v : fallback);
}
bool fixtures_required() {
  const char* v = std::getenv("QF_REQUIRE_FIXTURES");
  return v && std::string(v) == "1";
}
}  // namespace

fs::path fixtures_dir() { return env_or("QF_FIXTURES_DIR", QF_FIXTURES_DIR); }
fs::path data_dir() { return env_or("QF_DATA_DIR", QF_DATA_DIR); }

void announce_fixtures() {
  if (!fs::is_directory(fixtures_dir())) {
    std::fprintf(stderr,
                 "\n*** GOLDEN FIXTURES ABSENT: %s ***\n*** tests that compare against the "
                 "reference implementations will be SKIPPED ***\n\n",
                 fixtures_dir().c_str());
  }
}

bool have_fixture(const std::string& sub) {
  if (fs::exists(fixtures_dir() / sub)) return true;
  if (fixtures_required()) {
    ADD_FAILURE() << "fixture " << (fixtures_dir() / sub)
                  << " is missing and QF_REQUIRE_FIXTURES=1";
  }
  return false;
}

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path p = fs::temp_directory_path() / ("qf-test-" + std::to_string(rd()));
    if (fs::create_directory(p)) {
      path_ = p;
      return;
    }
  }
  throw std::runtime_error("could not create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  // Restore write permission on anything a test made read-only, so removal works.
  for (auto it = fs::recursive_directory_iterator(path_, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  }
  fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

namespace {

std::int64_t status_bytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(key.size())) * 1024;  // kB
  }
  ADD_FAILURE() << "/proc/self/status has no " << key;
  return 0;
}

}  // namespace

std::int64_t resident_bytes() {
  return status_bytes("VmRSS:");
}

std::int64_t peak_resident_bytes() {
  return status_bytes("VmHWM:");
}

void reset_peak_memory() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

bool memory_peaks_measurable() {
#if defined(__SANITIZE_ADDRESS__)
  return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return false;
#endif
#endif
  return true;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

}  // namespace qf::test

namespace qf::test {

fs::path quantfork_binary() { return fs::path(QF_BINARY_DIR) / "cli" / "quantfork"; }

CommandResult run_quantfork(const std::string& args, const fs::path& cwd,
                            const std::string& stdin_text) {
  TempDir io;
  write_file(io / "stdin", stdin_text);
  std::string cmd = "cd '" + cwd.string() + "' && '" + quantfork_binary().string() + "' " + args +
                    " < '" + (io / "stdin").string() + "' > '" + (io / "stdout").string() +
                    "' 2> '" + (io / "stderr").string() + "'";
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(io / "stdout");
  r.err = read_file(io / "stderr");
  return r;
}

}  // namespace qf::test
