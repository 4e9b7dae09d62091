#pragma once
// The training loop (`quantfork train`): one run, from an HF checkpoint (a Pythia
// revision, a fork's base) or from scratch, or resumed from its own checkpoint; on one
// CPU, one GPU or many ranks (train/distributed.h). The schedule gives the learning rate
// of every update; /train rows go to run.h5; hooks let other libraries act on steps,
// phase boundaries and checkpoints (the probe is attached that way, by experiments/).
//
// Steps. Update s (s = 0, 1, ... train.steps - 1) of the run uses lr = schedule(s) and the
// batch the data cursor hands out next; after it the model has had base_step + s + 1
// updates in all, which names its checkpoint (step<N>). Hooks see the model after
// update s.
//
// Exactness. On the CPU with the same thread count, a run stopped at any point (a stop
// signal, kill -9, a crash) and resumed from its newest checkpoint logs bitwise the same
// losses as an uninterrupted one: the checkpoint holds the float32 weights, Adam's
// moments and step count, the data cursor and the RNG state.
#include <ATen/ATen.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/dir_lock.h"
#include "core/event_log.h"
#include "core/run_file.h"
#include "data/batches.h"
#include "model/gpt_neox.h"
#include "schedules/lr_schedule.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/train_config.h"
#include "train/weight_ema.h"

