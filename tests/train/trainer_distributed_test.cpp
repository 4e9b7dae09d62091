// `quantfork train` over two Gloo ranks on 127.0.0.1 (torchrun's variables), against one
// process with the same global batch: the same losses to 1e-6 relative over 20 updates;
// a rank killed mid-run makes the survivor fail within the timeout, naming the rank.
#include <cmath>

#include "dist_test_support.h"
#include "train_test_support.h"

namespace qf::test {
namespace {

std::vector<std::string> torchrun_env(int rank, int port) {
  return {"RANK=" + std::to_string(rank), "WORLD_SIZE=2", "LOCAL_RANK=" + std::to_string(rank),
          "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)};
}

class TrainDistributed : public ::testing::Test {
 protected:
  void SetUp() override {
    make_dataset(dir_.path(), 96);
    make_model_config(dir_.path());
    // global batch 8: each of two ranks takes 4 rows, one process takes all 8.
    write_run_config(dir_.path(), "dist: {timeout_s: 5}\n", "run.yaml",
                     {{"steps", "20"}, {"global_batch", "8"}});
  }
  TempDir dir_;
};

TEST_F(TrainDistributed, TwoGlooRanksMatchOneProcessWithTheWholeBatch) {
  const auto one = run_quantfork("train --config run.yaml --set run.dir=one", dir_.path());
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const int port = free_port();
  const pid_t r0 = spawn_quantfork("train --config run.yaml --set run.dir=two", dir_.path(),
                                   torchrun_env(0, port));
  const pid_t r1 = spawn_quantfork("train --config run.yaml --set run.dir=two", dir_.path(),
                                   torchrun_env(1, port));
  ASSERT_EQ(wait_exit_code(r0), 0) << read_file(dir_ / "child.log");
  ASSERT_EQ(wait_exit_code(r1), 0) << read_file(dir_ / "child.log");
  expect_same_losses(train_rows(dir_ / "one"), train_rows(dir_ / "two"));
  // Only rank 0 writes the run file and checkpoints; both ranks end on the same weights.
  EXPECT_TRUE(std::filesystem::exists(dir_ / "two/checkpoints/step20/model.safetensors"));
}

TEST_F(TrainDistributed, AKilledRankMakesTheOtherFailNamingIt) {
  write_run_config(dir_.path(), "dist: {timeout_s: 3}\n", "long.yaml",
                   {{"steps", "100000"}, {"global_batch", "8"}});
  const int port = free_port();
  const pid_t r0 = spawn_quantfork("train --config long.yaml --set run.dir=k", dir_.path(),
                                   torchrun_env(0, port));
  const pid_t r1 = spawn_quantfork("train --config long.yaml --set run.dir=k", dir_.path(),
                                   torchrun_env(1, port));
  ASSERT_TRUE(wait_for(dir_ / "k/run.h5", 60));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto killed = std::chrono::steady_clock::now();
  ::kill(r1, SIGKILL);
  wait_exit_code(r1);
  const int code = wait_exit_code(r0);
  const double waited = seconds_since(killed);
  EXPECT_NE(code, 0);
  EXPECT_LT(waited, 3.0 + 10.0) << "the survivor must fail within the timeout";
  const std::string log = read_file(dir_ / "child.log");
  EXPECT_NE(log.find("rank 1"), std::string::npos) << log;
}

}  // namespace
}  // namespace qf::test
