// The training loop end to end, through the real `quantfork train`: exact resume after
// kill -9 and after SIGTERM, learning rates equal to the schedule's formula, checkpoints
// that `quantfork logits` loads, non-finite values, a crash while writing a checkpoint,
// incompatible resumes.
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/torch/tensor_io.h"
#include "data/batches.h"
#include "train/checkpoint.h"
#include "train_test_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

class TrainRun : public ::testing::Test {
 protected:
  void SetUp() override {
    make_dataset(dir_.path());
    make_model_config(dir_.path());
  }
  CommandResult train(const std::string& config, const std::string& extra = "") {
    return run_quantfork("train --config " + config + " " + extra, dir_.path());
  }
  TempDir dir_;
};

void expect_same_losses(const std::vector<TrainRow>& a, const std::vector<TrainRow>& b,
                        int64_t from) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].step, b[i].step);
    if (a[i].step < from) continue;
    // Bitwise: same weights, moments, data and thread count give the same float32 loss.
    EXPECT_EQ(a[i].loss, b[i].loss) << "step " << a[i].step;
    EXPECT_EQ(a[i].grad_norm, b[i].grad_norm) << "step " << a[i].step;
    EXPECT_EQ(a[i].lr, b[i].lr) << "step " << a[i].step;
  }
}

TEST_F(TrainRun, LearnsAndLogsEveryStepWithTheScheduleFormula) {
  write_run_config(dir_.path());
  const auto r = train("run.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = train_rows(dir_ / "run");
  ASSERT_EQ(rows.size(), 12u);
  for (const auto& row : rows) {
    // gpt-neox's AnnealingLR with warmup 2, decay 20 (pythia.md), written out here.
    const double n = static_cast<double>(row.step);
    const double m = std::min(n, 20.0 - 2.0);
    const double lr =
        n <= 2 ? 1e-2 * m / 2 : std::max(1e-3, 1e-2 / 2 * (1 + std::cos(M_PI * (m - 2) / 20)));
    EXPECT_DOUBLE_EQ(row.lr, lr) << "step " << row.step;
    EXPECT_EQ(row.tokens, (row.step + 1) * 4 * 16);
  }
  EXPECT_LT(rows.back().loss, rows.front().loss - 0.5);
  EXPECT_TRUE(fs::exists(dir_ / "run/checkpoints/step12/trainer_state.json"));
  EXPECT_TRUE(fs::exists(dir_ / "run/config.yaml"));
  EXPECT_TRUE(fs::exists(dir_ / "run/log.txt"));
}

// Train K + M updates straight; train again, kill -9 after checkpoint K, resume: the last
// M losses are bitwise the same.
TEST_F(TrainRun, ResumeAfterKillNineIsBitwiseIdentical) {
  write_run_config(dir_.path(), "", "straight.yaml");
  ASSERT_EQ(train("straight.yaml", "--set run.dir=straight").exit_code, 0);
  const auto straight = train_rows(dir_ / "straight");
  for (const int k : {3, 7}) {
    const std::string run = "killed" + std::to_string(k);
    write_run_config(dir_.path(), "checkpoint: {every: " + std::to_string(k) + ", keep_last: 5}\n",
                     run + ".yaml");
    const pid_t pid =
        spawn_quantfork("train --config " + run + ".yaml --set run.dir=" + run, dir_.path());
    ASSERT_TRUE(wait_for(dir_ / run / "checkpoints" / ("step" + std::to_string(k)), 60));
    ::kill(pid, SIGKILL);
    wait_exit_code(pid);
    const auto r = train(run + ".yaml", "--set run.dir=" + run);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("resuming from"), std::string::npos) << r.err;
    expect_same_losses(straight, train_rows(dir_ / run), k);
  }
}

TEST_F(TrainRun, SigtermFinishesTheStepCheckpointsAndExitsZero) {
  write_run_config(dir_.path(), "", "long.yaml", {{"steps", "400"}});
  write_run_config(dir_.path(), "", "straight.yaml", {{"steps", "400"}});
  const pid_t pid = spawn_quantfork("train --config long.yaml --set run.dir=stopped", dir_.path());
  ASSERT_TRUE(wait_for(dir_ / "stopped/run.h5", 60));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(pid, SIGTERM);
  ASSERT_EQ(wait_exit_code(pid), 0) << read_file(dir_ / "child.log");
  const auto ckpts = train::list_checkpoints(dir_ / "stopped/checkpoints");
  ASSERT_EQ(ckpts.size(), 1u);
  const int64_t stopped_at = ckpts[0].step;
  ASSERT_LT(stopped_at, 400);
  EXPECT_EQ(train_rows(dir_ / "stopped").back().step, stopped_at - 1);
  ASSERT_EQ(train("long.yaml", "--set run.dir=stopped").exit_code, 0);
  ASSERT_EQ(train("straight.yaml", "--set run.dir=straight").exit_code, 0);
  expect_same_losses(train_rows(dir_ / "straight"), train_rows(dir_ / "stopped"), stopped_at);
}

