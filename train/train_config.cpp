#include "train/train_config.h"

#include <set>
#include <sstream>

#include "core/errors.h"
#include "core/run_events.h"

namespace qf::train {

const EnumNames<ResumePolicy>& resume_policy_names() {
  static const EnumNames<ResumePolicy> names = {{"auto", ResumePolicy::kAuto},
                                                {"never", ResumePolicy::kNever},
                                                {"require", ResumePolicy::kRequire}};
  return names;
}

namespace {

const EnumNames<OnNonFinite> kOnNanNames = {{"stop", OnNonFinite::kStop},
                                            {"skip", OnNonFinite::kSkip}};
const EnumNames<Precision> kPrecisionNames = {
    {"auto", Precision::kAuto}, {"float32", Precision::kFloat32}, {"bf16", Precision::kBf16}};

// The sections whose result-defining keys a resumed run must keep (its fingerprint).
const char* const kTrainingSections[] = {"model", "train", "optimizer", "schedule", "data"};

}  // namespace

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
      .one_of(resume_policy_names())
      .optional("model.init", FieldType::Path, "null",
                "Hugging Face checkpoint directory to start from (e.g. a Pythia stepN "
                "revision); null: initialize from scratch (model.preset or model.config).")
      .defines_result()
      .optional("model.base_step", FieldType::Int, "-1",
                "Global step of model.init (updates it has had); -1: read from its directory "
                "name (stepN), else 0.")
      .at_least(-1)
      .defines_result()
      .optional("model.preset", FieldType::String, "''",
                "Pythia size to initialize from scratch (14m, 31m, 70m, 160m, ...).")
      .defines_result()
      .optional("model.config", FieldType::Path, "null",
                "Or a Hugging Face config.json to initialize from scratch.")
      .defines_result()
      .optional("model.device", FieldType::String, "cpu",
                "cpu, cuda or cuda:N; with several ranks per node, cuda means cuda:LOCAL_RANK.")
      .required("train.steps", FieldType::Int, "Optimizer updates in this run.")
      .at_least(1)
      .optional("train.global_batch", FieldType::Int, "4",
                "Sequences per update over all ranks (Pythia: 1024; the fork: 4).")
      .at_least(1)
      .defines_result()
      .optional("train.micro_batch", FieldType::Int, "0",
                "Sequences per forward pass on one rank (gradient accumulation); 0: a rank's "
                "whole share at once.")
      .at_least(0)
      .defines_result()
      .optional("train.seq_len", FieldType::Int, "2048", "Tokens predicted per sequence (T).")
      .at_least(1)
      .defines_result()
      .optional("train.seed", FieldType::Int, "1234",
                "Fixes the data sample and order (data.order: seeded), the initialization "
                "from scratch and any randomness; same seed across arms, same data.")
      .at_least(0)
      .defines_result()
      .optional("train.threads", FieldType::Int, "0",
                "CPU threads for libtorch; 0: libtorch's default (all cores).")
      .at_least(0)
      .optional("train.log_every", FieldType::Int, "1", "Write a /train row every N updates.")
      .at_least(1)
      .optional("train.on_nan", FieldType::String, "stop",
                "A NaN or Inf loss or gradient norm: stop (error naming the step, no checkpoint "
                "written) or skip (drop that update, log it, go on).")
      .one_of(kOnNanNames)
      .optional("train.ema.beta", FieldType::Float, "0",
                "Keep an exponential moving average of the weights, w_avg <- beta * w_avg + "
                "(1 - beta) * w after every train.ema.every optimizer steps (float32, on the "
                "weights' device; saved in every checkpoint, written as run.dir/ema/ at the "
                "end). 0: none; else in (0, 1), e.g. 0.999.")
      .at_least(0)
      .below(1)
      .defines_result()
      .optional("train.ema.every", FieldType::Int, "1",
                "Optimizer steps between updates of the weight average (counted over the run).")
      .at_least(1)
      .defines_result()
      .optional("train.precision", FieldType::String, "auto",
                "auto (bf16 autocast with float32 master weights on GPUs, float32 on CPUs), "
                "float32 or bf16.")
      .one_of(kPrecisionNames)
      .defines_result()
      .optional("optimizer.beta1", FieldType::Float, "0.9", "Adam beta1 (Pythia: 0.9).")
      .at_least(0)
      .below(1)
      .defines_result()
      .optional("optimizer.beta2", FieldType::Float, "0.95", "Adam beta2 (Pythia: 0.95).")
      .at_least(0)
      .below(1)
      .defines_result()
      .optional("optimizer.eps", FieldType::Float, "1.0e-8", "Adam epsilon (Pythia: 1e-8).")
      .above(0)
      .defines_result()
      .optional("optimizer.weight_decay", FieldType::Float, "0.1",
                "Decoupled weight decay on weights and embeddings; none on biases and "
                "LayerNorms (Pythia: 0.1).")
      .at_least(0)
      .defines_result()
      .optional("optimizer.clip_norm", FieldType::Float, "1.0",
                "Global gradient-norm clipping (Pythia: 1.0); 0: none.")
      .at_least(0)
      .defines_result()
      .optional("schedule", FieldType::Block,
                "{name: pythia_cosine, max_lr: 6.0e-4, min_lr: 6.0e-5, warmup_steps: 1430, "
                "decay_steps: 143000, step_offset: 0}",
                "Learning-rate schedule block {name: ..., parameters} (quantfork schedule "
                "--list); it sees this run's update index, 0 at the start or the fork.")
      .defines_result()
      .required("data.dataset", FieldType::Path,
                "Indexed dataset (.bin/.idx prefix) to train on, e.g. Pythia's pre-shuffled Pile.")
      .defines_result()
      .optional("data.order", FieldType::String, "seeded",
                "sequential: windows in order (Pythia's order with global_batch 1024); "
                "seeded: a permutation fixed by train.seed, new each epoch.")
      .one_of(data::batch_order_names())
      .defines_result()
      .optional("data.start_item", FieldType::Int, "0",
                "Item the windows start at (Pythia stepN fork in sequential order: N * 1024).")
      .at_least(0)
      .defines_result()
      .optional("data.windows", FieldType::Int, "0",
                "Train on the first N windows of seq_len + 1 tokens from data.start_item only "
                "(0: all): a smaller corpus read for more epochs, e.g. to study what "
                "memorisation does to the quantization gap. Its validation set stays apart.")
      .at_least(0)
      .defines_result()
      .optional("checkpoint.every", FieldType::Int, "0",
                "Write a checkpoint every N updates of this run (0: only at_steps, the end "
                "and on a stop signal).")
      .at_least(0)
      .optional("checkpoint.at_steps", FieldType::IntList, "[]",
                "Global steps to checkpoint at (e.g. Pythia's 1, 2, 4, ..., 512, 1000, ...); "
                "these are always kept.")
      .optional("checkpoint.keep_last", FieldType::Int, "2",
                "Keep the newest N checkpoints (besides at_steps and keep_steps).")
      .at_least(1)
      .optional("checkpoint.keep_steps", FieldType::IntList, "[]",
                "Global steps whose checkpoints are never deleted.")
      .optional("dist.timeout_s", FieldType::Float, "600",
                "Seconds a rank waits for the others before failing with the missing rank's "
                "number.")
      .above(0)
      .optional("dist.bucket_mb", FieldType::Float, "25", "Gradient all-reduce bucket size (MB).")
      .above(0)
      .optional("dist.allow_world_size_change", FieldType::Bool, "false",
                "Let a run resume with a different number of ranks (same global batch).")
      .optional("debug.inject_nan_at_step", FieldType::Int, "-1",
                "For testing the fault handling only: make the loss of this run step NaN "
                "(-1: never).");
}

