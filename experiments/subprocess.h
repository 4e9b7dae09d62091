#pragma once
// Stages of an experiment run as quantfork's own subcommands in child processes (a
// crashed run cannot take the experiment down, and each run gets its own libtorch
// thread pool).
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qf::experiments {

// Starts `program args...`; its stdout and stderr are appended to `log` when given,
// else inherited. `environment` ("NAME=value") replaces or adds variables of this
// process's environment for the child. Buffered output of this process is flushed first,
// so the child does not print it again. IoError when fork() fails.
pid_t spawn(const std::filesystem::path& program, const std::vector<std::string>& args,
            const std::optional<std::filesystem::path>& log = std::nullopt,
            const std::vector<std::string>& environment = {});

// The running program, to start its own subcommands with: exec'ing /proc/self/exe runs
// the very file this process runs, even when a rebuild replaces it on disk meanwhile (a
// path read from the link would name the new, perhaps half-written, file).
inline std::filesystem::path self_program() {
  return "/proc/self/exe";
}

// The exit status of a waitpid() status word; 128 + the signal for a killed child.
int exit_code_of(int status);

}  // namespace qf::experiments
