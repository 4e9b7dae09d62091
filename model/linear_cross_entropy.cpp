#include "model/linear_cross_entropy.h"

#include <torch/torch.h>

#include <algorithm>

#include "core/torch/cpu_gemm.h"

namespace qf::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class LinearCrossEntropy : public torch::autograd::Function<LinearCrossEntropy> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden,
                            const at::Tensor& weight, const at::Tensor& targets,
                            std::int64_t block_rows) {
    const std::int64_t n = hidden.size(0);
    const bool grad_hidden_wanted = hidden.requires_grad();
    const bool grad_weight_wanted = weight.requires_grad();
    at::Tensor grad_hidden, grad_weight;
    if (grad_hidden_wanted) grad_hidden = at::empty_like(hidden);
    // Accumulated over blocks: in float32 even for half-precision weights.
    if (grad_weight_wanted)
      grad_weight = at::zeros(weight.sizes(), weight.options().dtype(at::kFloat));
    at::Tensor loss_sum = at::zeros({}, hidden.options().dtype(at::kFloat));
    const double inv_n = 1.0 / static_cast<double>(n);
    for (std::int64_t begin = 0; begin < n; begin += block_rows) {
      const std::int64_t rows = std::min(block_rows, n - begin);
      const at::Tensor h = hidden.narrow(0, begin, rows);
      const at::Tensor t = targets.narrow(0, begin, rows).unsqueeze(1);
      // The same log_softmax the plain chain's cross_entropy takes, in float32; in the
      // logits' own memory where they are float32 (bitwise the same, one block less).
      at::Tensor logp = gemm(h, weight.t());
      if (logp.scalar_type() == at::kFloat) {
        at::_log_softmax_out(logp, logp, 1, /*half_to_float=*/false);
      } else {
        logp = at::log_softmax(logp, 1, at::kFloat);
      }
      loss_sum.sub_(logp.gather(1, t).sum());
      if (!grad_hidden_wanted && !grad_weight_wanted) continue;
      // d(mean loss)/d(logits) = (softmax - onehot) / N, formed in logp's memory.
      at::Tensor g = logp.exp_();
      g.scatter_add_(1, t, at::full({rows, 1}, -1.0, g.options()));
      g.mul_(inv_n);
      const at::Tensor g_low = g.to(weight.scalar_type());
      if (grad_hidden_wanted) {
        at::Tensor rows_of_grad = grad_hidden.narrow(0, begin, rows);
        gemm_out(rows_of_grad, g_low, weight);
      }
      if (grad_weight_wanted) gemm_out(grad_weight, g.t(), h.to(at::kFloat), /*accumulate=*/true);
    }
    if (grad_weight_wanted) grad_weight = grad_weight.to(weight.scalar_type());
    ctx->save_for_backward({grad_hidden, grad_weight});
    return loss_sum.mul_(inv_n);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& scale = grad_outputs[0];
    variable_list grads(4);
    for (std::size_t i = 0; i < 2; ++i) {
      if (saved[i].defined()) grads[i] = saved[i] * scale.to(saved[i].scalar_type());
    }
    return grads;
  }
};

}  // namespace

at::Tensor linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight,
                                const at::Tensor& targets, std::int64_t block_rows) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "linear_cross_entropy: hidden [N, d] and weight [vocab, d] expected");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0),
              "linear_cross_entropy: targets [N] expected");
  if (block_rows <= 0) {
    // Blocks of about 128 MB of float32 logits, evened out: a last block of a few rows
    // would run its three GEMMs at a fraction of the others' speed.
    const std::int64_t n = hidden.size(0);
    const std::int64_t target =
        std::max<std::int64_t>(64, (std::int64_t{32} << 20) / weight.size(0));
    const std::int64_t blocks = std::max<std::int64_t>(1, (n + target - 1) / target);
    block_rows = std::max<std::int64_t>(1, (n + blocks - 1) / blocks);
  }
  return LinearCrossEntropy::apply(hidden, weight, targets, block_rows);
}

}  // namespace qf::model
