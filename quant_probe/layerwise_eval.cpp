#include "quant_probe/layerwise_eval.h"

#include <cmath>
#include <optional>
#include <vector>

#include "core/errors.h"
#include "core/torch/cpu_block_cache.h"
#include "model/attention.h"
#include "model/linear_cross_entropy.h"

namespace qf::quant {

namespace {

void check_windows(const model::GptNeoXForCausalLM& m, const at::Tensor& windows) {
  const auto& c = m->config();
  if (windows.dim() != 2 || windows.size(0) < 1 || windows.size(1) < 2) {
    throw Error("evaluation windows must be [N >= 1, T + 1 >= 2] token ids");
  }
  const std::int64_t t = windows.size(1) - 1;
  if (t > c.max_position_embeddings) {
    throw Error("evaluation sequences of " + std::to_string(t) +
                " input tokens exceed the model's " + "max_position_embeddings (" +
                std::to_string(c.max_position_embeddings) + ")");
  }
  const std::int64_t lo = windows.min().item<std::int64_t>(),
                     hi = windows.max().item<std::int64_t>();
  if (lo < 0 || hi >= c.vocab_size) {
    const std::int64_t bad = lo < 0 ? lo : hi;
    const at::Tensor where = (windows == bad).nonzero()[0].cpu();
    throw Error("evaluation token id " + std::to_string(bad) + " (sequence " +
                std::to_string(where[0].item<std::int64_t>()) + ", position " +
                std::to_string(where[1].item<std::int64_t>()) +
                ") is outside the model's vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  }
}

// Rows of logits computed at once: about 32 MB of them (and as much again for their
// log-softmax), a quarter of linear_cross_entropy's training default, which the probe's
// memory budget cannot spare; each block still reads the whole embed_out once.
std::int64_t logits_block_rows(std::int64_t vocab) {
  return std::max<std::int64_t>(64, (std::int64_t{8} << 20) / vocab);
}

// Restores the model's training flag however the evaluation ends.
struct EvalMode {
  explicit EvalMode(model::GptNeoXForCausalLM& m) : model(m), was_training(m->is_training()) {
    model->eval();
  }
  ~EvalMode() { model->train(was_training); }
  model::GptNeoXForCausalLM& model;
  bool was_training;
};

}  // namespace

EvalResult evaluate_layerwise(model::GptNeoXForCausalLM& m, const at::Tensor& windows,
                              const EvalOptions& options, const LayerHooks& hooks) {
  if (options.batch_size < 1) throw ConfigError("probe.batch_size must be at least 1");
  check_windows(m, windows);
  torch::NoGradGuard no_grad;
  EvalMode mode(m);
  const auto& c = m->config();
  auto& body = *m->gpt_neox;
  const std::int64_t n = windows.size(0), t = windows.size(1) - 1;
  const at::Tensor ids = windows.to(m->device(), at::kLong);
  const auto [cos, sin] =
      model::rotary_tables(t, c.rotary_ndims(), c.rotary_emb_base, m->device(), m->dtype());
  // On the CPU the evaluation's buffers are reused by size (see cpu_block_cache.h): the
  // same few per layer and batch, so after the first batch the heap neither grows nor
  // fragments, and no page is faulted in again.
  std::optional<ScopedCpuBlockCache> buffers;
  if (m->device().is_cpu()) buffers.emplace();
  const auto release_buffers = [&] {
    if (buffers) ScopedCpuBlockCache::release();
  };
  const std::int64_t batch = options.batch_size;
  const std::int64_t chunk =
      hooks ? std::max(batch, options.chunk_sequences / batch * batch) : batch;

  // The chunk's activations live in one buffer for the whole evaluation, and each layer's
  // output is copied back into its batch's slot: a layer's temporaries then come and go
  // around nothing that stays, so the heap does not fragment batch after batch.
  const at::Tensor buffer = at::empty({std::min(n, chunk), t, c.hidden_size},
                                      body.embed_in->weight.options().requires_grad(false));
  double loss_sum = 0;
  for (std::int64_t c0 = 0; c0 < n; c0 += chunk) {
    const std::int64_t c1 = std::min(n, c0 + chunk);
    std::vector<at::Tensor> x;  // the chunk's activations, one view of `buffer` per batch
    for (std::int64_t b = c0; b < c1; b += batch) {
      const at::Tensor ids_in = ids.slice(0, b, std::min(c1, b + batch)).narrow(1, 0, t);
      x.push_back(buffer.narrow(0, b - c0, ids_in.size(0)));
      x.back().copy_(at::embedding(body.embed_in->weight, ids_in));
    }
    for (std::int64_t layer = 0; layer < static_cast<std::int64_t>(body.layers->size()); ++layer) {
      if (hooks.before) hooks.before(layer);
      auto& impl = *body.layers[static_cast<std::size_t>(layer)]->as<model::GptNeoXLayer>();
      for (auto& h : x) h.copy_(impl.forward(h, cos, sin));
      if (hooks.after) hooks.after(layer);
    }
    release_buffers();  // the loss head's buffers (blocks of logits) are other sizes
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::int64_t b = c0 + static_cast<std::int64_t>(i) * batch;
      const at::Tensor h = at::layer_norm(x[i], {c.hidden_size}, body.final_layer_norm->weight,
                                          body.final_layer_norm->bias, c.layer_norm_eps);
      const at::Tensor targets =
          ids.slice(0, b, std::min(c1, b + batch)).narrow(1, 1, t).reshape({-1});
      // detach(): linear_cross_entropy forms gradients whenever an input requires them,
      // whatever the grad mode, and a parameter always does (154 MB and two GEMMs for
      // Pythia-160m's embed_out, for nothing).
      const at::Tensor loss =
          model::linear_cross_entropy(h.reshape({-1, c.hidden_size}), m->embed_out->weight.detach(),
                                      targets, logits_block_rows(c.vocab_size));
      loss_sum += loss.item<double>() * static_cast<double>(targets.numel());
    }
    release_buffers();
  }
  EvalResult r;
  r.tokens = n * t;
  r.loss = loss_sum / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.loss);
  return r;
}

}  // namespace qf::quant
