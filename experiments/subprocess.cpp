#include "experiments/subprocess.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "core/errors.h"

namespace qf::experiments {

pid_t spawn(const std::filesystem::path& program, const std::vector<std::string>& args,
            const std::optional<std::filesystem::path>& log) {
  std::vector<char*> argv{const_cast<char*>(program.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw IoError(errno_message("cannot start", program.string()));
  if (pid == 0) {
    if (log && std::freopen(log->c_str(), "a", stdout)) ::dup2(::fileno(stdout), 2);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

int exit_code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace qf::experiments
