// A multi-node rehearsal on one machine: `quantfork train` over 2 "nodes" × 2 Gloo ranks on
// 127.0.0.1, each worker given the variables torchrun gives it on a cluster (its node as
// GROUP_RANK, LOCAL_RANK 0-1 on each node, one rendezvous endpoint). The run equals one
// process with the whole batch; a rank killed on one node stops the others within the
// timeout, naming it; the run resumes on another number of ranks only when allowed.
#include <cmath>

#include "dist_test_support.h"
#include "train/job_store.h"
#include "train_test_support.h"

namespace qf::test {
namespace {

class MultiNode : public ::testing::Test {
 protected:
  void SetUp() override {
    make_dataset(dir_.path(), 96);
    make_model_config(dir_.path());
    // global batch 8: each of 4 ranks takes 2 rows, one process takes all 8.
    write_run_config(dir_.path(), "dist: {timeout_s: 5}\n", "run.yaml",
                     {{"steps", "20"}, {"global_batch", "8"}});
  }
  // Starts `args` on every rank of `nodes` × `per_node`, node by node; returns the pids.
  std::vector<pid_t> launch(const std::string& args, int nodes, int per_node, int port,
                            bool agent_store = false) {
    std::vector<pid_t> pids;
    for (int node = 0; node < nodes; ++node) {
      for (int local = 0; local < per_node; ++local) {
        pids.push_back(spawn_quantfork(
            args, dir_.path(), torchrun_node_env(node, local, nodes, per_node, port, agent_store)));
      }
    }
    return pids;
  }
  // Waits for every pid; the exit codes in rank order.
  static std::vector<int> wait_all(const std::vector<pid_t>& pids) {
    std::vector<int> codes;
    for (const pid_t p : pids) codes.push_back(wait_exit_code(p));
    return codes;
  }
  TempDir dir_;
};

TEST_F(MultiNode, TwoNodesOfTwoRanksMatchOneProcess) {
  const auto one = run_quantfork("train --config run.yaml --set run.dir=one", dir_.path());
  ASSERT_EQ(one.exit_code, 0) << one.err;
  // As on a cluster with torchrun's c10d rendezvous: the agent on node 0 hosts the store
  // (here the test does), every worker is its client.
  const int port = free_port();
  train::JobStore agent(local_env(0, 4, port), std::chrono::seconds(10));
  ASSERT_TRUE(agent.hosts());
  const auto codes = wait_all(launch("train --config run.yaml --set run.dir=four", 2, 2, port,
                                     /*agent_store=*/true));
  ASSERT_EQ(codes, std::vector<int>(4, 0)) << read_file(dir_ / "child.log");
  expect_same_losses(train_rows(dir_ / "one"), train_rows(dir_ / "four"));
}

TEST_F(MultiNode, ARankKilledOnOneNodeStopsTheOthersNamingIt) {
  write_run_config(dir_.path(), "dist: {timeout_s: 3}\n", "long.yaml",
                   {{"steps", "100000"}, {"global_batch", "8"}});
  const auto pids = launch("train --config long.yaml --set run.dir=k", 2, 2, free_port());
  ASSERT_TRUE(wait_for(dir_ / "k/run.h5", 60)) << read_file(dir_ / "child.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Node 1's local rank 0: global rank 2.
  const auto killed = std::chrono::steady_clock::now();
  ::kill(pids[2], SIGKILL);
  const auto codes = wait_all(pids);
  const double waited = seconds_since(killed);
  for (const int r : {0, 1, 3}) EXPECT_NE(codes[r], 0) << "rank " << r << " went on";
  EXPECT_LT(waited, 3.0 + 10.0) << "the survivors must fail within the timeout";
  const std::string log = read_file(dir_ / "child.log");
  EXPECT_NE(log.find("rank 2"), std::string::npos) << log;
}

TEST_F(MultiNode, ResumesOnAnotherNumberOfRanksOnlyWhenAllowed) {
  write_run_config(dir_.path(), "dist: {timeout_s: 5}\n", "short.yaml",
                   {{"steps", "6"}, {"global_batch", "8"}});
  ASSERT_EQ(wait_all(launch("train --config short.yaml --set run.dir=r", 2, 2, free_port())),
            std::vector<int>(4, 0))
      << read_file(dir_ / "child.log");
  // The same run on one node of 2 ranks: refused, then allowed.
  const auto refused =
      wait_all(launch("train --config run.yaml --set run.dir=r", 1, 2, free_port()));
  EXPECT_EQ(refused, std::vector<int>(2, 2)) << read_file(dir_ / "child.log");
  const std::string log = read_file(dir_ / "child.log");
  EXPECT_NE(log.find("dist.allow_world_size_change"), std::string::npos) << log;
  EXPECT_NE(log.find("4 rank(s)"), std::string::npos) << log;
  EXPECT_EQ(train_rows(dir_ / "r").size(), 6u);
  const auto allowed = wait_all(
      launch("train --config run.yaml --set run.dir=r --set dist.allow_world_size_change=true", 1,
             2, free_port()));
  ASSERT_EQ(allowed, std::vector<int>(2, 0)) << read_file(dir_ / "child.log");
  const auto rows = train_rows(dir_ / "r");
  ASSERT_EQ(rows.size(), 20u);
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_EQ(rows[i].step, rows[i - 1].step + 1);
}

}  // namespace
}  // namespace qf::test
