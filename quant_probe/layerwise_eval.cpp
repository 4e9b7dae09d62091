#include "quant_probe/layerwise_eval.h"

#include <cmath>
#include <tuple>
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

// What both evaluations share: the checks, eval mode without gradients, the ids on the
// model's device, the rotary tables and the CPU buffer cache.
struct EvalContext {
  EvalContext(model::GptNeoXForCausalLM& m, const at::Tensor& windows, const EvalOptions& o)
      : model(m), mode((check(m, windows, o), m)) {
    const auto& c = m->config();
    n = windows.size(0);
    t = windows.size(1) - 1;
    ids = windows.to(m->device(), at::kLong);
    std::tie(cos, sin) =
        model::rotary_tables(t, c.rotary_ndims(), c.rotary_emb_base, m->device(), m->dtype());
    // On the CPU the evaluation's buffers are reused by size (see cpu_block_cache.h): the
    // same few per layer and batch, so after the first batch the heap neither grows nor
    // fragments, and no page is faulted in again.
    if (m->device().is_cpu()) buffers.emplace();
  }
  static void check(model::GptNeoXForCausalLM& m, const at::Tensor& windows, const EvalOptions& o) {
    if (o.batch_size < 1) throw ConfigError("probe.batch_size must be at least 1");
    check_windows(m, windows);
  }
  void release_buffers() {
    if (buffers) ScopedCpuBlockCache::release();
  }
  model::GptNeoXLayerImpl& layer(std::int64_t l) {
    return *model->gpt_neox->layers[static_cast<std::size_t>(l)]->as<model::GptNeoXLayer>();
  }
  std::int64_t layers() const { return static_cast<std::int64_t>(model->gpt_neox->layers->size()); }
  // [rows, t, d] activations, allocated once and reused for every chunk.
  at::Tensor activations(std::int64_t rows) const {
    return at::empty({rows, t, model->config().hidden_size},
                     model->gpt_neox->embed_in->weight.options().requires_grad(false));
  }
  // One view of `buffer` per batch of the chunk [c0, c1), filled with the embeddings.
  std::vector<at::Tensor> embed(const at::Tensor& buffer, std::int64_t c0, std::int64_t c1,
                                std::int64_t batch) const {
    std::vector<at::Tensor> x;
    for (std::int64_t b = c0; b < c1; b += batch) {
      const at::Tensor ids_in = ids.slice(0, b, std::min(c1, b + batch)).narrow(1, 0, t);
      x.push_back(buffer.narrow(0, b - c0, ids_in.size(0)));
      x.back().copy_(at::embedding(model->gpt_neox->embed_in->weight, ids_in));
    }
    return x;
  }
  // Σ over the chunk's batches of (mean loss × tokens): final LayerNorm and loss head.
  double head_loss_sum(const std::vector<at::Tensor>& x, std::int64_t c0, std::int64_t c1,
                       std::int64_t batch) const {
    const auto& c = model->config();
    auto& body = *model->gpt_neox;
    double sum = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::int64_t b = c0 + static_cast<std::int64_t>(i) * batch;
      const at::Tensor h = at::layer_norm(x[i], {c.hidden_size}, body.final_layer_norm->weight,
                                          body.final_layer_norm->bias, c.layer_norm_eps);
      const at::Tensor targets =
          ids.slice(0, b, std::min(c1, b + batch)).narrow(1, 1, t).reshape({-1});
      // detach(): linear_cross_entropy forms gradients whenever an input requires them,
      // whatever the grad mode, and a parameter always does (154 MB and two GEMMs for
      // Pythia-160m's embed_out, for nothing).
      const at::Tensor loss = model::linear_cross_entropy(
          h.reshape({-1, c.hidden_size}), model->embed_out->weight.detach(), targets,
          logits_block_rows(c.vocab_size));
      sum += loss.item<double>() * static_cast<double>(targets.numel());
    }
    return sum;
  }
  EvalResult result(double loss_sum) const {
    EvalResult r;
    r.tokens = n * t;
    r.loss = loss_sum / static_cast<double>(r.tokens);
    r.ppl = std::exp(r.loss);
    return r;
  }

  model::GptNeoXForCausalLM& model;
  torch::NoGradGuard no_grad;
  EvalMode mode;
  std::int64_t n = 0, t = 0;
  at::Tensor ids, cos, sin;
  std::optional<ScopedCpuBlockCache> buffers;
};

}  // namespace

