#include "model/checkpoint_average.h"

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.h"
#include "core/torch/tensor_io.h"
#include "model/hf_checkpoint.h"

namespace fs = std::filesystem;

namespace qf::model {
namespace {

// The settings of config.json that change the network a checkpoint's tensors belong to,
// by HF name, as text: two checkpoints average only when all of them are equal.
std::map<std::string, std::string> architecture(const GptNeoXConfig& c) {
  const auto text = [](auto v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  return {{"vocab_size", text(c.vocab_size)},
          {"hidden_size", text(c.hidden_size)},
          {"num_hidden_layers", text(c.num_hidden_layers)},
          {"num_attention_heads", text(c.num_attention_heads)},
          {"intermediate_size", text(c.intermediate_size)},
          {"hidden_act", c.hidden_act},
          {"rotary_pct", text(c.rotary_pct)},
          {"rotary_emb_base", text(c.rotary_emb_base)},
          {"max_position_embeddings", text(c.max_position_embeddings)},
          {"layer_norm_eps", text(c.layer_norm_eps)},
          {"tie_word_embeddings", text(c.tie_word_embeddings)},
          {"use_parallel_residual", text(c.use_parallel_residual)},
          {"attention_bias", text(c.attention_bias)}};
}

void check_same_architecture(const GptNeoXConfig& first, const fs::path& first_dir,
                             const GptNeoXConfig& other, const fs::path& other_dir) {
  const auto a = architecture(first), b = architecture(other);
  for (const auto& [key, value] : a) {
    if (b.at(key) == value) continue;
    throw ConfigError("cannot average checkpoints of different models: " +
                      (other_dir / "config.json").string() + " has " + key + " " + b.at(key) +
                      ", " + (first_dir / "config.json").string() + " has " + value);
  }
}

at::ScalarType stored_dtype(const LoadedModel& loaded) {
  const TensorFile file = TensorFile::open(loaded.weight_files.front());
  for (const auto& item : loaded.model->named_parameters()) {
    if (file.has(item.key())) return to_scalar_type(file.dtype(item.key()));
  }
  return at::kFloat;
}

}  // namespace

AveragedModel average_checkpoints(const std::vector<AverageInput>& inputs) {
  if (inputs.empty()) throw UsageError("averaging needs at least one checkpoint");
  AveragedModel out;
  out.inputs = inputs;
  std::map<std::string, at::Tensor> sums;  // float64
  torch::NoGradGuard no_grad;
  for (const AverageInput& input : inputs) {
    LoadedModel loaded = load_hf_checkpoint(input.dir);
    if (!out.model) {
      out.model = loaded.model;
      out.input_dtype = stored_dtype(loaded);
      for (const auto& item : loaded.model->named_parameters()) {
        sums.emplace(item.key(), item.value().to(at::kDouble));
      }
      continue;
    }
    check_same_architecture(out.model->config(), inputs.front().dir, loaded.model->config(),
                            input.dir);
    for (const auto& item : loaded.model->named_parameters()) sums.at(item.key()) += item.value();
  }
  const double count = static_cast<double>(inputs.size());
  for (auto& item : out.model->named_parameters()) {
    item.value().copy_((sums.at(item.key()) / count).to(at::kFloat));
  }
  return out;
}

void save_averaged_checkpoint(AveragedModel& average, const fs::path& dir,
                              std::optional<at::ScalarType> dtype) {
  nlohmann::json steps = nlohmann::json::array(), dirs = nlohmann::json::array();
  for (const AverageInput& input : average.inputs) {
    steps.push_back(input.step ? nlohmann::json(*input.step) : nlohmann::json(nullptr));
    dirs.push_back(input.dir.string());
  }
  save_hf_checkpoint(average.model, dir, dtype.value_or(at::kFloat),
                     {{"quantfork.average", "lawa"},
                      {"quantfork.averaged_steps", steps.dump()},
                      {"quantfork.averaged_checkpoints", dirs.dump()}});
}

}  // namespace qf::model
