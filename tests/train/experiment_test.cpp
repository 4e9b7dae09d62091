// `quantfork experiment` end to end on the tiny model: the shared probe plan in every run,
// the layout of interfaces.md, finished runs skipped on a second launch, bad configs.
#include <yaml-cpp/yaml.h>

#include <cmath>
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
  data_start_item: 0               # the base trained on all of this tiny dataset
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
  ASSERT_EQ(r.exit_code, 0) << r.err << read_file(dir_ / "out/tiny/cosine/seed1/stdout.txt");
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
  r = run_quantfork(
      "experiment --config fork.yaml --set experiment.base=audit:pre_divergence "
      "--plan-only",
      dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("experiment.audit"), std::string::npos) << r.err;
  r = run_quantfork("experiment --config fork.yaml --set 'experiment.arms=[{name: a}]' --plan-only",
                    dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("experiment.arms.0"), std::string::npos) << r.err;
}

// fork.yaml with `from` replaced by `to`, as `name`.
void write_variant(const TempDir& dir, const std::string& name, const std::string& from,
                   const std::string& to) {
  std::string text = read_file(dir / "fork.yaml");
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  write_file(dir / name, text.replace(at, from.size(), to));
}

// Keys under an arm's `set` are checked when the experiment is planned: exit 2 naming the
// key and the arm before any run starts or any run folder is made.
TEST_F(Experiment, ABadKeyUnderAnArmsSetIsAConfigErrorBeforeAnyRun) {
  write_variant(dir_, "typo.yaml", "{name: sgdr,", "{name: sgdr, set: {train.stepz: 3},");
  const auto r = run_quantfork("experiment --config typo.yaml", dir_.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("train.stepz"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("arm 'sgdr'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out/tiny/cosine")) << "a run folder was made";
  write_variant(dir_, "type.yaml", "{name: oli,", "{name: oli, set: {train.seq_len: long},");
  const auto wrong_type = run_quantfork("experiment --config type.yaml --plan-only", dir_.path());
  EXPECT_EQ(wrong_type.exit_code, 2) << wrong_type.err;
  EXPECT_NE(wrong_type.err.find("train.seq_len"), std::string::npos) << wrong_type.err;
}

TEST_F(Experiment, ArmNamesAreOnePlainPathComponent) {
  for (const std::string name : {"../../escape", "a/b", ".hidden", ""}) {
    write_variant(dir_, "named.yaml", "{name: cosine,", "{name: \"" + name + "\",");
    const auto r = run_quantfork("experiment --config named.yaml --plan-only", dir_.path());
    EXPECT_EQ(r.exit_code, 2) << name << ": " << r.err;
    EXPECT_NE(r.err.find("experiment.arms.0.name"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_.path().parent_path() / "escape"));
}

// A fork from the audit's pre-divergence checkpoint at a step other than the one a
// config was written for: every base-dependent value follows the base actually used,
// and the data sample starts after what the base was trained on.
TEST_F(Experiment, EverythingThatDependsOnTheBaseFollowsTheAuditsPick) {
  write_run_config(dir_.path(), "checkpoint: {every: 2, keep_last: 5}\n", "traj.yaml",
                   {{"steps", "6"}});
  ASSERT_EQ(run_quantfork("train --config traj.yaml --set run.dir=traj", dir_.path()).exit_code, 0);
  {
    AuditFile audit = AuditFile::create((dir_ / "audit.h5").string(), {}, "");
    AuditLandmarks lm;
    lm.fp32_convergence_step = 2;
    lm.divergence_onset_step = 4;
    lm.pre_divergence_step = 4;
    audit.write_landmarks(lm);
  }
  const std::string cont =
      "{name: pythia_cosine, max_lr: 1.0e-2, min_lr: 1.0e-3, warmup_steps: 2, decay_steps: 40, "
      "step_offset: $base_step}";
  write_file(dir_ / "audit_fork.yaml", R"(
experiment:
  name: picked
  out: out
  base: audit:pre_divergence
  audit: audit.h5
  base_pattern: traj/checkpoints/step{step}
  base_items_per_step: 3
  seeds: [1]
  continuation: )" + cont + R"(
  arms:
    - {name: cosine, schedule: &c )" + cont +
                                           R"(}
    - {name: sgdr, schedule: {name: sgdr, max_lr: $continuation_lr, min_lr: 1.0e-3, t0: 4}}
    - {name: oli, schedule: &oli {name: oli, envelope: *c, period: 6}}
    - {name: cosine_matched, schedule: {name: matched_mean, schedule: *c, match: *oli}}
model: {config: tiny_config.json}
train: {steps: 12, global_batch: 2, seq_len: 16}
data: {dataset: tokens}
)");
  const auto r = run_quantfork("experiment --config audit_fork.yaml --plan-only", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto run_config = [&](const std::string& arm) {
    return YAML::LoadFile((dir_ / "out/picked" / arm / "seed1/run_config.yaml").string());
  };
  const YAML::Node cosine = run_config("cosine");
  EXPECT_EQ(cosine["model"]["base_step"].as<int64_t>(), 4);
  EXPECT_EQ(fs::path(cosine["model"]["init"].as<std::string>()).filename(), "step4");
  EXPECT_EQ(cosine["schedule"]["step_offset"].as<int64_t>(), 4);
  // Unseen data: items from 4 x 3 on.
  EXPECT_EQ(cosine["data"]["start_item"].as<int64_t>(), 12);
  EXPECT_EQ(run_config("oli")["schedule"]["envelope"]["step_offset"].as<int64_t>(), 4);
  // SGDR restarts at the continuation's rate at step 4: gpt-neox's cosine, written out.
  const double n = 4, expected = std::max(1e-3, 1e-2 / 2 * (1 + std::cos(M_PI * (n - 2) / 40)));
  EXPECT_DOUBLE_EQ(run_config("sgdr")["schedule"]["max_lr"].as<double>(), expected);
  EXPECT_EQ(
      run_config("cosine_matched")["schedule"]["match"]["envelope"]["step_offset"].as<int64_t>(),
      4);

  // Unseen items beyond the dataset: a configuration error before any run.
  const auto beyond = run_quantfork(
      "experiment --config audit_fork.yaml --plan-only --set experiment.base_items_per_step=100",
      dir_.path());
  EXPECT_EQ(beyond.exit_code, 2) << beyond.err;
  EXPECT_NE(beyond.err.find("would read from item 400"), std::string::npos) << beyond.err;
  EXPECT_NE(beyond.err.find("experiment.base_items_per_step"), std::string::npos) << beyond.err;

  // A config that pins the continuation to another step is refused, naming both.
  std::string pinned = read_file(dir_ / "audit_fork.yaml");
  pinned.replace(pinned.find("step_offset: $base_step}\n  arms"), 24, "step_offset: 6}");
  write_file(dir_ / "pinned.yaml", pinned);
  const auto p = run_quantfork("experiment --config pinned.yaml --plan-only", dir_.path());
  EXPECT_EQ(p.exit_code, 2) << p.err;
  EXPECT_NE(p.err.find("experiment.continuation.step_offset"), std::string::npos) << p.err;
  EXPECT_NE(p.err.find("pins this cosine to step 6, but the fork's base is step 4"),
            std::string::npos)
      << p.err;
}

// The shipped configs resolve (every key known, every value of the right type).
TEST(ShippedConfigs, Resolve) {
  const fs::path configs = fs::path(QF_SOURCE_DIR) / "experiments/configs";
  for (const auto& [command, file] :
       std::vector<std::pair<std::string, std::string>>{{"experiment", "pythia160m_fork.yaml"},
                                                        {"audit", "pythia160m_audit.yaml"},
                                                        {"demo", "demo.yaml"}}) {
    const auto r =
        run_quantfork(command + " --config " + (configs / file).string() + " --dump-config");
    EXPECT_EQ(r.exit_code, 0) << file << ": " << r.err;
  }
}

}  // namespace
}  // namespace qf::test
