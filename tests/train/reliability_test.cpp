// Faults a demanding user meets, through the real `quantfork train`: Pythia's own context
// length, two starts on one run.dir, kills while pruning and at random moments (a short
// kill-anywhere loop; bench/kill_anywhere.sh is the long one), a damaged run.h5, and
// the command-line corners of resuming.
#include <random>

#include "core/step_name.h"
#include "train/checkpoint.h"
#include "train_test_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

class Reliability : public ::testing::Test {
 protected:
  void SetUp() override {
    make_dataset(dir_.path(), 64, 65);
    make_model_config(dir_.path());
  }
  CommandResult train(const std::string& config, const std::string& extra = "") {
    return run_quantfork("train --config " + config + " " + extra, dir_.path());
  }
  TempDir dir_;
};

void expect_same_rows(const std::vector<TrainRow>& a, const std::vector<TrainRow>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].step, b[i].step);
    EXPECT_EQ(a[i].loss, b[i].loss) << "step " << a[i].step;
    EXPECT_EQ(a[i].grad_norm, b[i].grad_norm) << "step " << a[i].step;
    EXPECT_EQ(a[i].tokens, b[i].tokens) << "step " << a[i].step;
  }
}

// Every step<N> under checkpoints/ is whole, and nothing else is there.
void expect_only_whole_checkpoints(const fs::path& checkpoints) {
  for (const auto& e : fs::directory_iterator(checkpoints)) {
    const std::string name = e.path().filename().string();
    ASSERT_TRUE(checkpoint_dir_step(e.path()).has_value()) << "left over: " << e.path();
    for (const char* f :
         {"config.json", "model.safetensors", "trainer_state.safetensors", "trainer_state.json"}) {
      EXPECT_TRUE(fs::exists(e.path() / f)) << e.path() << " lacks " << f;
    }
  }
}

