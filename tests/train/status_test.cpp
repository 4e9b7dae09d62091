// `quantfork status` (experiments/run_status.h) on real runs: finished, failed, running
// (a live `quantfork train` holding the lock, and a lock held by this test), killed, and an
// experiment's arms with their matched probes; the table and the JSON.
#include <nlohmann/json.hpp>

#include "core/dir_lock.h"
#include "train_test_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

nlohmann::json status_json(const std::string& path, const fs::path& cwd) {
  const auto r = run_quantfork("status --json " + path, cwd);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  try {
    return nlohmann::json::parse(r.out);
  } catch (const nlohmann::json::exception& e) {
    ADD_FAILURE() << e.what() << "\n" << r.out;
    return {};
  }
}

using Status = TinyRunTest;

TEST_F(Status, AFinishedAFailedAndANotStartedRun) {
  write_run_config(dir_.path(), "checkpoint: {every: 4}\n");
  ASSERT_EQ(run_quantfork("train --config run.yaml --set run.dir=done", dir_.path()).exit_code, 0);
  ASSERT_EQ(run_quantfork("train --config run.yaml --set run.dir=failed "
                          "--set debug.inject_nan_at_step=6",
                          dir_.path())
                .exit_code,
            1);
  fs::create_directories(dir_ / "fresh");
  write_file(dir_ / "fresh/run_config.yaml", "train: {steps: 30, seed: 2}\nrun: {arm: a}\n");

  const auto j = status_json(".", dir_.path());
  EXPECT_EQ(j.at("kind"), "directory");
  ASSERT_EQ(j.at("runs").size(), 3u) << j.dump(2);
  const auto& done = j.at("runs")[0];
  EXPECT_EQ(done.at("name"), "done");
  EXPECT_EQ(done.at("state"), "done");
  EXPECT_EQ(done.at("step"), 12);
  EXPECT_EQ(done.at("total_steps"), 12);
  const auto rows = train_rows(dir_ / "done");
  EXPECT_EQ(done.at("last_loss").get<double>(), static_cast<double>(rows.back().loss));
  EXPECT_TRUE(done.at("last_gap_int4_pct").is_null());  // no probe in this run
  EXPECT_EQ(done.at("seed"), 3);
  const auto& failed = j.at("runs")[1];
  EXPECT_EQ(failed.at("state"), "failed");
  EXPECT_EQ(failed.at("step"), 6);  // rows 0..5 were logged
  EXPECT_NE(failed.at("detail").get<std::string>().find("training stopped at update 6"),
            std::string::npos)
      << failed.dump();
  const auto& fresh = j.at("runs")[2];
  EXPECT_EQ(fresh.at("state"), "not started");
  EXPECT_EQ(fresh.at("step"), 0);
  EXPECT_EQ(fresh.at("total_steps"), 30);
  EXPECT_EQ(fresh.at("arm"), "a");

  // Starting the failed run again forgets the failure.
  ASSERT_EQ(run_quantfork("train --config run.yaml --set run.dir=failed", dir_.path()).exit_code,
            0);
  EXPECT_EQ(status_json("failed", dir_.path()).at("runs")[0].at("state"), "done");

  const auto table = run_quantfork("status .", dir_.path());
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("12/12"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("not started"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("3 run(s): 2 done 1 not started"), std::string::npos) << table.out;
}

TEST_F(Status, ARunningRunByItsLockThenKilled) {
  write_run_config(dir_.path(), "checkpoint: {every: 5}\n", "run.yaml", {{"steps", "100000"}});
  // However the test ends, the run does not go on for its 100000 updates.
  struct Child {
    pid_t pid;
    int kill_and_reap() {
      ::kill(pid, SIGKILL);
      const int code = wait_exit_code(pid);
      pid = -1;  // reaped: never signalled again
      return code;
    }
    ~Child() {
      if (pid > 0) kill_and_reap();
    }
  } child{spawn_quantfork("train --config run.yaml", dir_.path())};
  const pid_t pid = child.pid;
  ASSERT_TRUE(wait_for(dir_ / "run/checkpoints/step10", 120)) << read_file(dir_ / "child.log");
  const auto running = status_json("run", dir_.path());
  EXPECT_EQ(running.at("kind"), "run");
  const auto& r = running.at("runs")[0];
  EXPECT_EQ(r.at("state"), "running") << running.dump(2);
  EXPECT_NE(r.at("detail").get<std::string>().find("pid " + std::to_string(pid)), std::string::npos)
      << r.dump();
  EXPECT_GE(r.at("step").get<std::int64_t>(), 10);  // read from the journal meanwhile
  EXPECT_EQ(r.at("total_steps"), 100000);
  EXPECT_FALSE(r.at("last_loss").is_null());
  EXPECT_EQ(child.kill_and_reap(), 128 + SIGKILL);
  const auto killed = status_json("run", dir_.path()).at("runs")[0];
  EXPECT_EQ(killed.at("state"), "stopped") << killed.dump();
  EXPECT_GE(killed.at("step").get<std::int64_t>(), 10);
  EXPECT_EQ(killed.at("detail"), "");
}

TEST_F(Status, ALockHeldByAnotherProcessReadsAsRunning) {
  write_run_config(dir_.path(), "", "run.yaml", {{"steps", "4"}});
  ASSERT_EQ(run_quantfork("train --config run.yaml", dir_.path()).exit_code, 0);
  {
    const DirectoryLock lock = DirectoryLock::acquire(dir_ / "run", "run.dir");
    const auto r = status_json("run", dir_.path()).at("runs")[0];
    EXPECT_EQ(r.at("state"), "running");
    EXPECT_NE(r.at("detail").get<std::string>().find("pid " + std::to_string(::getpid())),
              std::string::npos);
  }
  EXPECT_EQ(status_json("run", dir_.path()).at("runs")[0].at("state"), "done");
}

TEST_F(Status, AnExperimentCountsEachArmsMatchedProbes) {
  write_run_config(dir_.path(), "", "base.yaml", {{"steps", "4"}});
  ASSERT_EQ(run_quantfork("train --config base.yaml --set run.dir=base", dir_.path()).exit_code, 0);
  write_file(dir_ / "fork.yaml", R"(
experiment:
  name: tiny
  out: out
  base: base/checkpoints/step4
  data_start_item: 0
  seeds: [1]
  threads_per_run: 1
  arms:
    - {name: cosine, schedule: {name: pythia_cosine, max_lr: 1.0e-2, min_lr: 1.0e-3, warmup_steps: 2, decay_steps: 40, step_offset: 4}}
    - {name: sgdr, schedule: {name: sgdr, max_lr: 1.0e-2, min_lr: 1.0e-3, t0: 4, t_mult: 2}}
model: {config: tiny_config.json}
train: {steps: 6, global_batch: 2, seq_len: 16}
data: {dataset: tokens}
probe:
  enabled: true
  every: 3
  int4_scheme: int4_asym_g32
  eval: {dataset: tokens, sequences: 4, seq_len: 16}
)");
  ASSERT_EQ(run_quantfork("experiment --config fork.yaml --plan-only", dir_.path()).exit_code, 0);
  auto j = status_json("out/tiny", dir_.path());
  EXPECT_EQ(j.at("kind"), "experiment");
  ASSERT_EQ(j.at("runs").size(), 2u);
  EXPECT_EQ(j.at("runs")[0].at("name"), "cosine/seed1");
  EXPECT_EQ(j.at("runs")[0].at("state"), "not started");
  EXPECT_EQ(j.at("experiments")[0].at("arms")[0].at("probes"), 0);

  const auto r = run_quantfork("experiment --config fork.yaml", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = status_json("out", dir_.path());
  ASSERT_EQ(j.at("experiments").size(), 1u) << j.dump(2);
  const auto& e = j.at("experiments")[0];
  EXPECT_EQ(e.at("name"), "tiny");
  ASSERT_EQ(e.at("arms").size(), 2u);
  const std::int64_t probes =
      RunFile::open_read_only((dir_ / "out/tiny/cosine/seed1/run.h5").string()).read_probe().size();
  ASSERT_GT(probes, 0);
  for (const auto& arm : e.at("arms")) {
    EXPECT_EQ(arm.at("runs"), 1);
    EXPECT_EQ(arm.at("done"), 1);
    EXPECT_EQ(arm.at("probes"), probes) << arm.dump();  // one shared plan
    EXPECT_EQ(arm.at("matched_probes"), probes) << arm.dump();
  }
  EXPECT_EQ(j.at("runs")[1].at("name"), "tiny/sgdr/seed1");
  EXPECT_FALSE(j.at("runs")[1].at("last_gap_int4_pct").is_null());
}

TEST_F(Status, APathWithoutRunsIsAUsageError) {
  const auto r = run_quantfork("status .", dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no run under"), std::string::npos) << r.err;
  EXPECT_EQ(run_quantfork("status nowhere", dir_.path()).exit_code, 2);
}

}  // namespace
}  // namespace qf::test
