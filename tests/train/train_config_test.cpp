#include "train/train_config.h"

#include <gtest/gtest.h>

#include <set>

#include "core/config.h"
#include "experiments/run_config.h"

using namespace qf;

namespace {

Config run_config(const ConfigSchema& schema, const std::vector<std::string>& sets = {}) {
  ConfigLoader loader(schema);
  loader.add_text("run: {dir: r}\nmodel: {preset: 14m}\ntrain: {steps: 5}\ndata: {dataset: d}\n",
                  "run.yaml", "/w");
  for (const auto& s : sets) loader.add_override(s);
  return loader.resolve();
}

}  // namespace

TEST(ResumeFingerprint, TheSchemaMarksDecideWhichKeysCount) {
  ConfigSchema schema;
  experiments::declare_run_config(schema);
  const nlohmann::json keys = train::resume_fingerprint_keys(run_config(schema));
  std::set<std::string> names;
  for (const auto& [key, value] : keys.items()) names.insert(key);
  // What a checkpoint has always recorded (data.windows and train.ema.* only when set).
  const std::set<std::string> expected = {
      "model.init",          "model.base_step",    "model.preset",
      "model.config",        "train.global_batch", "train.micro_batch",
      "train.seq_len",       "train.seed",         "train.ema.beta",
      "train.ema.every",     "train.precision",    "optimizer.beta1",
      "optimizer.beta2",     "optimizer.eps",      "optimizer.weight_decay",
      "optimizer.clip_norm", "schedule",           "data.dataset",
      "data.order",          "data.start_item",    "data.windows"};
  EXPECT_EQ(names, expected);
  // The values as older checkpoints wrote them: text for paths ("" for null), numbers,
  // the schedule block as YAML text.
  EXPECT_EQ(keys.at("model.config"), "");
  EXPECT_EQ(keys.at("model.preset"), "14m");
  EXPECT_EQ(keys.at("data.dataset"), "/w/d");
  EXPECT_EQ(keys.at("model.base_step"), -1);
  EXPECT_EQ(keys.at("optimizer.beta2"), 0.95);
  EXPECT_NE(keys.at("schedule").get<std::string>().find("name: pythia_cosine"), std::string::npos);
  // The probe changes nothing a run computes, unless the monitor acts on it.
  EXPECT_FALSE(keys.contains("probe"));
  const auto acting = train::resume_fingerprint_keys(run_config(schema, {"monitor.action=stop"}));
  EXPECT_TRUE(acting.contains("probe"));
  EXPECT_TRUE(acting.contains("monitor"));
}

TEST(ResumeFingerprint, AKeyACheckpointDoesNotRecordCountsAsItsDefault) {
  ConfigSchema schema;
  experiments::declare_run_config(schema);
  const nlohmann::json now = train::resume_fingerprint_keys(run_config(schema));
  nlohmann::json older = now;
  for (const char* key : {"data.windows", "train.ema.beta", "train.ema.every"}) older.erase(key);
  EXPECT_EQ(train::fingerprint_differences(schema, older, now), "");
  // Keys that do not define the result may change.
  EXPECT_EQ(train::fingerprint_differences(
                schema, now,
                train::resume_fingerprint_keys(
                    run_config(schema, {"train.steps=9", "train.threads=2", "checkpoint.every=3",
                                        "probe.int4_scheme=int3_asym_g128", "model.device=cuda"}))),
            "");
  EXPECT_EQ(train::fingerprint_differences(schema, older,
                                           train::resume_fingerprint_keys(run_config(
                                               schema, {"data.windows=7", "train.seed=2"}))),
            "data.windows: 0 (checkpoint) vs 7 (now); train.seed: 1234 (checkpoint) vs 2 (now)");
}
