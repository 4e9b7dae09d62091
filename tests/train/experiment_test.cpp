// `quantfork experiment` end to end on the tiny model: the shared probe plan in every run,
// the layout of interfaces.md, finished runs skipped on a second launch, bad configs.
#include <set>

#include "train_test_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

class Experiment : public ::testing::Test {
 protected:
  void SetUp() override {
    make_dataset(dir_.path());
    make_model_config(dir_.path());
    // The base: a short run from scratch.
    write_run_config(dir_.path(), "", "base.yaml", {{"steps", "6"}});
    const auto r = run_quantfork("train --config base.yaml --set run.dir=base", dir_.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    write_file(dir_ / "fork.yaml", R"(
experiment:
  name: tiny
  out: out
  base: base/checkpoints/step6
  seeds: [1, 2]
  parallel: 2
  threads_per_run: 1
  arms:
    - {name: cosine, schedule: {name: pythia_cosine, max_lr: 1.0e-2, min_lr: 1.0e-3, warmup_steps: 2, decay_steps: 40, step_offset: 6}}
    - {name: sgdr, schedule: {name: sgdr, max_lr: 1.0e-2, min_lr: 1.0e-3, t0: 4, t_mult: 2}}
    - {name: oli, schedule: {name: oli, envelope: {name: pythia_cosine, max_lr: 1.0e-2, min_lr: 1.0e-3, warmup_steps: 2, decay_steps: 40, step_offset: 6}, period: 6}}
model: {config: tiny_config.json}
train: {steps: 14, global_batch: 2, seq_len: 16}
data: {dataset: tokens}
probe:
  enabled: true
  every: 5
  int4_scheme: int4_asym_g32
  eval: {dataset: tokens, sequences: 4, seq_len: 16}
)");
  }
  TempDir dir_;
};

TEST_F(Experiment, EveryRunProbesTheSharedPlanAndRelaunchSkipsFinishedRuns) {
  auto r = run_quantfork("experiment --config fork.yaml", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<int64_t> first;
  for (const char* arm : {"cosine", "sgdr", "oli"}) {
    for (int seed : {1, 2}) {
      const fs::path run = dir_ / "out/tiny" / arm / ("seed" + std::to_string(seed));
      ASSERT_TRUE(fs::exists(run / "run.h5")) << run;
      auto file = RunFile::open_read_only((run / "run.h5").string());
      EXPECT_EQ(file.attributes().arm, arm);
      EXPECT_EQ(file.attributes().seed, seed);
      EXPECT_EQ(file.attributes().start_step, 6);
      std::set<int64_t> steps;
      for (const auto& p : file.read_probe()) steps.insert(p.step);
      if (first.empty()) first = steps;
      EXPECT_EQ(steps, first) << run;
      EXPECT_TRUE(fs::exists(run / "checkpoints/step20/trainer_state.json")) << run;
      EXPECT_TRUE(fs::exists(run / "config.yaml"));
    }
  }
  // sgdr restarts at 4 and 12, OLI cycles of 6 (settled 5, 11), every 5, the last (13).
  for (int64_t s : {0, 4, 5, 10, 11, 12, 13}) EXPECT_TRUE(first.count(s)) << "step " << s;
  EXPECT_TRUE(fs::exists(dir_ / "out/tiny/probe_plan.csv"));
  r = run_quantfork("experiment --config fork.yaml", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("finished already, skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("0 run(s) to do of 6"), std::string::npos) << r.err;
}

TEST_F(Experiment, BadConfigsAreNamed) {
  auto r = run_quantfork("experiment --config fork.yaml --set experiment.base=nowhere --plan-only",
                         dir_.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nowhere"), std::string::npos) << r.err;
  r = run_quantfork("experiment --config fork.yaml --set experiment.base=audit:pre_divergence "
                    "--plan-only",
                    dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("experiment.audit"), std::string::npos) << r.err;
  r = run_quantfork("experiment --config fork.yaml --set 'experiment.arms=[{name: a}]' --plan-only",
                    dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("experiment.arms.0"), std::string::npos) << r.err;
}

// The shipped configs resolve (every key known, every value of the right type).
TEST(ShippedConfigs, Resolve) {
  const fs::path configs = fs::path(QF_SOURCE_DIR) / "experiments/configs";
  for (const auto& [command, file] :
       std::vector<std::pair<std::string, std::string>>{{"experiment", "pythia160m_fork.yaml"},
                                                        {"audit", "pythia160m_audit.yaml"},
                                                        {"demo", "demo.yaml"}}) {
    const auto r = run_quantfork(command + " --config " + (configs / file).string() +
                                 " --dump-config");
    EXPECT_EQ(r.exit_code, 0) << file << ": " << r.err;
  }
}

}  // namespace
}  // namespace qf::test
