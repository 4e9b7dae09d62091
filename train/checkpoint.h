#pragma once
// Training checkpoints (interfaces.md): `checkpoints/step<N>/` in Hugging Face layout
// (config.json + model.safetensors, loadable by transformers and by `quantfork logits`)
// plus trainer_state.safetensors (Adam's moments, RNG states) and trainer_state.json
// (steps, data cursor, schedule, config fingerprint) for an exact resume. N is the global
// step: the number of updates the model has had since initialization, as Pythia's
// `stepN` revisions count them.
//
// A checkpoint is written whole into `checkpoints/.step<N>.tmp`, flushed, and renamed into
// place; a directory without trainer_state.json is not a checkpoint. So a crash at any
// moment leaves the last complete checkpoint loadable.
#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/gpt_neox.h"

namespace qf::train {

inline constexpr const char* kTrainerStateFormat = "quantfork.trainer_state/1";

// What trainer_state.json holds besides the tensors.
struct TrainerState {
  int64_t run_steps = 0;    // updates taken in this run (the next update is run_steps)
  int64_t global_step = 0;  // base step + run_steps: the checkpoint's N
  int64_t base_step = 0;    // global step the run started from
  int64_t optimizer_steps = 0;
  int64_t tokens = 0;         // tokens trained on in this run
  int64_t skipped_steps = 0;  // updates skipped for non-finite values (train.on_nan: skip)
  int world_size = 1;
  nlohmann::json cursor;            // data::BatchCursor::to_json()
  std::string schedule;             // the schedule block as YAML (for people; the config decides)
  std::string fingerprint;          // of the configuration keys that must not change on resume
  nlohmann::json fingerprint_keys;  // those keys and their values, to say what differs
  // A change of course decided during the run (the divergence monitor's switch): from
  // update switch_after + 1 on the run follows switch_schedule (YAML: the bound block),
  // counted from 0 there. switch_after is -1 when the run never switched.
  int64_t switch_after = -1;
  std::string switch_schedule;
  // Non-empty when the run was ended for good before train.steps (the monitor's stop):
  // why. Such a run is finished; starting it again does nothing.
  std::string stop_reason;

  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& where);
};

struct CheckpointInfo {
  int64_t step = 0;
  std::filesystem::path dir;
};

// Complete checkpoints under `checkpoints_dir` (directories step<N> holding
// trainer_state.json), ascending by step.
std::vector<CheckpointInfo> list_checkpoints(const std::filesystem::path& checkpoints_dir);
// Removes leftovers of interrupted writes and deletions (.step<N>.tmp*, step<N>.old.*,
// .step<N>.deleting, and a step<N> without trainer_state.json); returns what it removed.
std::vector<std::filesystem::path> remove_partial_checkpoints(
    const std::filesystem::path& checkpoints_dir);
// Deletes a checkpoint so that a kill at any moment leaves it either whole under its name
// or gone from it (renamed to a hidden name first, then removed).
void prune_checkpoint(const std::filesystem::path& dir);

// Writes checkpoints_dir/step<state.global_step>. `tensors` are the optimizer's and RNG
// state. Every model parameter must be finite: a checkpoint with NaN or Inf weights is
// refused (Error naming the tensor), so a diverged run never replaces a good checkpoint.
std::filesystem::path save_checkpoint(
    const std::filesystem::path& checkpoints_dir, model::GptNeoXForCausalLM& model,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors, const TrainerState& state);

// The state and tensors of a checkpoint (the model is loaded with load_hf_checkpoint).
struct LoadedTrainerState {
  TrainerState state;
  std::map<std::string, at::Tensor> tensors;
};
LoadedTrainerState load_trainer_state(const std::filesystem::path& dir);
// trainer_state.json alone (cheap: no tensors), e.g. to tell whether a run has finished.
TrainerState read_trainer_state_json(const std::filesystem::path& dir);

// The checkpoints to delete after `latest` was written: all but the newest `keep_last`,
// except those whose step is in `keep_steps`.
std::vector<CheckpointInfo> checkpoints_to_prune(const std::vector<CheckpointInfo>& all,
                                                 int64_t keep_last,
                                                 const std::vector<int64_t>& keep_steps);

}  // namespace qf::train
