#pragma once
// Child processes: quantfork's own subcommands (the runs of an experiment or a sweep, the
// demo's stages: a crashed run cannot take the experiment down, and each run gets its own
// libtorch thread pool) and the tools it drives (gnuplot). Started with posix_spawn, so a
// process with many threads (libtorch's) starts children safely.
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qf {

// Starts `program args...`: a path, or a bare name looked up in PATH. Its stdout and
// stderr are appended to `log` when given (the file is created), else inherited.
// `environment` ("NAME=value") replaces or adds variables of this process's environment
// for the child. Buffered output of this process is flushed first, so the child does not
// print it again. IoError naming the program when it cannot be started (not found, not
// executable, no resources).
pid_t spawn(const std::filesystem::path& program, const std::vector<std::string>& args,
            const std::optional<std::filesystem::path>& log = std::nullopt,
            const std::vector<std::string>& environment = {});

// Waits for the child `pid` (retrying when a signal interrupts the wait): its exit code.
int wait_exit_code(pid_t pid);

// spawn, then wait: the exit code.
int run_to_end(const std::filesystem::path& program, const std::vector<std::string>& args,
               const std::optional<std::filesystem::path>& log = std::nullopt);

// The exit status of a waitpid() status word; 128 + the signal for a killed child.
int exit_code_of(int status);

// The running program, to start its own subcommands with: exec'ing /proc/self/exe runs
// the very file this process runs, even when a rebuild replaces it on disk meanwhile (a
// path read from the link would name the new, perhaps half-written, file).
inline std::filesystem::path self_program() {
  return "/proc/self/exe";
}

}  // namespace qf