namespace {

std::optional<std::filesystem::path> optional_path(const Config& c, const std::string& key) {
  if (c.is_null(key)) return std::nullopt;
  return c.get_path(key);
}

// A fingerprint entry: the value as the checkpoint's JSON records it (paths and strings
// as text, "" for null; blocks and lists as their YAML text).
nlohmann::json fingerprint_value(const FieldSpec& f, const YAML::Node& v) {
  if (v.IsNull())
    return f.type == FieldType::Int || f.type == FieldType::Float ? nlohmann::json()
                                                                  : nlohmann::json(std::string());
  switch (f.type) {
    case FieldType::Int:
      return v.as<int64_t>();
    case FieldType::Float:
      return v.as<double>();
    case FieldType::Bool:
      return v.as<bool>();
    case FieldType::String:
    case FieldType::Path:
      return v.Scalar();
    default:
      return YAML::Dump(v);
  }
}

bool in_training_section(const std::string& key) {
  for (const char* s : kTrainingSections) {
    const std::string section = s;
    if (key == section || key.rfind(section + ".", 0) == 0) return true;
  }
  return false;
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
  o.resume = c.get_enum("run.resume", resume_policy_names());
  o.init = optional_path(c, "model.init");
  o.base_step = c.get_int("model.base_step");
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
  o.steps = c.get_int("train.steps");
  o.global_batch = c.get_int("train.global_batch");
  o.micro_batch = c.get_int("train.micro_batch");
  o.seq_len = c.get_int("train.seq_len");
  o.seed = c.get_int("train.seed");
  o.threads = static_cast<int>(c.get_int("train.threads"));
  o.log_every = c.get_int("train.log_every");
  o.tensorboard = c.get_bool("log.tensorboard");
  o.on_nan = c.get_enum("train.on_nan", kOnNanNames);
  o.inject_nan_at_step = c.get_int("debug.inject_nan_at_step");
  o.ema.beta = c.get_float("train.ema.beta");
  o.ema.every = c.get_int("train.ema.every");
  o.precision = c.get_enum("train.precision", kPrecisionNames);
  o.adamw.beta1 = c.get_float("optimizer.beta1");
  o.adamw.beta2 = c.get_float("optimizer.beta2");
  o.adamw.eps = c.get_float("optimizer.eps");
  o.adamw.weight_decay = c.get_float("optimizer.weight_decay");
  o.adamw.clip_norm = c.get_float("optimizer.clip_norm");
  o.dataset = c.get_path("data.dataset");
  o.order = c.get_enum("data.order", data::batch_order_names());
  o.start_item = c.get_int("data.start_item");
  o.windows = c.get_int("data.windows");
  o.checkpoint_every = c.get_int("checkpoint.every");
  o.checkpoint_at = c.get_int_list("checkpoint.at_steps");
  o.keep_last = c.get_int("checkpoint.keep_last");
  o.keep_steps = c.get_int_list("checkpoint.keep_steps");
  o.timeout_s = c.get_float("dist.timeout_s");
  o.bucket_mb = c.get_float("dist.bucket_mb");
  o.allow_world_size_change = c.get_bool("dist.allow_world_size_change");
  return o;
}

nlohmann::json resume_fingerprint_keys(const Config& c) {
  nlohmann::json keys = nlohmann::json::object();
  for (const FieldSpec& f : c.schema().fields()) {
    if (!f.defines_result || !in_training_section(f.key)) continue;
    keys[f.key] = fingerprint_value(f, c.is_null(f.key) ? YAML::Node() : c.node(f.key));
  }
  // A divergence monitor that stops or switches the run decides what it computes, and it
  // decides on the probe's numbers: then both blocks count (only then, so that other runs
  // keep the fingerprint they always had).
  if (c.schema().find("monitor.action") &&
      (c.get_string("monitor.action") == "stop" || c.get_string("monitor.action") == "switch")) {
    for (const char* block : {"monitor", "probe"}) keys[block] = YAML::Dump(c.node(block));
  }
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

std::string fingerprint_differences(const ConfigSchema& schema, const nlohmann::json& stored,
                                    const nlohmann::json& now) {
  // A key the checkpoint does not record had its default then (older checkpoints record
  // data.windows and train.ema.* only when set, for instance).
  const auto recorded = [&](const nlohmann::json& keys, const std::string& key) {
    if (keys.contains(key)) return keys.at(key);
    const FieldSpec* f = schema.find(key);
    if (f && f->default_value) return fingerprint_value(*f, *f->default_value);
    return nlohmann::json("(absent)");
  };
  std::string out;
  std::set<std::string> all;
  for (const auto& [key, value] : stored.items()) all.insert(key);
  for (const auto& [key, value] : now.items()) all.insert(key);
  for (const auto& key : all) {
    const nlohmann::json before = recorded(stored, key), after = recorded(now, key);
    if (before == after) continue;
    if (!out.empty()) out += "; ";
    out += key + ": " + before.dump() + " (checkpoint) vs " + after.dump() + " (now)";
  }
  return out;
}

}  // namespace qf::train