// The checkpoint's HF directory loads in `quantfork logits`, and its loss on the batch the
// next update would read equals the loss training logs for that update.
TEST_F(TrainRun, CheckpointLoadsInLogitsWithTheTrainingLoss) {
  write_run_config(dir_.path(), "checkpoint: {every: 5, keep_last: 3}\n");
  ASSERT_EQ(train("run.yaml").exit_code, 0);
  const auto rows = train_rows(dir_ / "run");
  auto dataset =
      std::make_shared<const data::IndexedDataset>(data::IndexedDataset::open(dir_ / "tokens"));
  data::BatchCursor cursor;
  cursor.order = data::BatchOrder::kSeeded;
  cursor.seq_len = 16;
  cursor.global_batch = 4;
  cursor.seed = 3;
  data::BatchReader reader(dataset, cursor);
  const data::Batch batch = reader.batch(5);
  nlohmann::json ids = nlohmann::json::array();
  for (int64_t r = 0; r < batch.data.rows; ++r) {
    ids.push_back(std::vector<int64_t>(batch.data.row(r), batch.data.row(r) + 17));
  }
  write_file(dir_ / "ids.json", ids.dump());
  const auto r = run_quantfork(
      "logits --model run/checkpoints/step5 --ids ids.json --out out.safetensors", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const float loss = load_tensors(dir_ / "out.safetensors").at("loss").item<float>();
  EXPECT_NEAR(loss, rows[5].loss, 1e-5 * std::abs(rows[5].loss));
}

TEST_F(TrainRun, NanStopsWithTheStepAndKeepsTheGoodCheckpoint) {
  write_run_config(dir_.path(), "checkpoint: {every: 2}\ndebug: {inject_nan_at_step: 5}\n");
  const auto r = train("run.yaml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("update 5"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nan"), std::string::npos) << r.err;
  const auto ckpts = train::list_checkpoints(dir_ / "run/checkpoints");
  ASSERT_FALSE(ckpts.empty());
  EXPECT_EQ(ckpts.back().step, 4);
  write_file(dir_ / "ids.json", "[[1, 2, 3, 4, 5]]");
  EXPECT_EQ(run_quantfork("logits --model run/checkpoints/step4 --ids ids.json --out o.safetensors",
                          dir_.path())
                .exit_code,
            0);
}

TEST_F(TrainRun, NanSkippedWhenConfigured) {
  write_run_config(dir_.path(), "debug: {inject_nan_at_step: 5}\n", "run.yaml",
                   {{"on_nan", "skip"}});
  const auto r = train("run.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("skipped 1"), std::string::npos) << r.out;
  const auto rows = train_rows(dir_ / "run");
  EXPECT_TRUE(std::isnan(rows[5].loss));
  EXPECT_TRUE(std::isfinite(rows[11].loss));
}

TEST_F(TrainRun, CrashWhileWritingACheckpointLeavesThePreviousOne) {
  write_run_config(dir_.path(), "checkpoint: {every: 4, keep_last: 1}\n");
  write_run_config(dir_.path(), "", "straight.yaml");
  ASSERT_EQ(train("straight.yaml", "--set run.dir=straight").exit_code, 0);
  // The first checkpoint (step4) is written; the crash comes inside the second (step8).
  const pid_t pid = spawn_quantfork("train --config run.yaml", dir_.path(),
                                    {"QF_FAULT=crash_in_checkpoint_write:8"});
  EXPECT_EQ(wait_exit_code(pid), 137);
  const auto ckpts = train::list_checkpoints(dir_ / "run/checkpoints");
  ASSERT_EQ(ckpts.size(), 1u);
  EXPECT_EQ(ckpts[0].step, 4);
  EXPECT_TRUE(fs::exists(dir_ / "run/checkpoints/.step8.tmp"));
  const auto r = train("run.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "run/checkpoints/.step8.tmp"));
  expect_same_losses(train_rows(dir_ / "straight"), train_rows(dir_ / "run"), 4);
}

TEST_F(TrainRun, ResumeRefusesAChangedConfigNamingTheKey) {
  write_run_config(dir_.path(), "checkpoint: {every: 4}\n", "run.yaml", {{"steps", "4"}});
  ASSERT_EQ(train("run.yaml").exit_code, 0);
  const auto r = train("run.yaml", "--set train.steps=8 --set train.seed=9");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("train.seed: 3 (checkpoint) vs 9 (now)"), std::string::npos) << r.err;
  // Only more steps: fine, it goes on.
  EXPECT_EQ(train("run.yaml", "--set train.steps=8").exit_code, 0);
  EXPECT_EQ(train_rows(dir_ / "run").size(), 8u);
}

TEST_F(TrainRun, BadConfigsAreNamed) {
  write_run_config(dir_.path());
  auto r = train("run.yaml", "--set train.on_nan=ignore");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("train.on_nan"), std::string::npos) << r.err;
  r = train("run.yaml", "--set model.preset=160m");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("exactly one of model.init"), std::string::npos) << r.err;
  r = train("run.yaml", "--set train.global_batch=0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("train.global_batch"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qf::test