namespace qf::train {

class DataParallel;
class Trainer;

// What the hooks see after update `step`.
struct StepInfo {
  int64_t step = 0;         // this run's update index
  int64_t global_step = 0;  // updates the model has had in all (base_step + step + 1)
  double lr = 0;
  double loss = 0;       // mean over the global batch (all ranks)
  double grad_norm = 0;  // before clipping
  schedules::Phase phase;
  bool skipped = false;  // the update was dropped (non-finite values, on_nan: skip)
  int64_t tokens = 0;    // cumulative in this run
  double step_time_s = 0;
};

// Override what you need. Every rank calls every hook (they may need collectives); only
// rank 0 has a run file (Trainer::run_file() is null elsewhere).
class TrainerHooks {
 public:
  virtual ~TrainerHooks() = default;
  // After every update.
  virtual void on_step(Trainer& /*trainer*/, const StepInfo& /*info*/) {}
  // After the first update of a new schedule phase (update 0 included), before on_step.
  virtual void on_phase_boundary(Trainer& /*trainer*/, const StepInfo& /*info*/) {}
  // After a checkpoint was written (on rank 0; other ranks get the same call).
  virtual void on_checkpoint(Trainer& /*trainer*/, int64_t /*global_step*/,
                             const std::string& /*dir*/) {}
};

// Calls `fn` after the updates in `steps` (this run's update indices).
std::shared_ptr<TrainerHooks> at_steps(std::vector<int64_t> steps,
                                       std::function<void(Trainer&, const StepInfo&)> fn);

struct TrainSummary {
  int64_t run_steps = 0;   // updates done in this run, in all sessions
  int64_t first_step = 0;  // where this session started (> 0 after a resume)
  bool stopped_by_signal = false;
  // Non-empty when a hook ended the run for good before train.steps (request_stop), in
  // this session or an earlier one.
  std::string stop_reason;
  int64_t skipped_steps = 0;
  double final_loss = 0;
  std::string last_checkpoint;
};

class Trainer {
 public:
  // Builds the model (from model.init, or from scratch), optimizer, data reader and
  // distributed group, then resumes from the newest checkpoint in run.dir when asked.
  // `config` is kept: its YAML goes to config.yaml and run.h5. Throws ConfigError for an
  // incompatible resume, naming the keys that differ.
  Trainer(const Config& config, TrainOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  void add_hooks(std::shared_ptr<TrainerHooks> hooks);

  // Changes of course a hook may ask for from on_step. Every rank must make the same call
  // with the same arguments (a hook that decides on rank 0 shares its decision first).
  //
  // Ends the run for good after the update in flight: a checkpoint is written that
  // records `reason`, run() returns with it in the summary, and starting the run again
  // does nothing.
  void request_stop(std::string reason);
  // From update `after_step` + 1 on, the rates and phases come from `block` (a schedule
  // block, e.g. {name: oli, ...}, counting its own steps from 0 at that update): the run's
  // schedule becomes `sequence` of the configured one and `block`. Checked and built here
  // (ConfigError naming `key` when the block is no schedule); recorded in every later
  // checkpoint, so a resumed run goes on with it. At most once per run.
  void switch_schedule(int64_t after_step, const YAML::Node& block, const std::string& key);
  // The update after which the schedule switched, or -1.
  int64_t switched_after() const { return switch_after_; }
  // Trains until train.steps updates are done or a stop signal arrives (SIGINT/SIGTERM:
  // the step in flight finishes, a checkpoint is written, logs are flushed; the caller
  // exits 0). Throws Error naming the step for a non-finite loss or gradient
  // (train.on_nan: stop), leaving the previous checkpoint in place.
  TrainSummary run();

  model::GptNeoXForCausalLM& model() { return model_; }
  const schedules::LrSchedule& schedule() const { return *schedule_; }
  RunFile* run_file() { return run_file_.get(); }
  // The TensorBoard log (log.tensorboard; core/run_events.h), null off rank 0 or when off.
  EventLog* events() { return events_.get(); }
  DataParallel& data_parallel() { return *dp_; }
  const TrainOptions& options() const { return options_; }
  int64_t base_step() const { return base_step_; }
  int64_t run_steps_done() const { return run_steps_; }
  // The weight average (train.ema), null when none is kept.
  const WeightEma* ema() const { return ema_.get(); }
  bool is_root() const;

 private:
  // The constructor's stages, in order.
  void join_ranks();  // device, data parallelism over the job's ranks, precision
  // Locks run.dir, cleans up after a kill, applies run.resume: the checkpoints found.
  std::vector<CheckpointInfo> claim_run_dir();
  void open_data();  // the dataset and this rank's batch reader
  void lock_run_dir();
  void build_model();
  void resume_from(const std::string& dir);
  void open_run_file(bool resuming);
  StepInfo train_step(int64_t step);
  void write_checkpoint();
  bool checkpoint_due(int64_t step) const;
  void apply_switch(int64_t after_step, const std::string& block_yaml, const std::string& key);

  Config config_;
  TrainOptions options_;
  // Declared before everything that writes into run.dir, so it is released last.
  std::optional<DirectoryLock> run_dir_lock_;
  at::Device device_{at::kCPU};
  model::GptNeoXForCausalLM model_{nullptr};
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<WeightEma> ema_;
  std::unique_ptr<DataParallel> dp_;
  std::shared_ptr<const data::IndexedDataset> dataset_;
  std::unique_ptr<data::BatchReader> reader_;
  schedules::SchedulePtr schedule_;
  std::unique_ptr<RunFile> run_file_;
  std::unique_ptr<EventLog> events_;
  std::vector<std::shared_ptr<TrainerHooks>> hooks_;
  int64_t base_step_ = 0;
  int64_t run_steps_ = 0;
  int64_t tokens_ = 0;
  int64_t skipped_ = 0;
  int64_t last_checkpoint_step_ = -1;  // global step of the newest checkpoint
  std::string last_checkpoint_dir_;
  bool bf16_ = false;
  int64_t switch_after_ = -1;    // see switch_schedule
  std::string switch_schedule_;  // the switched-to block as YAML
  std::string stop_reason_;      // see request_stop
};

// Installs SIGINT/SIGTERM handlers that ask the running Trainer to stop after its step.
// A second signal restores the default action (so a third kills).
void install_stop_signal_handlers();
bool stop_requested();
// For tests: clears the flag.
void reset_stop_request();

}  // namespace qf::train
