// One writer per directory (core/dir_lock.h) and deletions that a kill cannot leave half
// done (core/atomic_file.h).
#include "core/dir_lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "test_support.h"

namespace qf {
namespace {

namespace fs = std::filesystem;
using test::message_of;

TEST(DirectoryLock, ASecondHolderIsRefusedNamingTheFirstAndTheLockEndsWithItsHolder) {
  test::TempDir dir;
  const fs::path run = dir / "run";
  EXPECT_FALSE(DirectoryLock::holder(run).has_value());
  {
    DirectoryLock lock = DirectoryLock::acquire(run, "run.dir");
    EXPECT_TRUE(fs::is_directory(run));
    const auto holder = DirectoryLock::holder(run);
    ASSERT_TRUE(holder.has_value());
    EXPECT_EQ(holder->pid, std::to_string(::getpid()));
    const std::string msg = message_of<Error>([&] { DirectoryLock::acquire(run, "run.dir"); });
    EXPECT_NE(msg.find("run.dir '" + run.string() + "' is in use"), std::string::npos) << msg;
    EXPECT_NE(msg.find("pid " + std::to_string(::getpid()) + " on host "), std::string::npos)
        << msg;
  }
  EXPECT_FALSE(DirectoryLock::holder(run).has_value());
  DirectoryLock again = DirectoryLock::acquire(run, "run.dir");
}

TEST(DirectoryLock, AKilledHolderLeavesNoStaleLock) {
  test::TempDir dir;
  const fs::path run = dir / "run";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    DirectoryLock lock = DirectoryLock::acquire(run, "run.dir");
    char c = 1;
    if (::write(ready[1], &c, 1) != 1) ::_exit(3);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  const auto holder = DirectoryLock::holder(run);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->pid, std::to_string(child));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_FALSE(DirectoryLock::holder(run).has_value());
  DirectoryLock lock = DirectoryLock::acquire(run, "run.dir");
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(AtomicFile, ADeletionLeavesEitherTheWholeDirectoryOrAHiddenLeftover) {
  test::TempDir dir;
  const fs::path step = dir / "step12";
  fs::create_directories(step);
  test::write_file(step / "config.json", "{}");
  test::write_file(step / "model.safetensors", "x");
  // The first step alone is what a kill right after it leaves.
  const fs::path doomed = move_aside_for_deletion(step);
  EXPECT_FALSE(fs::exists(step));
  EXPECT_TRUE(fs::exists(doomed / "config.json"));
  EXPECT_TRUE(is_deletion_leftover(doomed.filename().string()));
  EXPECT_FALSE(is_deletion_leftover("step12"));
  EXPECT_FALSE(is_deletion_leftover(".step12.tmp"));
  fs::create_directories(step);
  remove_directory_atomically(step);
  EXPECT_FALSE(fs::exists(step));
  EXPECT_FALSE(fs::exists(doomed));
}

}  // namespace
}  // namespace qf
