#include "experiments/subprocess.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "core/errors.h"

namespace qf::experiments {

pid_t spawn(const std::filesystem::path& program, const std::vector<std::string>& args,
            const std::optional<std::filesystem::path>& log,
            const std::vector<std::string>& environment) {
  std::vector<char*> argv{const_cast<char*>(program.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // The child's environment is built here: between fork() and exec() only
  // async-signal-safe calls are allowed.
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& v : environment) replaced = replaced || v.rfind(name + "=", 0) == 0;
    if (!replaced) envp.push_back(*e);
  }
  for (const auto& v : environment) envp.push_back(const_cast<char*>(v.c_str()));
  envp.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw IoError(errno_message("cannot start", program.string()));
  if (pid == 0) {
    if (log && std::freopen(log->c_str(), "a", stdout)) ::dup2(::fileno(stdout), 2);
    ::execve(program.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

int exit_code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace qf::experiments
