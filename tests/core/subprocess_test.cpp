#include "core/subprocess.h"

#include <gtest/gtest.h>

#include "core/errors.h"
#include "test_support.h"

namespace qf {

TEST(Subprocess, OutputEnvironmentAndExitCodes) {
  test::TempDir dir;
  const auto log = dir / "log.txt";
  // A bare name is looked up in PATH; stdout and stderr both go to the log, appended.
  EXPECT_EQ(run_to_end("sh", {"-c", "echo out; echo err >&2; exit 3"}, log), 3);
  EXPECT_EQ(run_to_end("/bin/sh", {"-c", "echo again"}, log), 0);
  EXPECT_EQ(test::read_file(log), "out\nerr\nagain\n");
  // Variables are replaced or added for the child only.
  const pid_t pid = spawn("/bin/sh", {"-c", "echo \"$QF_A $HOME\" > " + (dir / "env.txt").string()},
                          std::nullopt, {"QF_A=1", "HOME=/elsewhere"});
  EXPECT_EQ(wait_exit_code(pid), 0);
  EXPECT_EQ(test::read_file(dir / "env.txt"), "1 /elsewhere\n");
  // A killed child reads as 128 + the signal.
  EXPECT_EQ(run_to_end("/bin/sh", {"-c", "kill -9 $$"}), 137);
}

TEST(Subprocess, AProgramThatCannotStartIsAnErrorNamingIt) {
  const std::string what =
      test::message_of<IoError>([] { spawn("quantfork-no-such-program", {}); });
  EXPECT_NE(what.find("cannot start quantfork-no-such-program"), std::string::npos) << what;
  EXPECT_THROW(spawn("/nonexistent/dir/prog", {}), IoError);
}

}  // namespace qf
