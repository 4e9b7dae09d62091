#include "train/train_config.h"

#include <sstream>

#include "core/errors.h"
#include "core/run_events.h"

namespace qf::train {

void declare_train_config(ConfigSchema& s) {
  declare_tensorboard_config(s);
  s.optional("run.dir", FieldType::Path, "null",
             "Run directory (required by train; an experiment sets it per run): config.yaml, "
             "run.h5, log.txt and checkpoints/step<N>/ go here.")
      .optional("run.experiment", FieldType::String, "''", "Experiment name (run.h5 attribute).")
      .optional("run.arm", FieldType::String, "''", "Arm name (run.h5 attribute).")
      .optional("run.resume", FieldType::String, "auto",
                "auto: go on from the newest checkpoint in run.dir when there is one; never: "
                "refuse to start when run.dir already holds a run; require: fail without one.")
      .optional("model.init", FieldType::Path, "null",
                "Hugging Face checkpoint directory to start from (e.g. a Pythia stepN "
                "revision); null: initialize from scratch (model.preset or model.config).")
      .optional("model.base_step", FieldType::Int, "-1",
                "Global step of model.init (updates it has had); -1: read from its directory "
                "name (stepN), else 0.")
      .optional("model.preset", FieldType::String, "''",
                "Pythia size to initialize from scratch (14m, 31m, 70m, 160m, ...).")
      .optional("model.config", FieldType::Path, "null",
                "Or a Hugging Face config.json to initialize from scratch.")
      .optional("model.device", FieldType::String, "cpu",
                "cpu, cuda or cuda:N; with several ranks per node, cuda means cuda:LOCAL_RANK.")
      .required("train.steps", FieldType::Int, "Optimizer updates in this run.")
      .optional("train.global_batch", FieldType::Int, "4",
                "Sequences per update over all ranks (Pythia: 1024; the fork: 4).")
      .optional("train.micro_batch", FieldType::Int, "0",
                "Sequences per forward pass on one rank (gradient accumulation); 0: a rank's "
                "whole share at once.")
      .optional("train.seq_len", FieldType::Int, "2048", "Tokens predicted per sequence (T).")
      .optional("train.seed", FieldType::Int, "1234",
                "Fixes the data sample and order (data.order: seeded), the initialization "
                "from scratch and any randomness; same seed across arms, same data.")
      .optional("train.threads", FieldType::Int, "0",
                "CPU threads for libtorch; 0: libtorch's default (all cores).")
      .optional("train.log_every", FieldType::Int, "1", "Write a /train row every N updates.")
      .optional("train.on_nan", FieldType::String, "stop",
                "A NaN or Inf loss or gradient norm: stop (error naming the step, no checkpoint "
                "written) or skip (drop that update, log it, go on).")
      .optional("train.ema.beta", FieldType::Float, "0",
                "Keep an exponential moving average of the weights, w_avg <- beta * w_avg + "
                "(1 - beta) * w after every train.ema.every optimizer steps (float32, on the "
                "weights' device; saved in every checkpoint, written as run.dir/ema/ at the "
                "end). 0: none; else in (0, 1), e.g. 0.999.")
      .optional("train.ema.every", FieldType::Int, "1",
                "Optimizer steps between updates of the weight average (counted over the run).")
      .optional("train.inject_nan_at_step", FieldType::Int, "-1",
                "Testing the fault handling: make the loss of this run step NaN (-1: never).")
      .optional("train.precision", FieldType::String, "auto",
                "auto (bf16 autocast with float32 master weights on GPUs, float32 on CPUs), "
                "float32 or bf16.")
      .optional("optimizer.beta1", FieldType::Float, "0.9", "Adam beta1 (Pythia: 0.9).")
      .optional("optimizer.beta2", FieldType::Float, "0.95", "Adam beta2 (Pythia: 0.95).")
      .optional("optimizer.eps", FieldType::Float, "1.0e-8", "Adam epsilon (Pythia: 1e-8).")
      .optional("optimizer.weight_decay", FieldType::Float, "0.1",
                "Decoupled weight decay on weights and embeddings; none on biases and "
                "LayerNorms (Pythia: 0.1).")
      .optional("optimizer.clip_norm", FieldType::Float, "1.0",
                "Global gradient-norm clipping (Pythia: 1.0); 0: none.")
      .optional("schedule", FieldType::Block,
                "{name: pythia_cosine, max_lr: 6.0e-4, min_lr: 6.0e-5, warmup_steps: 1430, "
                "decay_steps: 143000, step_offset: 0}",
                "Learning-rate schedule block {name: ..., parameters} (quantfork schedule "
                "--list); it sees this run's update index, 0 at the start or the fork.")
      .required("data.dataset", FieldType::Path,
                "Indexed dataset (.bin/.idx prefix) to train on, e.g. Pythia's pre-shuffled Pile.")
      .optional("data.order", FieldType::String, "seeded",
                "sequential: windows in order (Pythia's order with global_batch 1024); "
                "seeded: a permutation fixed by train.seed, new each epoch.")
      .optional("data.start_item", FieldType::Int, "0",
                "Item the windows start at (Pythia stepN fork in sequential order: N * 1024).")
      .optional("data.windows", FieldType::Int, "0",
                "Train on the first N windows of seq_len + 1 tokens from data.start_item only "
                "(0: all): a smaller corpus read for more epochs, e.g. to study what "
                "memorisation does to the quantization gap. Its validation set stays apart.")
      .optional("checkpoint.every", FieldType::Int, "0",
                "Write a checkpoint every N updates of this run (0: only at_steps, the end "
                "and on a stop signal).")
      .optional("checkpoint.at_steps", FieldType::IntList, "[]",
                "Global steps to checkpoint at (e.g. Pythia's 1, 2, 4, ..., 512, 1000, ...); "
                "these are always kept.")
      .optional("checkpoint.keep_last", FieldType::Int, "2",
                "Keep the newest N checkpoints (besides at_steps and keep_steps).")
      .optional("checkpoint.keep_steps", FieldType::IntList, "[]",
                "Global steps whose checkpoints are never deleted.")
      .optional("dist.timeout_s", FieldType::Float, "600",
                "Seconds a rank waits for the others before failing with the missing rank's "
                "number.")
      .optional("dist.bucket_mb", FieldType::Float, "25", "Gradient all-reduce bucket size (MB).")
      .optional("dist.allow_world_size_change", FieldType::Bool, "false",
                "Let a run resume with a different number of ranks (same global batch).");
}

namespace {

[[noreturn]] void bad(const Config& c, const std::string& key, const std::string& what) {
  throw ConfigError("config " + c.where(key) + ": " + what);
}

int64_t positive(const Config& c, const std::string& key, int64_t min = 1) {
  const int64_t v = c.get_int(key);
  if (v < min) bad(c, key, "must be at least " + std::to_string(min));
  return v;
}

std::optional<std::filesystem::path> optional_path(const Config& c, const std::string& key) {
  if (c.is_null(key)) return std::nullopt;
  return c.get_path(key);
}

}  // namespace

TrainOptions train_options(const Config& c) {
  TrainOptions o;
  if (c.is_null("run.dir")) {
    throw ConfigError(
        "config key 'run.dir' is required: the run directory (config.yaml, "
        "run.h5, log.txt, checkpoints/)");
  }
  o.dir = c.get_path("run.dir");
  o.experiment = c.get_string("run.experiment");
  o.arm = c.get_string("run.arm");
  o.resume = c.get_string("run.resume");
  if (o.resume != "auto" && o.resume != "never" && o.resume != "require") {
    bad(c, "run.resume", "expected auto, never or require, not '" + o.resume + "'");
  }
  o.init = optional_path(c, "model.init");
  o.base_step = c.get_int("model.base_step");
  if (o.base_step < -1) bad(c, "model.base_step", "must be -1 (from the name) or a step >= 0");
  o.preset = c.get_string("model.preset");
  o.model_config = optional_path(c, "model.config");
  const int sources = (o.init ? 1 : 0) + (o.preset.empty() ? 0 : 1) + (o.model_config ? 1 : 0);
  if (sources != 1) {
    throw ConfigError(
        "the model needs exactly one of model.init (a checkpoint to continue), model.preset "
        "or model.config (to initialize from scratch); " +
        std::to_string(sources) + " given");
  }
  o.device = c.get_string("model.device");
  o.steps = positive(c, "train.steps");
  o.global_batch = positive(c, "train.global_batch");
  o.micro_batch = positive(c, "train.micro_batch", 0);
  o.seq_len = positive(c, "train.seq_len");
  o.seed = positive(c, "train.seed", 0);
  o.threads = static_cast<int>(positive(c, "train.threads", 0));
  o.log_every = positive(c, "train.log_every");
  o.tensorboard = c.get_bool("log.tensorboard");
  const std::string on_nan = c.get_string("train.on_nan");
  if (on_nan == "stop") {
    o.on_nan = OnNonFinite::kStop;
  } else if (on_nan == "skip") {
    o.on_nan = OnNonFinite::kSkip;
  } else {
    bad(c, "train.on_nan", "expected stop or skip, not '" + on_nan + "'");
  }
  o.inject_nan_at_step = c.get_int("train.inject_nan_at_step");
  o.ema.beta = c.get_float("train.ema.beta");
  if (!(o.ema.beta >= 0 && o.ema.beta < 1)) {
    bad(c, "train.ema.beta", "expected 0 (off) or in (0, 1)");
  }
  o.ema.every = positive(c, "train.ema.every");
  const std::string precision = c.get_string("train.precision");
  if (precision == "auto") {
    o.precision = Precision::kAuto;
  } else if (precision == "float32") {
    o.precision = Precision::kFloat32;
  } else if (precision == "bf16") {
    o.precision = Precision::kBf16;
  } else {
    bad(c, "train.precision", "expected auto, float32 or bf16, not '" + precision + "'");
  }
  o.adamw.beta1 = c.get_float("optimizer.beta1");
  o.adamw.beta2 = c.get_float("optimizer.beta2");
  for (const char* key : {"optimizer.beta1", "optimizer.beta2"}) {
    const double b = c.get_float(key);
    if (!(b >= 0 && b < 1)) bad(c, key, "must be in [0, 1)");
  }
  o.adamw.eps = c.get_float("optimizer.eps");
  if (!(o.adamw.eps > 0)) bad(c, "optimizer.eps", "must be positive");
  o.adamw.weight_decay = c.get_float("optimizer.weight_decay");
  if (!(o.adamw.weight_decay >= 0)) bad(c, "optimizer.weight_decay", "must be at least 0");
  o.adamw.clip_norm = c.get_float("optimizer.clip_norm");
  if (!(o.adamw.clip_norm >= 0)) bad(c, "optimizer.clip_norm", "must be at least 0");
  o.dataset = c.get_path("data.dataset");
  o.order = c.get_string("data.order");
  if (o.order != "sequential" && o.order != "seeded") {
    bad(c, "data.order", "expected sequential or seeded, not '" + o.order + "'");
  }
  o.start_item = positive(c, "data.start_item", 0);
  o.windows = positive(c, "data.windows", 0);
  o.checkpoint_every = positive(c, "checkpoint.every", 0);
  o.checkpoint_at = c.get_int_list("checkpoint.at_steps");
  o.keep_last = positive(c, "checkpoint.keep_last");
  o.keep_steps = c.get_int_list("checkpoint.keep_steps");
  o.timeout_s = c.get_float("dist.timeout_s");
  if (!(o.timeout_s > 0)) bad(c, "dist.timeout_s", "must be positive");
  o.bucket_mb = c.get_float("dist.bucket_mb");
  if (!(o.bucket_mb > 0)) bad(c, "dist.bucket_mb", "must be positive");
  o.allow_world_size_change = c.get_bool("dist.allow_world_size_change");
  return o;
}

nlohmann::json resume_fingerprint_keys(const Config& c) {
  nlohmann::json keys = nlohmann::json::object();
  for (const char* key : {"model.init", "model.preset", "model.config"}) {
    keys[key] = c.is_null(key) ? std::string() : c.get_string(key);
  }
  keys["model.base_step"] = c.get_int("model.base_step");
  for (const char* key : {"train.global_batch", "train.seq_len", "train.seed", "data.start_item"}) {
    keys[key] = c.get_int(key);
  }
  keys["data.dataset"] = c.get_path("data.dataset").string();
  keys["data.order"] = c.get_string("data.order");
  keys["train.micro_batch"] = c.get_int("train.micro_batch");
  keys["train.precision"] = c.get_string("train.precision");
  for (const char* key : {"optimizer.beta1", "optimizer.beta2", "optimizer.eps",
                          "optimizer.weight_decay", "optimizer.clip_norm"}) {
    keys[key] = c.get_float(key);
  }
  // Only when on, so that runs without it keep the fingerprint they always had.
  if (c.get_int("data.windows") > 0) keys["data.windows"] = c.get_int("data.windows");
  if (c.get_float("train.ema.beta") > 0) {
    keys["train.ema.beta"] = c.get_float("train.ema.beta");
    keys["train.ema.every"] = c.get_int("train.ema.every");
  }
  // A divergence monitor that stops or switches the run decides what it computes, and it
  // decides on the probe's numbers: then both blocks count (only then, so that other runs
  // keep the fingerprint they always had).
  if (c.schema().find("monitor.action") &&
      (c.get_string("monitor.action") == "stop" || c.get_string("monitor.action") == "switch")) {
    for (const char* block : {"monitor", "probe"}) keys[block] = YAML::Dump(c.node(block));
  }
  std::stringstream schedule;
  schedule << YAML::Dump(c.node("schedule"));
  keys["schedule"] = schedule.str();
  return keys;
}

std::string fingerprint_of(const nlohmann::json& keys) {
  // FNV-1a over the canonical JSON text (nlohmann sorts object keys).
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char ch : keys.dump()) h = (h ^ ch) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string fingerprint_differences(const nlohmann::json& stored, const nlohmann::json& now) {
  std::string out;
  for (const auto& [key, value] : now.items()) {
    const std::string before = stored.contains(key) ? stored.at(key).dump() : "(absent)";
    if (before == value.dump()) continue;
    if (!out.empty()) out += "; ";
    out += key + ": " + before + " (checkpoint) vs " + value.dump() + " (now)";
  }
  return out;
}

}  // namespace qf::train
