#include "core/subprocess.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/errors.h"

extern char** environ;

namespace qf {

namespace {

// posix_spawn_file_actions_t, destroyed on every path out.
class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&actions_); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

}  // namespace

pid_t spawn(const std::filesystem::path& program, const std::vector<std::string>& args,
            const std::optional<std::filesystem::path>& log,
            const std::vector<std::string>& environment) {
  std::vector<char*> argv{const_cast<char*>(program.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
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
  FileActions actions;
  if (log) {
    posix_spawn_file_actions_addopen(actions.get(), STDOUT_FILENO, log->c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(actions.get(), STDOUT_FILENO, STDERR_FILENO);
  }
  std::fflush(nullptr);
  pid_t pid = 0;
  const bool bare_name = program.string().find('/') == std::string::npos;
  const int err =
      bare_name
          ? posix_spawnp(&pid, program.c_str(), actions.get(), nullptr, argv.data(), envp.data())
          : posix_spawn(&pid, program.c_str(), actions.get(), nullptr, argv.data(), envp.data());
  if (err != 0) {
    throw IoError("cannot start " + program.string() + ": " + std::strerror(err) +
                  (log ? " (its output was to go to " + log->string() + ")" : std::string()));
  }
  return pid;
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      throw IoError(errno_message("cannot wait for child process", std::to_string(pid)));
  }
  return exit_code_of(status);
}

int run_to_end(const std::filesystem::path& program, const std::vector<std::string>& args,
               const std::optional<std::filesystem::path>& log) {
  return wait_exit_code(spawn(program, args, log));
}

int exit_code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace qf
