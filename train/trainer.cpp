#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <limits>
#include <set>

#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/errors.h"
#include "core/logging.h"
#include "core/progress.h"
#include "core/run_events.h"
#include "core/step_name.h"
#include "core/torch/compat.h"
#include "model/hf_checkpoint.h"
#include "schedules/registry.h"
#include "train/checkpoint.h"
#include "train/distributed.h"

namespace fs = std::filesystem;

namespace qf::train {
namespace {

std::atomic<int> g_stop_signals{0};

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signals.fetch_add(1) >= 1) std::signal(sig, SIG_DFL);
}

class AtStepsHooks : public TrainerHooks {
 public:
  AtStepsHooks(std::vector<int64_t> steps, std::function<void(Trainer&, const StepInfo&)> fn)
      : steps_(steps.begin(), steps.end()), fn_(std::move(fn)) {}
  void on_step(Trainer& t, const StepInfo& info) override {
    if (steps_.count(info.step)) fn_(t, info);
  }

 private:
  std::set<int64_t> steps_;
  std::function<void(Trainer&, const StepInfo&)> fn_;
};

// "cuda": this rank's GPU on its node (DistEnv::cuda_device_index: LOCAL_RANK among the
// devices CUDA_VISIBLE_DEVICES shows).
at::Device device_for(const std::string& name, const DistEnv& env) {
  if (name == "cuda") {
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.cuda_device_index()));
  }
  try {
    return at::Device(name);
  } catch (const c10::Error&) {
    throw ConfigError("config key 'model.device': '" + name +
                      "' is not a device (cpu, cuda, cuda:N)");
  }
}

constexpr const char* kRngCpu = "rng/cpu";

}  // namespace

void install_stop_signal_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}
bool stop_requested() {
  return g_stop_signals.load() > 0;
}
void reset_stop_request() {
  g_stop_signals.store(0);
}

std::shared_ptr<TrainerHooks> at_steps(std::vector<int64_t> steps,
                                       std::function<void(Trainer&, const StepInfo&)> fn) {
  return std::make_shared<AtStepsHooks>(std::move(steps), std::move(fn));
}

Trainer::Trainer(const Config& config, TrainOptions options)
    : config_(config), options_(std::move(options)) {
  if (options_.threads > 0) at::set_num_threads(options_.threads);
  schedule_ = schedules::make_schedule(config_, "schedule");
  join_ranks();
  const std::vector<CheckpointInfo> existing = claim_run_dir();
  open_data();
  build_model();
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (auto& item : model_->named_parameters()) named.emplace_back(item.key(), item.value());
  optimizer_ = std::make_unique<AdamW>(named, options_.adamw);
  if (options_.ema.enabled()) ema_ = std::make_unique<WeightEma>(named, options_.ema);
  if (!existing.empty()) resume_from(existing.back().dir.string());
  std::vector<at::Tensor> params;
  for (auto& [name, p] : named) params.push_back(p);
  dp_->broadcast(params);
  dp_->attach(params);
  open_run_file(!existing.empty());
}

void Trainer::join_ranks() {
  const DistEnv env = DistEnv::from_environment();
  device_ = device_for(options_.device, env);
  DataParallelOptions dp_options;
  dp_options.timeout = std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_s * 1000));
  dp_options.bucket_bytes = static_cast<int64_t>(options_.bucket_mb * 1024 * 1024);
  dp_ = std::make_unique<DataParallel>(env, device_, dp_options);
  if (options_.global_batch % dp_->world_size() != 0) {
    throw ConfigError("config " + config_.where("train.global_batch") + ": " +
                      std::to_string(options_.global_batch) + " sequences cannot be split over " +
                      std::to_string(dp_->world_size()) + " ranks");
  }
  bf16_ = options_.precision == Precision::kBf16 ||
          (options_.precision == Precision::kAuto && device_.is_cuda());
  if (bf16_ && !device_.is_cuda()) {
    throw ConfigError("config " + config_.where("train.precision") +
                      ": bf16 autocast is for GPUs; CPUs train in float32");
  }
}

