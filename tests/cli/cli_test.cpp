// The program's own contract: help, dispatch, exit statuses, config errors end to end.
#include <gtest/gtest.h>

#include "test_support.h"

using qf::test::run_quantfork;

TEST(Cli, HelpListsWorkingCommands) {
  auto r = run_quantfork("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("usage: quantfork <command>"), std::string::npos) << r.out;
  for (const char* c : {"  schedule ", "  prepare ", "  analyze ", "  report ", "  phases "}) {
    EXPECT_NE(r.out.find(c), std::string::npos) << c << "\n" << r.out;
  }
  // The commands that run models exist only where quantfork was built with libtorch
  // (the sanitizer build has none): all of them or none.
  const bool torch = r.out.find("  train ") != std::string::npos;
  for (const char* c : {"  logits ", "  probe ", "  audit ", "  experiment ", "  demo "}) {
    EXPECT_EQ(r.out.find(c) != std::string::npos, torch) << c << "\n" << r.out;
  }
}

TEST(Cli, NoArgumentsIsUsageError) {
  auto r = run_quantfork("");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("commands:"), std::string::npos);
}

TEST(Cli, UnknownCommandAndOptionAreUsageErrors) {
  auto r = run_quantfork("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << r.err;
  auto o = run_quantfork("schedule --frob 3");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("unknown option '--frob'"), std::string::npos) << o.err;
  auto g = run_quantfork("--frob schedule");
  EXPECT_EQ(g.exit_code, 2);
}

TEST(Cli, VersionNamesTheRevision) {
  auto r = run_quantfork("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("quantfork 0.", 0), 0u) << r.out;
  EXPECT_NE(r.out.find('('), std::string::npos);
}

TEST(Cli, ConfigErrorsExitTwoAndNameFileAndKey) {
  qf::test::TempDir dir;
  qf::test::write_file(dir / "bad.yaml", "schedule:\n  name: constant\n  lr: 0.1\nsteps: 5\n");
  auto unknown = run_quantfork("schedule --config bad.yaml --steps 0:3", dir.path());
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown config key 'steps'"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("bad.yaml:4"), std::string::npos) << unknown.err;

  qf::test::write_file(dir / "broken.yaml", "schedule: {name: constant\n");
  auto malformed = run_quantfork("schedule --config broken.yaml --steps 0:3", dir.path());
  EXPECT_EQ(malformed.exit_code, 2);
  EXPECT_NE(malformed.err.find("malformed YAML in broken.yaml:"), std::string::npos)
      << malformed.err;

  auto missing = run_quantfork("schedule --config nope.yaml --steps 0:3", dir.path());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nope.yaml"), std::string::npos) << missing.err;
}

TEST(Cli, DumpConfigPrintsResolvedYamlThatLoadsBack) {
  qf::test::TempDir dir;
  auto r = run_quantfork("schedule --set schedule.max_lr=0.001 --dump-config", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("max_lr: 0.001"), std::string::npos) << r.out;
  qf::test::write_file(dir / "dumped.yaml", r.out);
  auto again = run_quantfork("schedule --config dumped.yaml --dump-config", dir.path());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
  auto docs = run_quantfork("schedule --dump-config-docs", dir.path());
  EXPECT_EQ(docs.exit_code, 0);
  EXPECT_NE(docs.out.find("# "), std::string::npos) << docs.out;
}