EvalResult evaluate_layerwise(model::GptNeoXForCausalLM& m, const at::Tensor& windows,
                              const EvalOptions& options, const LayerHooks& hooks) {
  EvalContext ctx(m, windows, options);
  const std::int64_t batch = options.batch_size;
  const std::int64_t chunk =
      hooks ? std::max(batch, options.chunk_sequences / batch * batch) : batch;
  // The chunk's activations live in one buffer for the whole evaluation, and each layer's
  // output is copied back into its batch's slot: a layer's temporaries then come and go
  // around nothing that stays, so the heap does not fragment batch after batch.
  const at::Tensor buffer = ctx.activations(std::min(ctx.n, chunk));
  double loss_sum = 0;
  for (std::int64_t c0 = 0; c0 < ctx.n; c0 += chunk) {
    const std::int64_t c1 = std::min(ctx.n, c0 + chunk);
    std::vector<at::Tensor> x = ctx.embed(buffer, c0, c1, batch);
    for (std::int64_t layer = 0; layer < ctx.layers(); ++layer) {
      if (hooks.before) hooks.before(layer);
      auto& impl = ctx.layer(layer);
      for (auto& h : x) h.copy_(impl.forward(h, ctx.cos, ctx.sin));
      if (hooks.after) hooks.after(layer);
    }
    ctx.release_buffers();  // the loss head's buffers (blocks of logits) are other sizes
    loss_sum += ctx.head_loss_sum(x, c0, c1, batch);
    ctx.release_buffers();
  }
  return ctx.result(loss_sum);
}

std::vector<EvalResult> evaluate_perturbations(model::GptNeoXForCausalLM& m,
                                               const at::Tensor& windows,
                                               const EvalOptions& options,
                                               const std::vector<LayerPerturbation>& units,
                                               std::int64_t* layer_passes) {
  EvalContext ctx(m, windows, options);
  const std::int64_t layers = ctx.layers();
  for (const auto& u : units) {
    if (u.layer < 0 || u.layer >= layers) {
      throw Error("a perturbation of layer " + std::to_string(u.layer) + " in a model of " +
                  std::to_string(layers) + " layers");
    }
  }
  const std::int64_t batch = options.batch_size;
  // The float inputs of every layer plus one working copy share the activation budget.
  const std::int64_t chunk =
      std::max(batch, options.chunk_sequences / (layers + 1) / batch * batch);
  const std::int64_t rows = std::min(ctx.n, chunk);
  std::vector<at::Tensor> inputs;  // inputs[l]: the float activations entering layer l
  for (std::int64_t l = 0; l < layers; ++l) inputs.push_back(ctx.activations(rows));
  const at::Tensor work = ctx.activations(rows);
  std::vector<double> sums(units.size(), 0.0);
  std::int64_t passes = 0;
  for (std::int64_t c0 = 0; c0 < ctx.n; c0 += chunk) {
    const std::int64_t c1 = std::min(ctx.n, c0 + chunk);
    const std::int64_t used = c1 - c0;
    std::vector<at::Tensor> x = ctx.embed(inputs[0], c0, c1, batch);
    for (std::int64_t l = 0; l + 1 < layers; ++l) {
      auto& impl = ctx.layer(l);
      for (std::size_t i = 0; i < x.size(); ++i) {
        at::Tensor next = inputs[static_cast<std::size_t>(l + 1)].narrow(
            0, static_cast<std::int64_t>(i) * batch, x[i].size(0));
        next.copy_(impl.forward(x[i], ctx.cos, ctx.sin));
        x[i] = next;
      }
      ++passes;
    }
    for (std::size_t u = 0; u < units.size(); ++u) {
      const LayerPerturbation& p = units[u];
      work.narrow(0, 0, used).copy_(inputs[static_cast<std::size_t>(p.layer)].narrow(0, 0, used));
      std::vector<at::Tensor> h;
      for (std::int64_t b = 0; b < used; b += batch) {
        h.push_back(work.narrow(0, b, std::min(batch, used - b)));
      }
      for (std::int64_t l = p.layer; l < layers; ++l) {
        if (l == p.layer && p.apply) p.apply();
        try {
          auto& impl = ctx.layer(l);
          for (auto& hb : h) hb.copy_(impl.forward(hb, ctx.cos, ctx.sin));
        } catch (...) {
          if (l == p.layer && p.restore) p.restore();
          throw;
        }
        if (l == p.layer && p.restore) p.restore();
        ++passes;
      }
      ctx.release_buffers();
      sums[u] += ctx.head_loss_sum(h, c0, c1, batch);
      ctx.release_buffers();
    }
  }
  if (layer_passes) *layer_passes = passes;
  std::vector<EvalResult> out;
  for (double s : sums) out.push_back(ctx.result(s));
  return out;
}

}  // namespace qf::quant