std::vector<CheckpointInfo> Trainer::claim_run_dir() {
  const fs::path checkpoints = options_.dir / "checkpoints";
  lock_run_dir();
  if (is_root()) {
    for (const auto& p : remove_partial_checkpoints(checkpoints)) {
      spdlog::warn("removed {}, left by an interrupted checkpoint write or deletion", p.string());
    }
    add_log_file(options_.dir / "log.txt");
  }
  dp_->barrier();
  auto existing = list_checkpoints(checkpoints);
  const bool has_run = !existing.empty() || fs::exists(options_.dir / "run.h5");
  if (options_.resume == ResumePolicy::kNever && has_run) {
    throw ConfigError("run.resume is 'never' but " + options_.dir.string() +
                      " already holds a run; choose another run.dir or remove it");
  }
  if (options_.resume == ResumePolicy::kRequire && existing.empty()) {
    throw Error("run.resume is 'require' but " + checkpoints.string() + " holds no checkpoint");
  }
  return existing;
}

void Trainer::open_data() {
  dataset_ =
      std::make_shared<const data::IndexedDataset>(data::IndexedDataset::open(options_.dataset));
  data::BatchCursor cursor;
  cursor.order = options_.order;
  cursor.seq_len = options_.seq_len;
  cursor.global_batch = options_.global_batch;
  cursor.start_item = options_.start_item;
  cursor.max_windows = options_.windows;
  cursor.seed = static_cast<uint64_t>(options_.seed);
  reader_ = std::make_unique<data::BatchReader>(dataset_, cursor, dp_->rank(), dp_->world_size());
}

void Trainer::lock_run_dir() {
  // Before anything in run.dir is read or written, so two starts on one run.dir cannot
  // interleave; every rank learns the outcome, so none waits on a refused rank 0.
  std::string refusal;
  if (is_root()) {
    try {
      run_dir_lock_.emplace(DirectoryLock::acquire(options_.dir, "run.dir"));
    } catch (const Error& e) {
      refusal = e.what();
    }
  }
  if (dp_->all_reduce_max(refusal.empty() ? 0.0 : 1.0) > 0) {
    throw Error(is_root() ? refusal
                          : "rank 0 could not take the lock on run.dir '" + options_.dir.string() +
                                "' (its log says why)");
  }
}

Trainer::~Trainer() {
  if (is_root()) remove_log_files();
}

bool Trainer::is_root() const {
  return dp_->is_root();
}

void Trainer::add_hooks(std::shared_ptr<TrainerHooks> hooks) {
  hooks_.push_back(std::move(hooks));
}

void Trainer::request_stop(std::string reason) {
  stop_reason_ = reason.empty() ? std::string("stopped by a hook") : std::move(reason);
}

void Trainer::switch_schedule(int64_t after_step, const YAML::Node& block, const std::string& key) {
  if (switch_after_ >= 0) {
    throw Error("the schedule already switched after update " + std::to_string(switch_after_) +
                "; a run switches at most once");
  }
  if (after_step < 0 || after_step + 1 >= options_.steps) {
    throw Error("cannot switch the schedule after update " + std::to_string(after_step) +
                ": the run's updates are 0.." + std::to_string(options_.steps - 1));
  }
  apply_switch(after_step, YAML::Dump(block), key);
  spdlog::info("schedule switched after update {}: {} from update {} on", after_step,
               YAML::Dump(block), after_step + 1);
}

void Trainer::apply_switch(int64_t after_step, const std::string& block_yaml,
                           const std::string& key) {
  YAML::Node sequence;
  sequence["name"] = "sequence";
  sequence["parts"].push_back(YAML::Clone(config_.node("schedule")));
  sequence["parts"].push_back(YAML::Load(block_yaml));
  sequence["milestones"].push_back(after_step + 1);
  schedule_ = schedules::make_schedule(sequence, key);
  switch_after_ = after_step;
  switch_schedule_ = block_yaml;
}

void Trainer::build_model() {
  if (options_.init) {
    model::LoadOptions load;
    load.device = device_;
    model_ = model::load_hf_checkpoint(*options_.init, load).model;
    const auto named_step = checkpoint_dir_step(*options_.init);
    base_step_ = options_.base_step >= 0 ? options_.base_step : named_step.value_or(0);
  } else {
    const model::GptNeoXConfig cfg = options_.model_config
                                         ? model::GptNeoXConfig::load(*options_.model_config)
                                         : model::GptNeoXConfig::pythia(options_.preset);
    model_ = model::GptNeoXForCausalLM(cfg);
    model_->init_pythia(static_cast<uint64_t>(options_.seed));
    model_->to(device_);
    base_step_ = std::max<int64_t>(options_.base_step, 0);
  }
  model_->train();
  at::manual_seed(static_cast<uint64_t>(options_.seed));
}

