// Run groups and the Slurm array form of `quantfork experiment` (experiments/run_groups.h),
// rehearsed on one machine over Gloo: a 4-rank job of 2 "nodes" running 2 runs of 2 ranks
// at once writes the same run files as a 2-rank job running them one at a time; a run
// that fails stops only its group; --run-index / SLURM_ARRAY_TASK_ID run one plan run.
#include "experiments/run_groups.h"

#include "core/errors.h"
#include "dist_test_support.h"
#include "train_test_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

TEST(RunGroupLayout, ConsecutiveRanksTakeTheRunsInTurn) {
  // 2 nodes × 8 GPUs, 4 ranks per run: 4 groups; rank 13 is group 3's rank 1 on GPU 5.
  train::DistEnv env = local_env(13, 16, 29400);
  env.local_rank = 5;
  const auto g = experiments::run_groups(env, 4);
  EXPECT_EQ(g.count, 4);
  EXPECT_EQ(g.index, 3);
  EXPECT_EQ(g.rank_in_group, 1);
  std::vector<size_t> runs;
  for (size_t i = 0; i < 12; ++i) {
    if (g.takes(i)) runs.push_back(i);
  }
  EXPECT_EQ(runs, (std::vector<size_t>{3, 7, 11}));
  const auto vars = experiments::run_environment(env, g, "qf/experiment/0/run7/");
  EXPECT_EQ(vars, (std::vector<std::string>{"RANK=1", "WORLD_SIZE=4", "LOCAL_RANK=5",
                                            "MASTER_ADDR=127.0.0.1", "MASTER_PORT=29400",
                                            "QF_STORE_PREFIX=qf/experiment/0/run7/"}));
  // 0: the whole job is one group; a job of one process gets no variables.
  const auto whole = experiments::run_groups(env, 0);
  EXPECT_EQ(whole.count, 1);
  EXPECT_EQ(whole.rank_in_group, 13);
  EXPECT_TRUE(experiments::run_environment(local_env(0, 1, 1), whole, "p/").empty());
  for (const int bad : {3, 32, -1}) {
    const auto msg = message_of<ConfigError>([&] { experiments::run_groups(env, bad); });
    EXPECT_NE(msg.find("experiment.ranks_per_run"), std::string::npos) << msg;
    EXPECT_NE(msg.find("16 rank(s)"), std::string::npos) << msg;
  }
}

class RunGroups : public ::testing::Test {
 protected:
  void SetUp() override {
    make_dataset(dir_.path());
    make_model_config(dir_.path());
    write_run_config(dir_.path(), "", "base.yaml", {{"steps", "6"}});
    const auto r = run_quantfork("train --config base.yaml --set run.dir=base", dir_.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    write_fork("fork.yaml", "[1, 2]",
               "- {name: cosine, schedule: {name: pythia_cosine, max_lr: 1.0e-2, min_lr: "
               "1.0e-3, warmup_steps: 2, decay_steps: 40, step_offset: 6}}");
  }
  void write_fork(const std::string& name, const std::string& seeds, const std::string& arms) {
    write_file(dir_ / name, R"(
experiment:
  name: tiny
  out: out
  base: base/checkpoints/step6
  data_start_item: 0
  seeds: )" + seeds + R"(
  threads_per_run: 1
  arms:
    )" + arms + R"(
model: {config: tiny_config.json}
train: {steps: 8, global_batch: 4, seq_len: 16}
data: {dataset: tokens}
dist: {timeout_s: 20}
probe:
  enabled: true
  every: 4
  int4_scheme: int4_asym_g32
  eval: {dataset: tokens, sequences: 4, seq_len: 16}
)");
  }
  // `quantfork args` as a torchrun job of nodes × per_node ranks; the exit codes.
  std::vector<int> job(const std::string& args, int nodes, int per_node,
                       const std::vector<std::string>& extra_env = {}) {
    const int port = free_port();
    std::vector<pid_t> pids;
    for (int node = 0; node < nodes; ++node) {
      for (int local = 0; local < per_node; ++local) {
        auto env = torchrun_node_env(node, local, nodes, per_node, port);
        env.insert(env.end(), extra_env.begin(), extra_env.end());
        pids.push_back(spawn_quantfork(args, dir_.path(), env));
      }
    }
    std::vector<int> codes;
    for (const pid_t p : pids) codes.push_back(wait_exit_code(p));
    return codes;
  }
  TempDir dir_;
};

TEST_F(RunGroups, TwoRunsOfTwoRanksAtOnceEqualTheRunsOneAtATime) {
  ASSERT_EQ(job("experiment --config fork.yaml --set experiment.out=serial", 1, 2),
            std::vector<int>(2, 0))
      << read_file(dir_ / "child.log");
  ASSERT_EQ(job("experiment --config fork.yaml --set experiment.out=groups "
                "--set experiment.ranks_per_run=2",
                2, 2),
            std::vector<int>(4, 0))
      << read_file(dir_ / "child.log");
  const std::string log = read_file(dir_ / "child.log");
  EXPECT_NE(log.find("group 0 of 2 (2 ranks per run): 1 run(s) to do of 2"), std::string::npos)
      << log;
  EXPECT_NE(log.find("group 1 of 2 (2 ranks per run): 1 run(s) to do of 2"), std::string::npos)
      << log;
  for (const char* seed : {"seed1", "seed2"}) {
    const auto serial =
        RunFile::open_read_only((dir_ / "serial/tiny/cosine" / seed / "run.h5").string());
    const auto groups =
        RunFile::open_read_only((dir_ / "groups/tiny/cosine" / seed / "run.h5").string());
    EXPECT_EQ(groups.attributes().seed, serial.attributes().seed);
    const auto a = serial.read_train(), b = groups.read_train();
    ASSERT_EQ(a.size(), 8u) << seed;
    ASSERT_EQ(b.size(), a.size()) << seed;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].step, b[i].step);
      EXPECT_EQ(a[i].tokens, b[i].tokens);
      EXPECT_EQ(a[i].loss, b[i].loss) << seed << " step " << a[i].step;
      EXPECT_EQ(a[i].grad_norm, b[i].grad_norm) << seed << " step " << a[i].step;
      EXPECT_EQ(a[i].lr, b[i].lr) << seed << " step " << a[i].step;
    }
    const auto pa = serial.read_probe(), pb = groups.read_probe();
    ASSERT_FALSE(pa.empty());
    ASSERT_EQ(pa.size(), pb.size()) << seed;
    for (size_t i = 0; i < pa.size(); ++i) {
      EXPECT_EQ(pa[i].step, pb[i].step);
      EXPECT_EQ(pa[i].ppl_fp32, pb[i].ppl_fp32) << seed << " probe " << pa[i].step;
      EXPECT_EQ(pa[i].gap_int4_pct, pb[i].gap_int4_pct) << seed << " probe " << pa[i].step;
    }
  }
  // The two seeds are different runs (the comparison above could not pass by accident).
  const auto s1 = train_rows(dir_ / "groups/tiny/cosine/seed1");
  const auto s2 = train_rows(dir_ / "groups/tiny/cosine/seed2");
  EXPECT_NE(s1.front().loss, s2.front().loss);
}

