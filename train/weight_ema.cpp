#include "train/weight_ema.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "model/hf_checkpoint.h"

namespace qf::train {

WeightEma::WeightEma(const std::vector<std::pair<std::string, at::Tensor>>& params,
                     EmaOptions options)
    : options_(options) {
  at::NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    slots_.push_back({name, p, p.detach().to(at::kFloat, /*non_blocking=*/false, /*copy=*/true)});
  }
}

void WeightEma::update(int64_t optimizer_steps) {
  if (optimizer_steps % options_.every != 0) return;
  at::NoGradGuard no_grad;
  for (auto& s : slots_) {
    // w̄ ← β·w̄ + (1 − β)·w, as two float32 operations in this order on every device.
    s.average.mul_(options_.beta).add_(s.param.detach().to(at::kFloat), 1.0 - options_.beta);
  }
}

std::vector<std::pair<std::string, at::Tensor>> WeightEma::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& s : slots_) out.emplace_back(kEmaTensorPrefix + s.name, s.average);
  return out;
}

void WeightEma::load_state(const std::map<std::string, at::Tensor>& tensors,
                           const std::string& source) {
  at::NoGradGuard no_grad;
  for (auto& s : slots_) {
    const std::string key = kEmaTensorPrefix + s.name;
    const auto it = tensors.find(key);
    if (it == tensors.end()) {
      throw FormatError(source + ": no weight average '" + key +
                        "' (was the checkpoint written without train.ema?)");
    }
    if (it->second.sizes() != s.average.sizes()) {
      throw FormatError(source + ": weight average '" + key + "' has shape " +
                        c10::str(it->second.sizes()) + ", the parameter " +
                        c10::str(s.average.sizes()));
    }
    s.average.copy_(it->second);
  }
}

model::GptNeoXForCausalLM WeightEma::averaged_model(const model::GptNeoXForCausalLM& like) const {
  model::GptNeoXForCausalLM out(like->config());
  out->to(slots_.empty() ? at::Device(at::kCPU) : slots_.front().average.device(), at::kFloat);
  at::NoGradGuard no_grad;
  auto params = out->named_parameters();
  for (const auto& s : slots_) params[s.name].copy_(s.average);
  out->eval();
  return out;
}

void WeightEma::save(const model::GptNeoXForCausalLM& like, const std::filesystem::path& dir,
                     int64_t global_step) const {
  model::GptNeoXForCausalLM m = averaged_model(like);
  model::save_hf_checkpoint(m, dir, at::kFloat,
                            {{"quantfork.ema_beta", nlohmann::json(options_.beta).dump()},
                             {"quantfork.ema_every", std::to_string(options_.every)},
                             {"quantfork.ema_global_step", std::to_string(global_step)}});
}

}  // namespace qf::train