void Trainer::resume_from(const std::string& dir) {
  const LoadedTrainerState loaded = load_trainer_state(dir);
  const TrainerState& st = loaded.state;
  if (st.run_steps > options_.steps) {
    throw ConfigError("cannot resume from " + dir + ": it holds " + std::to_string(st.run_steps) +
                      " updates of this run, more than " + config_.where("train.steps") + " (" +
                      std::to_string(options_.steps) +
                      "); raise train.steps to go on, or use another run.dir");
  }
  const std::string differences = fingerprint_differences(config_.schema(), st.fingerprint_keys,
                                                          resume_fingerprint_keys(config_));
  if (!differences.empty()) {
    throw ConfigError("cannot resume from " + dir +
                      ": the configuration differs in keys that decide what the run computes: " +
                      differences + ". Use another run.dir for a different run.");
  }
  if (st.world_size != dp_->world_size() && !options_.allow_world_size_change) {
    throw ConfigError("cannot resume from " + dir + ": it was written by " +
                      std::to_string(st.world_size) + " rank(s), this job has " +
                      std::to_string(dp_->world_size()) +
                      " (set dist.allow_world_size_change: true to go on anyway)");
  }
  model::LoadOptions load;
  load.device = device_;
  model::GptNeoXForCausalLM saved = model::load_hf_checkpoint(dir, load).model;
  {
    torch::NoGradGuard no_grad;
    auto dst = model_->named_parameters();
    for (const auto& item : saved->named_parameters()) dst[item.key()].copy_(item.value());
  }
  optimizer_->load_state(loaded.tensors, st.optimizer_steps, dir + "/trainer_state.safetensors");
  if (ema_) ema_->load_state(loaded.tensors, dir + "/trainer_state.safetensors");
  const auto rng = loaded.tensors.find(kRngCpu);
  if (rng == loaded.tensors.end()) {
    throw FormatError(dir + "/trainer_state.safetensors: no '" + std::string(kRngCpu) + "' state");
  }
  at::Generator cpu_rng = at::detail::getDefaultCPUGenerator();
  cpu_rng.set_state(rng->second);
  data::BatchCursor cursor = data::BatchCursor::from_json(st.cursor, dir + "/trainer_state.json");
  reader_ = std::make_unique<data::BatchReader>(dataset_, cursor, dp_->rank(), dp_->world_size());
  base_step_ = st.base_step;
  run_steps_ = st.run_steps;
  tokens_ = st.tokens;
  skipped_ = st.skipped_steps;
  last_checkpoint_step_ = st.global_step;
  last_checkpoint_dir_ = dir;
  if (st.switch_after >= 0) {
    apply_switch(st.switch_after, st.switch_schedule, dir + "/trainer_state.json switch_schedule");
  }
  stop_reason_ = st.stop_reason;
  spdlog::info("resuming from {}: {} of {} updates done (global step {})", dir, run_steps_,
               options_.steps, st.global_step);
}

void Trainer::open_run_file(bool resuming) {
  if (!is_root()) return;
  const fs::path path = options_.dir / "run.h5";
  write_text_atomically(options_.dir / "config.yaml", config_.dump());
  // Events after the step run.h5 keeps are dropped, as its rows are (a fresh start: all).
  if (options_.tensorboard) events_ = open_tensorboard_log(options_.dir / "tb", run_steps_ - 1);
  const fs::path journal = journal_path_for(path);
  if (resuming && (fs::exists(path) || fs::exists(journal))) {
    RunRecovery r;
    run_file_ = std::make_unique<RunFile>(RunFile::recover(path.string(), run_steps_ - 1, &r));
    if (!r.damage.empty())
      spdlog::warn("run.h5 was damaged ({}); rebuilt it from {}", r.damage, journal.string());
    if (r.torn_bytes) {
      spdlog::info("{}: dropped a record cut short by a kill ({} bytes)", journal.string(),
                   r.torn_bytes);
    }
    if (r.dropped_rows) {
      spdlog::info("run.h5: dropped {} row(s) logged after the checkpoint", r.dropped_rows);
    }
    return;
  }
  std::error_code ec;
  fs::remove(path, ec);
  fs::remove(journal, ec);
  RunAttributes a;
  a.experiment = options_.experiment;
  a.arm = options_.arm;
  a.seed = options_.seed;
  a.schedule = config_.node("schedule")["name"].Scalar();
  a.base_checkpoint = options_.init ? options_.init->string() : "(initialized from scratch)";
  a.start_step = base_step_;
  run_file_ =
      std::make_unique<RunFile>(RunFile::create_journaled(path.string(), a, config_.dump()));
}