TEST_F(RunGroups, ARunThatFailsStopsOnlyItsGroup) {
  // Run 1 asks for 3 sequences per update, which 2 ranks cannot split.
  write_fork(
      "mixed.yaml", "[1]",
      "- {name: ok, schedule: {name: constant, lr: 1.0e-3}}\n"
      "    - {name: bad, schedule: {name: constant, lr: 1.0e-3}, set: {train.global_batch: 3}}");
  const auto codes = job("experiment --config mixed.yaml --set experiment.ranks_per_run=2", 2, 2);
  EXPECT_EQ(codes, std::vector<int>(4, 1)) << read_file(dir_ / "child.log");
  const std::string log = read_file(dir_ / "child.log");
  EXPECT_NE(log.find("1 run(s) of experiment tiny failed:"), std::string::npos) << log;
  EXPECT_NE(log.find("run 1 bad/seed1"), std::string::npos) << log;
  EXPECT_NE(read_file(dir_ / "out/tiny/bad/seed1/stdout.txt").find("cannot be split over 2 ranks"),
            std::string::npos);
  EXPECT_EQ(train_rows(dir_ / "out/tiny/ok/seed1").size(), 8u) << "group 0's run must finish";
}

TEST_F(RunGroups, AnExperimentProcessThatDiesIsNamedInsteadOfAwaitedForever) {
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int rank = 0; rank < 4; ++rank) {
    pids.push_back(spawn_quantfork(
        "experiment --config fork.yaml --set experiment.ranks_per_run=2 --set dist.timeout_s=5",
        dir_.path(), torchrun_node_env(rank / 2, rank % 2, 2, 2, port)));
  }
  // Group 1 runs run 1 (seed 2); its rank 1's experiment process dies (its run goes on).
  ASSERT_TRUE(wait_for(dir_ / "out/tiny/cosine/seed2/run.h5", 60)) << read_file(dir_ / "child.log");
  const auto killed = std::chrono::steady_clock::now();
  ::kill(pids[3], SIGKILL);
  std::vector<int> codes;
  for (const pid_t p : pids) codes.push_back(wait_exit_code(p));
  EXPECT_LT(seconds_since(killed), 45.0);
  for (const int r : {0, 1, 2}) EXPECT_EQ(codes[r], 1) << "rank " << r;
  const std::string log = read_file(dir_ / "child.log");
  EXPECT_NE(log.find("experiment rank 3 (run group 1) has shown no sign of life"),
            std::string::npos)
      << log;
}

TEST_F(RunGroups, ASlurmArrayTaskRunsOnePlanRun) {
  auto r = run_quantfork("experiment --config fork.yaml --plan-only", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("run 0: cosine/seed1\nrun 1: cosine/seed2\n"), std::string::npos) << r.out;
  r = run_quantfork("experiment --config fork.yaml --run-index 2", dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("experiment.run_index"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("has 2 runs, 0 to 1"), std::string::npos) << r.err;
  r = run_quantfork("experiment --config fork.yaml --set experiment.array=true", dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("SLURM_ARRAY_TASK_ID is not set"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("experiment.array"), std::string::npos) << r.err;
  // The variable read directly: task 1 runs seed 2 only.
  const pid_t task = spawn_quantfork("experiment --config fork.yaml --set experiment.array=true",
                                     dir_.path(), {"SLURM_ARRAY_TASK_ID=1"});
  ASSERT_EQ(wait_exit_code(task), 0) << read_file(dir_ / "child.log");
  EXPECT_EQ(train_rows(dir_ / "out/tiny/cosine/seed2").size(), 8u);
  EXPECT_FALSE(fs::exists(dir_ / "out/tiny/cosine/seed1/run.h5"));
  // --run-index wins over the variable.
  const pid_t flag =
      spawn_quantfork("experiment --config fork.yaml --set experiment.array=true --run-index 0",
                      dir_.path(), {"SLURM_ARRAY_TASK_ID=1"});
  ASSERT_EQ(wait_exit_code(flag), 0) << read_file(dir_ / "child.log");
  EXPECT_EQ(train_rows(dir_ / "out/tiny/cosine/seed1").size(), 8u);
}

}  // namespace
}  // namespace qf::test