// The tiny model has max_position_embeddings 64: windows of 65 tokens predict 64.
TEST_F(Reliability, TrainsAtTheModelsFullContextLength) {
  write_run_config(dir_.path(), "", "run.yaml", {{"seq_len", "64"}, {"steps", "3"}});
  const auto r = train("run.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = train_rows(dir_ / "run");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].tokens, 4 * 64);
  const auto over = train("run.yaml", "--set run.dir=over --set train.seq_len=65");
  EXPECT_EQ(over.exit_code, 1);
  EXPECT_NE(over.err.find("max_position_embeddings (64)"), std::string::npos) << over.err;
}

// Two starts on one run.dir: one trains, the other is refused naming the holder, at any
// spacing of the two starts.
TEST_F(Reliability, TwoStartsOnOneRunDirCannotBothWrite) {
  write_run_config(dir_.path(), "checkpoint: {every: 1, keep_last: 2}\n", "run.yaml",
                   {{"steps", "120"}});
  for (const int gap_ms : {0, 50}) {
    const std::string dir = "shared" + std::to_string(gap_ms);
    const pid_t a = spawn_quantfork("train --config run.yaml --set run.dir=" + dir, dir_.path());
    std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
    const pid_t b = spawn_quantfork(
        "train --config run.yaml --set run.dir=" + dir + " --set train.seed=9", dir_.path());
    const int ca = wait_exit_code(a), cb = wait_exit_code(b);
    const std::string log = read_file(dir_ / "child.log");
    EXPECT_EQ((ca == 0) + (cb == 0), 1) << "exit codes " << ca << ", " << cb << "\n" << log;
    EXPECT_EQ((ca == 1) + (cb == 1), 1) << log;
    EXPECT_NE(log.find("is in use by another quantfork process (pid "), std::string::npos) << log;
    const auto rows = train_rows(dir_ / dir);
    ASSERT_EQ(rows.size(), 120u);
    const std::string config = read_file(dir_ / dir / "config.yaml");
    EXPECT_NE(config.find(ca == 0 ? "seed: 3" : "seed: 9"), std::string::npos) << config;
    expect_only_whole_checkpoints(dir_ / dir / "checkpoints");
    fs::remove(dir_ / "child.log");
  }
}

// A kill while a checkpoint is being pruned leaves no half-deleted step<N> (it used to
// leave e.g. step159/ with config.json alone), and the next start clears the leftover.
TEST_F(Reliability, AKillWhilePruningLeavesNoHalfDeletedCheckpoint) {
  write_run_config(dir_.path(), "checkpoint: {every: 1, keep_last: 1}\n");
  write_run_config(dir_.path(), "", "straight.yaml");
  ASSERT_EQ(train("straight.yaml", "--set run.dir=straight").exit_code, 0);
  const pid_t pid =
      spawn_quantfork("train --config run.yaml", dir_.path(), {"QF_FAULT=crash_in_prune"});
  EXPECT_EQ(wait_exit_code(pid), 137);
  EXPECT_TRUE(fs::exists(dir_ / "run/checkpoints/.step1.deleting"));
  EXPECT_EQ(train::list_checkpoints(dir_ / "run/checkpoints").back().step, 2);
  for (const auto& e : fs::directory_iterator(dir_ / "run/checkpoints")) {
    if (e.path().filename().string()[0] == '.') continue;
    EXPECT_TRUE(fs::exists(e.path() / "trainer_state.json")) << e.path();
  }
  const auto r = train("run.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_only_whole_checkpoints(dir_ / "run/checkpoints");
  expect_same_rows(train_rows(dir_ / "straight"), train_rows(dir_ / "run"));
}

// run.h5 destroyed between two sessions (what a kill inside an HDF5 write can do): the
// resume rebuilds it from its journal and loses no row.
TEST_F(Reliability, ADamagedRunFileIsRebuiltOnResume) {
  write_run_config(dir_.path(), "checkpoint: {every: 4}\n", "run.yaml", {{"steps", "8"}});
  write_run_config(dir_.path(), "", "straight.yaml", {{"steps", "12"}});
  ASSERT_EQ(train("straight.yaml", "--set run.dir=straight").exit_code, 0);
  ASSERT_EQ(train("run.yaml").exit_code, 0);
  write_file(dir_ / "run/run.h5", std::string(5000, '\x17'));
  const auto r = train("run.yaml", "--set train.steps=12");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("run.h5 was damaged"), std::string::npos) << r.err;
  expect_same_rows(train_rows(dir_ / "straight"), train_rows(dir_ / "run"));
}

// The short kill-anywhere loop: kill -9 at random moments of a run that checkpoints and
// prunes every update, resume each time; the run file and checkpoints end up exactly as
// an uninterrupted run's.
TEST_F(Reliability, KillsAtRandomMomentsLoseNothing) {
  write_run_config(dir_.path(), "checkpoint: {every: 1, keep_last: 2}\n", "run.yaml",
                   {{"steps", "80"}});
  write_run_config(dir_.path(), "", "straight.yaml", {{"steps", "80"}});
  ASSERT_EQ(train("straight.yaml", "--set run.dir=straight").exit_code, 0);
  std::mt19937 rng(20261204);
  std::uniform_int_distribution<int> delay_ms(100, 900);
  int kills = 0;
  for (int i = 0; i < 12; ++i) {
    const pid_t pid = spawn_quantfork("train --config run.yaml", dir_.path());
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ::kill(pid, SIGKILL);
    const int code = wait_exit_code(pid);
    ASSERT_TRUE(code == 0 || code == 128 + SIGKILL) << code << read_file(dir_ / "child.log");
    if (code != 0) ++kills;
  }
  EXPECT_GE(kills, 6);
  const auto r = train("run.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_rows(train_rows(dir_ / "straight"), train_rows(dir_ / "run"));
  expect_only_whole_checkpoints(dir_ / "run/checkpoints");
}

TEST_F(Reliability, ResumingWithFewerStepsThanDoneIsRefusedAndAFinishedRunSaysSo) {
  write_run_config(dir_.path(), "", "run.yaml", {{"steps", "6"}});
  ASSERT_EQ(train("run.yaml").exit_code, 0);
  const float last = train_rows(dir_ / "run").back().loss;
  const auto fewer = train("run.yaml", "--set train.steps=4");
  EXPECT_EQ(fewer.exit_code, 2);
  EXPECT_NE(fewer.err.find("it holds 6 updates of this run, more than key 'train.steps'"),
            std::string::npos)
      << fewer.err;
  const auto again = train("run.yaml");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("already holds all 6 updates"), std::string::npos) << again.out;
  std::ostringstream loss;
  loss << last;
  EXPECT_NE(again.out.find("final loss " + loss.str()), std::string::npos) << again.out;
}

TEST_F(Reliability, ConfigDocsNeedNoRequiredKeysAndAFolderIsNoConfig) {
  const auto docs = run_quantfork("train --dump-config-docs", dir_.path());
  EXPECT_EQ(docs.exit_code, 0) << docs.err;
  EXPECT_NE(docs.out.find("train:"), std::string::npos);
  EXPECT_NE(docs.out.find("(required)"), std::string::npos);
  const auto folder = train(dir_.path().string());
  EXPECT_EQ(folder.exit_code, 2);
  EXPECT_NE(folder.err.find("is a directory"), std::string::npos) << folder.err;
}

}  // namespace
}  // namespace qf::test