StepInfo Trainer::train_step(int64_t s) {
  const auto t0 = std::chrono::steady_clock::now();
  StepInfo info;
  info.step = s;
  info.global_step = base_step_ + s + 1;
  info.lr = schedule_->lr(s);
  info.phase = schedule_->phase(s);
  const data::Batch batch = reader_->next();
  const at::Tensor ids = at::tensor(batch.data.tokens, at::kLong)
                             .view({batch.data.rows, batch.data.row_tokens})
                             .to(device_);
  const int64_t rows = ids.size(0);
  const int64_t micro = options_.micro_batch > 0 ? std::min(options_.micro_batch, rows) : rows;
  double local_loss = 0;
  for (int64_t begin = 0; begin < rows; begin += micro) {
    const int64_t len = std::min(micro, rows - begin);
    dp_->set_sync(begin + len >= rows);
    at::Tensor loss;
    {
      torch_compat::ScopedCudaBf16Autocast autocast(bf16_);
      loss = model_->loss(ids.narrow(0, begin, len));
    }
    const double share = static_cast<double>(len) / static_cast<double>(rows);
    (loss * share).backward();
    local_loss += loss.item<double>() * share;
  }
  dp_->finish_backward();
  info.loss = dp_->all_reduce_mean(local_loss);
  if (s == options_.inject_nan_at_step) {
    info.loss = std::numeric_limits<double>::quiet_NaN();
    for (auto& p : model_->parameters()) {
      if (p.grad().defined()) {
        p.mutable_grad().fill_(std::numeric_limits<float>::quiet_NaN());
        break;
      }
    }
  }
  info.grad_norm = optimizer_->clip_gradients();
  if (!std::isfinite(info.loss) || !std::isfinite(info.grad_norm)) {
    if (options_.on_nan == OnNonFinite::kStop) {
      throw Error("training stopped at update " + std::to_string(s) + " (global step " +
                  std::to_string(info.global_step) + "): loss " + std::to_string(info.loss) +
                  ", gradient norm " + std::to_string(info.grad_norm) +
                  "; no checkpoint was written after it" +
                  (last_checkpoint_dir_.empty() ? "" : " (newest: " + last_checkpoint_dir_ + ")") +
                  ". Set train.on_nan: skip to drop such updates instead.");
    }
    spdlog::warn("update {}: loss {}, gradient norm {}: update skipped (train.on_nan: skip)", s,
                 info.loss, info.grad_norm);
    info.skipped = true;
    ++skipped_;
  } else {
    optimizer_->step(info.lr);
    if (ema_) ema_->update(optimizer_->steps_taken());
  }
  optimizer_->zero_grad();
  tokens_ += options_.global_batch * options_.seq_len;
  info.tokens = tokens_;
  info.step_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return info;
}

bool Trainer::checkpoint_due(int64_t s) const {
  const int64_t global = base_step_ + s + 1;
  if (s + 1 == options_.steps) return true;
  if (options_.checkpoint_every > 0 && (s + 1) % options_.checkpoint_every == 0) return true;
  return std::find(options_.checkpoint_at.begin(), options_.checkpoint_at.end(), global) !=
         options_.checkpoint_at.end();
}

void Trainer::write_checkpoint() {
  const int64_t global = base_step_ + run_steps_;
  if (global == last_checkpoint_step_) return;
  const fs::path checkpoints = options_.dir / "checkpoints";
  std::string dir;
  if (is_root()) {
    TrainerState st;
    st.run_steps = run_steps_;
    st.global_step = global;
    st.base_step = base_step_;
    st.optimizer_steps = optimizer_->steps_taken();
    st.tokens = tokens_;
    st.skipped_steps = skipped_;
    st.world_size = dp_->world_size();
    st.cursor = reader_->cursor().to_json();
    st.schedule = YAML::Dump(config_.node("schedule"));
    st.fingerprint_keys = resume_fingerprint_keys(config_);
    st.fingerprint = fingerprint_of(st.fingerprint_keys);
    st.switch_after = switch_after_;
    st.switch_schedule = switch_schedule_;
    st.stop_reason = stop_reason_;
    auto tensors = optimizer_->state_tensors();
    if (ema_) {
      for (auto& t : ema_->state_tensors()) tensors.push_back(std::move(t));
    }
    tensors.emplace_back(kRngCpu, at::detail::getDefaultCPUGenerator().get_state());
    dir = save_checkpoint(checkpoints, model_, tensors, st).string();
    std::vector<int64_t> keep = options_.keep_steps;
    keep.insert(keep.end(), options_.checkpoint_at.begin(), options_.checkpoint_at.end());
    for (const auto& old :
         checkpoints_to_prune(list_checkpoints(checkpoints), options_.keep_last, keep)) {
      prune_checkpoint(old.dir);
    }
  } else {
    dir = (checkpoints / ("step" + std::to_string(global))).string();
  }
  dp_->barrier();
  last_checkpoint_step_ = global;
  last_checkpoint_dir_ = dir;
  for (auto& h : hooks_) h->on_checkpoint(*this, global, dir);
}

