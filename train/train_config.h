#pragma once
// The training configuration (`run`, `model`, `train`, `optimizer`, `schedule`, `data`,
// `checkpoint`, `dist` sections), declared with its documentation in one place and read
// into TrainOptions. Which of these keys may not change when a run resumes is decided
// here too: the schema marks them (defines_result), resume_fingerprint_keys reads them.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "data/batches.h"
#include "train/optimizer.h"
#include "train/weight_ema.h"

namespace qf::train {

enum class OnNonFinite { kStop, kSkip };
enum class ResumePolicy { kAuto, kNever, kRequire };
const EnumNames<ResumePolicy>& resume_policy_names();  // run.resume: auto, never, require
enum class Precision { kAuto, kFloat32, kBf16 };

struct TrainOptions {
  // run
  std::filesystem::path dir;  // run directory: config.yaml, run.h5, log.txt, checkpoints/
  std::string experiment, arm;
  ResumePolicy resume = ResumePolicy::kAuto;
  // model
  std::optional<std::filesystem::path> init;          // HF checkpoint to start from
  int64_t base_step = -1;                             // -1: from init's name (stepN), else 0
  std::string preset;                                 // Pythia size, for training from scratch
  std::optional<std::filesystem::path> model_config;  // or a config.json
  std::string device = "cpu";
  // train
  int64_t steps = 0;
  int64_t global_batch = 4;
  int64_t micro_batch = 0;  // 0: a rank's whole share in one pass
  int64_t seq_len = 2048;
  int64_t seed = 1234;
  int threads = 0;
  int64_t log_every = 1;
  bool tensorboard = true;  // log.tensorboard: event files in dir/tb/ (core/run_events.h)
  OnNonFinite on_nan = OnNonFinite::kStop;
  int64_t inject_nan_at_step = -1;  // debug.inject_nan_at_step
  Precision precision = Precision::kAuto;
  EmaOptions ema;  // train.ema: the weight average kept during training (weight_ema.h)
  // optimizer
  AdamWOptions adamw;
  // data
  std::filesystem::path dataset;
  data::BatchOrder order = data::BatchOrder::kSeeded;
  int64_t start_item = 0;
  int64_t windows = 0;  // data.windows: the first N windows only (0: all)
  // checkpoint
  int64_t checkpoint_every = 0;
  std::vector<int64_t> checkpoint_at;  // global steps
  int64_t keep_last = 2;
  std::vector<int64_t> keep_steps;
  // dist
  double timeout_s = 600;
  double bucket_mb = 25;
  bool allow_world_size_change = false;
};

void declare_train_config(ConfigSchema& schema);
// The options of a resolved config (resolve() has checked each value's choices and range;
// this checks what spans several keys, e.g. exactly one model source).
TrainOptions train_options(const Config& config);

// The values of the keys that define what a run computes: the fields the schema marks
// defines_result in the model, train, optimizer, schedule and data sections (model, data,
// batch, seed, optimizer, schedule). A resumed run must have the same, or its losses would
// not be the ones an uninterrupted run logs. `train.steps`, checkpoints, logging and the
// probe may change (the probe counts too when the divergence monitor acts on it).
nlohmann::json resume_fingerprint_keys(const Config& config);
std::string fingerprint_of(const nlohmann::json& keys);
// "train.seed: 1 (checkpoint) vs 2 (now); ..." for the keys whose values differ; "" when
// none does. A key one side does not record counts as its default.
std::string fingerprint_differences(const ConfigSchema& schema, const nlohmann::json& stored,
                                    const nlohmann::json& now);

}  // namespace qf::train
