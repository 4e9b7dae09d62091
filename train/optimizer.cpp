#include "train/optimizer.h"

#include <cmath>

#include "core/errors.h"
#include "core/torch/compat.h"

namespace qf::train {

bool decays(const std::string& /*name*/, const at::Tensor& param) {
  // GPT-NeoX's biases and LayerNorm weights and biases are exactly its 1-D parameters;
  // gpt-neox's get_params_for_weight_decay_optimization exempts those.
  return param.dim() >= 2;
}

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWOptions options)
    : options_(options) {
  for (auto& [name, p] : params) {
    const bool d = decays(name, p);
    slots_.push_back({name, p, at::zeros_like(p, at::MemoryFormat::Contiguous),
                      at::zeros_like(p, at::MemoryFormat::Contiguous), d});
  }
}

std::vector<at::Tensor> AdamW::grads() const {
  std::vector<at::Tensor> out;
  for (const auto& s : slots_) {
    if (s.param.grad().defined()) out.push_back(s.param.grad());
  }
  return out;
}

namespace {

// clip_grad_norm_'s total: the norm of the stacked per-tensor norms (linalg.vector_norm,
// as torch.norm is in 1.13), a float32 scalar tensor.
at::Tensor total_norm(const std::vector<at::Tensor>& grads) {
  std::vector<at::Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) norms.push_back(at::linalg_vector_norm(g.detach(), 2));
  return at::linalg_vector_norm(at::stack(norms), 2);
}

}  // namespace

double AdamW::gradient_norm() const {
  const auto gs = grads();
  return gs.empty() ? 0.0 : total_norm(gs).item<double>();
}

double AdamW::clip_gradients() {
  const auto gs = grads();
  if (gs.empty()) return 0.0;
  const at::Tensor total = total_norm(gs);
  if (options_.clip_norm > 0) {
    // Python's `max_norm / (total + 1e-6)` is Tensor.__rtruediv__: reciprocal, then times.
    const at::Tensor coef = at::clamp_max((total + 1e-6).reciprocal() * options_.clip_norm, 1.0);
    for (const auto& g : gs) g.detach().mul_(coef.to(g.device()));
  }
  return total.item<double>();
}

void AdamW::zero_grad() {
  for (auto& s : slots_) {
    if (s.param.grad().defined()) s.param.mutable_grad() = at::Tensor();
  }
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++steps_;
  if (options_.fused && torch_compat::kHasFusedAdamw && !slots_.empty() &&
      slots_.front().param.is_cuda()) {
    step_fused(lr);
    return;
  }
  const double b1 = options_.beta1, b2 = options_.beta2;
  // torch.optim.AdamW (1.13, single tensor), in its order of operations: the scalars are
  // Python floats (double) there too.
  const double bias_correction1 = 1 - std::pow(b1, static_cast<double>(steps_));
  const double bias_correction2 = 1 - std::pow(b2, static_cast<double>(steps_));
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (auto& s : slots_) {
    const at::Tensor& g = s.param.grad();
    if (!g.defined()) continue;
    const double wd = s.decay ? options_.weight_decay : 0.0;
    s.param.mul_(1 - lr * wd);
    s.exp_avg.mul_(b1).add_(g, 1 - b1);
    s.exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2);
    const at::Tensor denom = (s.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(options_.eps);
    s.param.addcdiv_(s.exp_avg, denom, -step_size);
  }
}

void AdamW::step_fused(double lr) {
  // One launch per weight-decay group; the kernel counts steps in its own tensors.
  for (const bool decay : {true, false}) {
    std::vector<at::Tensor> params, gs, m, v, steps;
    for (auto& s : slots_) {
      if (s.decay != decay || !s.param.grad().defined()) continue;
      params.push_back(s.param);
      gs.push_back(s.param.grad());
      m.push_back(s.exp_avg);
      v.push_back(s.exp_avg_sq);
      steps.push_back(at::full({}, static_cast<double>(steps_ - 1),
                               s.param.options().dtype(at::kFloat)));
    }
    if (params.empty()) continue;
    torch_compat::fused_adamw(params, gs, m, v, steps, lr, options_.beta1, options_.beta2,
                              decay ? options_.weight_decay : 0.0, options_.eps);
  }
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& s : slots_) {
    out.emplace_back("exp_avg/" + s.name, s.exp_avg);
    out.emplace_back("exp_avg_sq/" + s.name, s.exp_avg_sq);
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& tensors, int64_t steps,
                       const std::string& source) {
  at::NoGradGuard no_grad;
  for (auto& s : slots_) {
    for (const std::string kind : {"exp_avg/", "exp_avg_sq/"}) {
      const std::string key = kind + s.name;
      const auto it = tensors.find(key);
      if (it == tensors.end()) {
        throw FormatError(source + ": optimizer state '" + key + "' is missing");
      }
      at::Tensor& dst = kind == "exp_avg/" ? s.exp_avg : s.exp_avg_sq;
      if (it->second.sizes() != dst.sizes()) {
        throw FormatError(source + ": optimizer state '" + key + "' has shape " +
                          c10::str(it->second.sizes()) + ", the parameter " +
                          c10::str(dst.sizes()));
      }
      dst.copy_(it->second);
    }
  }
  steps_ = steps;
}

}  // namespace qf::train