TrainSummary Trainer::run() {
  TrainSummary summary;
  summary.first_step = run_steps_;
  std::optional<Progress> progress;
  if (is_root()) progress.emplace("train", options_.steps - run_steps_, "step");
  int64_t s = run_steps_;
  if (!stop_reason_.empty()) {
    spdlog::info("the run was ended after {} updates ({}); nothing to do", run_steps_,
                 stop_reason_);
    s = options_.steps;
  }
  for (; s < options_.steps; ++s) {
    const StepInfo info = train_step(s);
    run_steps_ = s + 1;
    const double tokens_per_s =
        static_cast<double>(options_.global_batch * options_.seq_len) / info.step_time_s;
    summary.final_loss = info.loss;
    if (run_file_ && (s % options_.log_every == 0 || s + 1 == options_.steps)) {
      TrainRow row;
      row.step = s;
      row.tokens = info.tokens;
      row.loss = static_cast<float>(info.loss);
      row.lr = info.lr;
      row.grad_norm = static_cast<float>(info.grad_norm);
      row.step_time_s = static_cast<float>(info.step_time_s);
      row.tokens_per_s = static_cast<float>(tokens_per_s);
      run_file_->append_train(row);
      if (events_) log_train_row(*events_, row);
    }
    if (s == 0 || info.phase != schedule_->phase(s - 1)) {
      if (events_) {
        events_->text(kPhaseTag, s,
                      info.phase.label() + " from update " + std::to_string(s) + " (global step " +
                          std::to_string(info.global_step) + ")");
        events_->flush();
      }
      for (auto& h : hooks_) h->on_phase_boundary(*this, info);
    }
    for (auto& h : hooks_) h->on_step(*this, info);
    char lr[32], gn[32], loss[32];
    std::snprintf(loss, sizeof loss, "%.4f", info.loss);
    std::snprintf(lr, sizeof lr, "%.3e", info.lr);
    std::snprintf(gn, sizeof gn, "%.3f", info.grad_norm);
    if (progress)
      progress->update(
          s + 1 - summary.first_step,
          {{"loss", loss}, {"lr", lr}, {"gnorm", gn}, {"tok/s", format_rate(tokens_per_s)}});
    const bool stop = dp_->all_reduce_max(stop_requested() ? 1.0 : 0.0) > 0;
    if (checkpoint_due(s) || stop || !stop_reason_.empty()) write_checkpoint();
    if (!stop_reason_.empty()) {
      spdlog::info("run ended after update {} ({}): {}", s, last_checkpoint_dir_, stop_reason_);
      break;
    }
    if (stop) {
      summary.stopped_by_signal = true;
      spdlog::info("stop signal: checkpoint written after update {} ({}), exiting", s,
                   last_checkpoint_dir_);
      break;
    }
  }
  if (progress) progress->finish();
  const bool done = run_steps_ == options_.steps || !stop_reason_.empty();
  // Also when a finished run is started again: a kill may have come between its last
  // checkpoint and this.
  if (ema_ && is_root() && done) {
    ema_->save(model_, options_.dir / "ema", base_step_ + run_steps_);
  }
  if (run_steps_ == summary.first_step && run_file_) {
    // Nothing to do (a finished run started again): report what the run ended with.
    const auto rows = run_file_->read_train();
    if (!rows.empty()) summary.final_loss = rows.back().loss;
  }
  summary.run_steps = run_steps_;
  summary.stop_reason = stop_reason_;
  summary.skipped_steps = skipped_;
  summary.last_checkpoint = last_checkpoint_dir_;
  return summary;
}

}  // namespace qf::train
