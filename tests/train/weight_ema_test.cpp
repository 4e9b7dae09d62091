// train.ema through the real `quantfork train`: the average in every checkpoint equals the
// recurrence w̄ ← β·w̄ + (1 − β)·w computed here in float64 from the checkpointed weights
// of every update, it is bitwise the same after kill -9 and resume, the finished run
// writes it as an HF checkpoint, and turning it on in the middle of a run is refused.
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "core/torch/tensor_io.h"
#include "train/checkpoint.h"
#include "train_test_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

class TrainEma : public TinyRunTest {
 protected:
  CommandResult train(const std::string& config, const std::string& extra = "") {
    return run_quantfork("train --config " + config + " " + extra, dir_.path());
  }
  // β 0.8, updated after every 2nd optimizer step.
  fs::path config(const std::string& name, const std::string& checkpoints) {
    return write_run_config(dir_.path(), checkpoints, name, {{"ema", "{beta: 0.8, every: 2}"}});
  }
};

std::map<std::string, at::Tensor> averages_at(const fs::path& checkpoint) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : load_tensors(checkpoint / "trainer_state.safetensors")) {
    if (name.rfind("ema/", 0) == 0) out.emplace(name.substr(4), t);
  }
  return out;
}

TEST_F(TrainEma, EqualsTheRecurrenceOverTheCheckpointedUpdates) {
  config("run.yaml", "checkpoint: {every: 1, keep_last: 20}\n");
  const auto r = train("run.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path checkpoints = dir_ / "run/checkpoints";
  // After update 1 nothing was averaged yet (every 2): the average is still the initial
  // weights, which the reference starts from. Update 0 has lr 0 (warmup), so they are
  // also the weights of step1.
  std::map<std::string, at::Tensor> reference;
  const auto initial = averages_at(checkpoints / "step1");
  const auto step1 = load_tensors(checkpoints / "step1/model.safetensors");
  ASSERT_EQ(initial.size(), step1.size());
  for (const auto& [name, t] : initial) {
    EXPECT_TRUE(at::equal(t, step1.at(name))) << name;
    reference.emplace(name, t.to(at::kDouble));
  }
  double worst = 0;
  for (int step = 2; step <= 12; ++step) {
    const fs::path dir = checkpoints / ("step" + std::to_string(step));
    const auto weights = load_tensors(dir / "model.safetensors");
    if (step % 2 == 0) {
      for (auto& [name, avg] : reference) {
        avg = 0.8 * avg + (1.0 - 0.8) * weights.at(name).to(at::kDouble);
      }
    }
    const auto got = averages_at(dir);
    ASSERT_EQ(got.size(), reference.size());
    for (const auto& [name, avg] : reference) {
      ASSERT_EQ(got.at(name).scalar_type(), at::kFloat);
      const double diff = (got.at(name).to(at::kDouble) - avg).abs().max().item<double>();
      EXPECT_LE(diff, 1e-6) << name << " at step " << step;
      worst = std::max(worst, diff);
    }
  }
  std::printf("EMA vs float64 recurrence over 12 updates: max |diff| %.3g\n", worst);
  // An average, not the weights: it lags them.
  EXPECT_FALSE(
      at::equal(averages_at(checkpoints / "step12").at("embed_out.weight"),
                load_tensors(checkpoints / "step12/model.safetensors").at("embed_out.weight")));
  // The finished run's average as an HF checkpoint: the last checkpoint's average.
  const auto written = load_tensors(dir_ / "run/ema/model.safetensors");
  const auto last = averages_at(checkpoints / "step12");
  ASSERT_EQ(written.size(), last.size());
  for (const auto& [name, t] : written) EXPECT_TRUE(at::equal(t, last.at(name))) << name;
  const auto file = SafetensorsFile::open(dir_ / "run/ema/model.safetensors");
  EXPECT_EQ(file.metadata().at("quantfork.ema_beta"), "0.8");
  EXPECT_EQ(file.metadata().at("quantfork.ema_global_step"), "12");
  EXPECT_TRUE(fs::exists(dir_ / "run/ema/config.json"));
}

TEST_F(TrainEma, ResumeAfterKillNineIsBitwiseIdentical) {
  config("straight.yaml", "");
  ASSERT_EQ(train("straight.yaml", "--set run.dir=straight").exit_code, 0);
  config("killed.yaml", "checkpoint: {every: 3, keep_last: 5}\n");
  const pid_t pid = spawn_quantfork("train --config killed.yaml --set run.dir=killed", dir_.path());
  ASSERT_TRUE(wait_for(dir_ / "killed/checkpoints/step3", 60));
  ::kill(pid, SIGKILL);
  wait_exit_code(pid);
  const auto r = train("killed.yaml", "--set run.dir=killed");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming from"), std::string::npos) << r.err;
  const auto straight = load_tensors(dir_ / "straight/ema/model.safetensors");
  const auto resumed = load_tensors(dir_ / "killed/ema/model.safetensors");
  ASSERT_EQ(straight.size(), resumed.size());
  for (const auto& [name, t] : straight) EXPECT_TRUE(at::equal(t, resumed.at(name))) << name;
  const auto a = averages_at(dir_ / "straight/checkpoints/step12");
  const auto b = averages_at(dir_ / "killed/checkpoints/step12");
  for (const auto& [name, t] : a) EXPECT_TRUE(at::equal(t, b.at(name))) << name;
}

TEST_F(TrainEma, TurningItOnMidRunOrOutOfRangeIsAConfigError) {
  write_run_config(dir_.path(), "", "plain.yaml", {{"steps", "4"}});
  ASSERT_EQ(train("plain.yaml").exit_code, 0);
  const auto on = train("plain.yaml", "--set train.steps=8 --set train.ema.beta=0.9");
  EXPECT_EQ(on.exit_code, 2);
  EXPECT_NE(on.err.find("train.ema.beta"), std::string::npos) << on.err;
  const auto one = train("plain.yaml", "--set run.dir=other --set train.ema.beta=1");
  EXPECT_EQ(one.exit_code, 2);
  EXPECT_NE(one.err.find("train.ema.beta"), std::string::npos) << one.err;
  EXPECT_FALSE(fs::exists(dir_ / "run/ema"));  // no average, no ema/ checkpoint
}

}  // namespace
}  // namespace qf::test
