#include "train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/json_field.h"
#include "core/step_name.h"
#include "core/torch/tensor_io.h"
#include "model/hf_checkpoint.h"

namespace fs = std::filesystem;

namespace qf::train {
namespace {

constexpr const char* kStateJson = "trainer_state.json";
constexpr const char* kStateTensors = "trainer_state.safetensors";

// Test hook for the reliability tests: QF_FAULT=crash_in_checkpoint_write[:STEP] makes
// the process die (as from kill -9) halfway through writing a checkpoint (of that step).
void maybe_crash_midway(int64_t step) {
  const char* fault = std::getenv("QF_FAULT");
  if (!fault) return;
  const std::string f = fault, name = "crash_in_checkpoint_write";
  if (f == name || f == name + ":" + std::to_string(step)) ::_exit(137);
}

// QF_FAULT=crash_in_prune: die (as from kill -9) after the first file of a pruned
// checkpoint is gone, which is where a kill used to leave a half-deleted step<N>.
void maybe_crash_in_prune(const fs::path& dir) {
  const char* fault = std::getenv("QF_FAULT");
  if (!fault || std::string(fault) != "crash_in_prune") return;
  for (const auto& entry : fs::directory_iterator(dir)) {
    fs::remove(entry.path());
    ::_exit(137);
  }
}

}  // namespace

nlohmann::json TrainerState::to_json() const {
  return {{"format", kTrainerStateFormat},
          {"run_steps", run_steps},
          {"global_step", global_step},
          {"base_step", base_step},
          {"optimizer_steps", optimizer_steps},
          {"tokens", tokens},
          {"skipped_steps", skipped_steps},
          {"world_size", world_size},
          {"cursor", cursor},
          {"schedule", schedule},
          {"fingerprint", fingerprint},
          {"fingerprint_keys", fingerprint_keys},
          {"switch_after", switch_after},
          {"switch_schedule", switch_schedule},
          {"stop_reason", stop_reason}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& where) {
  const std::string what = where + ": trainer state";
  if (!j.is_object() || json_field<std::string>(j, "format", what) != kTrainerStateFormat) {
    throw FormatError(where + ": not a " + std::string(kTrainerStateFormat) + " file");
  }
  TrainerState s;
  s.run_steps = json_field<int64_t>(j, "run_steps", what);
  s.global_step = json_field<int64_t>(j, "global_step", what);
  s.base_step = json_field<int64_t>(j, "base_step", what);
  s.optimizer_steps = json_field<int64_t>(j, "optimizer_steps", what);
  s.tokens = json_field<int64_t>(j, "tokens", what);
  s.skipped_steps = json_field<int64_t>(j, "skipped_steps", what);
  s.world_size = json_field<int>(j, "world_size", what);
  s.cursor = json_field<nlohmann::json>(j, "cursor", what);
  s.schedule = json_field<std::string>(j, "schedule", what);
  s.fingerprint = json_field<std::string>(j, "fingerprint", what);
  s.fingerprint_keys = json_field<nlohmann::json>(j, "fingerprint_keys", what);
  // Absent in checkpoints written before runs could switch or stop early.
  if (j.contains("switch_after")) {
    s.switch_after = json_field<int64_t>(j, "switch_after", what);
    s.switch_schedule = json_field<std::string>(j, "switch_schedule", what);
  }
  if (j.contains("stop_reason")) s.stop_reason = json_field<std::string>(j, "stop_reason", what);
  return s;
}

std::vector<CheckpointInfo> list_checkpoints(const fs::path& checkpoints_dir) {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  if (!fs::is_directory(checkpoints_dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(checkpoints_dir)) {
    if (!entry.is_directory()) continue;
    const auto step = checkpoint_dir_step(entry.path());
    if (step && fs::exists(entry.path() / kStateJson)) out.push_back({*step, entry.path()});
  }
  std::sort(out.begin(), out.end(),
            [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.step < b.step; });
  return out;
}

std::vector<fs::path> remove_partial_checkpoints(const fs::path& checkpoints_dir) {
  std::vector<fs::path> removed;
  std::error_code ec;
  if (!fs::is_directory(checkpoints_dir, ec)) return removed;
  static const std::regex partial(R"((\.step[0-9]+\.tmp.*)|(step[0-9]+\.old\..*))");
  for (const auto& entry : fs::directory_iterator(checkpoints_dir)) {
    const std::string name = entry.path().filename().string();
    // A step<N> without trainer_state.json is what a kill during pruning left before
    // pruning renamed first (the state file is written last, and renamed in whole).
    const bool orphan = entry.is_directory() && checkpoint_dir_step(entry.path()) &&
                        !fs::exists(entry.path() / kStateJson);
    if (orphan || std::regex_match(name, partial) || is_deletion_leftover(name)) {
      fs::remove_all(entry.path(), ec);
      removed.push_back(entry.path());
    }
  }
  return removed;
}

fs::path save_checkpoint(const fs::path& checkpoints_dir, model::GptNeoXForCausalLM& model,
                         const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                         const TrainerState& state) {
  for (const auto& item : model->named_parameters()) {
    if (!at::isfinite(item.value().detach()).all().item<bool>()) {
      throw Error("refusing to write checkpoint step" + std::to_string(state.global_step) +
                  ": parameter '" + item.key() + "' holds NaN or Inf values");
    }
  }
  fs::create_directories(checkpoints_dir);
  const std::string name = "step" + std::to_string(state.global_step);
  const fs::path tmp = checkpoints_dir / ("." + name + ".tmp");
  const fs::path dir = checkpoints_dir / name;
  std::error_code ec;
  fs::remove_all(tmp, ec);
  model::save_hf_checkpoint(model, tmp);
  maybe_crash_midway(state.global_step);
  save_safetensors(tmp / kStateTensors, tensors, {{"format", kTrainerStateFormat}});
  write_text_atomically(tmp / kStateJson, state.to_json().dump(2) + "\n");
  replace_directory(tmp, dir);
  return dir;
}

TrainerState read_trainer_state_json(const fs::path& dir) {
  const fs::path json_path = dir / kStateJson;
  std::ifstream in(json_path);
  if (!in) {
    throw Error(dir.string() + ": no " + kStateJson +
                " (not a quantfork training checkpoint, or an incomplete one)");
  }
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(json_path.string() + ": not valid JSON (" + e.what() + ")");
  }
  return TrainerState::from_json(j, json_path.string());
}

LoadedTrainerState load_trainer_state(const fs::path& dir) {
  LoadedTrainerState out;
  out.state = read_trainer_state_json(dir);
  out.tensors = load_tensors(dir / kStateTensors);
  return out;
}

void prune_checkpoint(const fs::path& dir) {
  const fs::path doomed = move_aside_for_deletion(dir);
  maybe_crash_in_prune(doomed);
  std::error_code ec;
  fs::remove_all(doomed, ec);
}

std::vector<CheckpointInfo> checkpoints_to_prune(const std::vector<CheckpointInfo>& all,
                                                 int64_t keep_last,
                                                 const std::vector<int64_t>& keep_steps) {
  const std::set<int64_t> kept(keep_steps.begin(), keep_steps.end());
  std::vector<CheckpointInfo> out;
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t i = 0; i < n - std::max<int64_t>(keep_last, 1); ++i) {
    if (!kept.count(all[i].step)) out.push_back(all[i]);
  }
  return out;
}

}  // namespace qf::train
