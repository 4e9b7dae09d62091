#include "quant_probe/probe.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <regex>

#include "core/errors.h"
#include "core/torch/compat.h"
#include "core/torch/cpu_block_cache.h"
#include "model/hf_checkpoint.h"
#include "quant_probe/gptq_model.h"
#include "quant_probe/quantize.h"

namespace qf::quant {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// "gpt_neox.layers.7.mlp..." -> 7; anything else -> −1.
std::int64_t layer_of(const std::string& name) {
  static const std::regex pattern(R"(^gpt_neox\.layers\.([0-9]+)\.)");
  std::smatch m;
  return std::regex_search(name, m, pattern) ? std::stoll(m[1]) : -1;
}

// Replaces selected tensors in place a layer at a time (by quantizing them, or with given
// weights), keeping the FP32 originals of the layer being evaluated. Whatever is still
// replaced when it dies is put back.
class LayerSwapper {
 public:
  using Replace = std::function<void(std::size_t index, at::Tensor& param)>;
  LayerSwapper(std::vector<SelectedTensor>& selected, Replace replace)
      : selected_(selected), replace_(std::move(replace)) {
    for (std::size_t i = 0; i < selected.size(); ++i) by_layer_[selected[i].layer].push_back(i);
  }
  ~LayerSwapper() { restore_all(); }
  LayerSwapper(const LayerSwapper&) = delete;
  LayerSwapper& operator=(const LayerSwapper&) = delete;

  void replace(std::int64_t layer) {
    auto it = by_layer_.find(layer);
    if (it == by_layer_.end()) return;
    for (std::size_t i : it->second) {
      at::Tensor& p = selected_[i].param;
      saved_.emplace_back(i, p.clone());
      replace_(i, p);
    }
  }
  void restore_all() {
    at::NoGradGuard no_grad;
    for (auto& [i, original] : saved_) selected_[i].param.copy_(original);
    saved_.clear();
  }

 private:
  std::vector<SelectedTensor>& selected_;
  Replace replace_;
  std::map<std::int64_t, std::vector<std::size_t>> by_layer_;
  std::vector<std::pair<std::size_t, at::Tensor>> saved_;
};

std::int64_t weight_bytes(model::GptNeoXForCausalLM& m) {
  std::int64_t bytes = 0;
  for (const auto& p : m->parameters())
    bytes += p.numel() * static_cast<std::int64_t>(p.element_size());
  return bytes;
}

// One evaluation with selected tensors replaced a layer at a time (those outside the
// layers for the whole evaluation).
EvalResult swapped_eval(model::GptNeoXForCausalLM& m, const at::Tensor& windows,
                        std::vector<SelectedTensor>& selected, const LayerSwapper::Replace& replace,
                        const EvalOptions& eval) {
  LayerSwapper layer_q(selected, replace);
  LayerSwapper outside_q(selected, replace);
  outside_q.replace(-1);
  LayerHooks hooks;
  hooks.before = [&](std::int64_t layer) { layer_q.replace(layer); };
  hooks.after = [&](std::int64_t) { layer_q.restore_all(); };
  return evaluate_layerwise(m, windows, eval, hooks);
}

// One quantized evaluation; fills `sums` with each tensor's quantization sums (measured
// the first time each tensor is quantized).
EvalResult quantized_eval(model::GptNeoXForCausalLM& m, const at::Tensor& windows,
                          std::vector<SelectedTensor>& selected, const QuantScheme& scheme,
                          const EvalOptions& eval, std::vector<QuantErrorSums>& sums) {
  sums.assign(selected.size(), {});
  std::vector<bool> measured(selected.size(), false);
  return swapped_eval(
      m, windows, selected,
      [&](std::size_t i, at::Tensor& p) {
        const QuantErrorSums s = fake_quantize_into(p, p, scheme, selected[i].name);
        if (!measured[i]) {
          sums[i] = s;
          measured[i] = true;
        }
      },
      eval);
}

// GPTQ of the selected tensors on the calibration windows, then one evaluation with its
// weights swapped in a layer at a time.
// Returns GPTQ's weights, in `selected`'s order.
std::vector<at::Tensor> probe_gptq(model::GptNeoXForCausalLM& m, const at::Tensor& windows,
                                   const at::Tensor& calibration, const ProbeOptions& o,
                                   const EvalOptions& eval, std::vector<SelectedTensor>& selected,
                                   ProbeResult& r) {
  GptqModelOptions g;
  g.gptq = *o.gptq;
  g.include = o.include;
  g.exclude = o.exclude;
  g.calibration_keys = "probe.gptq.calibration.";
  const GptqModelResult q = gptq_model(m, calibration, g);
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < selected.size(); ++i) index[selected[i].name] = i;
  std::vector<at::Tensor> weights(selected.size());
  for (const GptqTensor& t : q.tensors) {
    const std::size_t i = index.at(t.name);
    weights[i] = t.result.dequantized;
    r.tensors[i].rel_error_int4_gptq = t.rel_error_weight;
    r.tensors[i].rel_output_error_int4_gptq = t.rel_error_output;
  }
  r.int4_gptq = swapped_eval(
      m, windows, selected, [&](std::size_t i, at::Tensor& p) { p.copy_(weights[i]); }, eval);
  r.gap_int4_gptq_pct = gap_pct(r.int4_gptq->ppl, r.fp32.ppl);
  r.gptq_calibration_tokens = q.calibration_tokens;
  r.gptq_seconds = q.seconds;
  spdlog::debug("probe: GPTQ INT4 perplexity {:.6f} ({:.1f} s of GPTQ)", r.int4_gptq->ppl,
                q.seconds);
  return weights;
}

}  // namespace

std::vector<SelectedTensor> select_tensors(model::GptNeoXForCausalLM& m, const ProbeOptions& o) {
  const std::regex include(o.include);
  const std::optional<std::regex> exclude =
      o.exclude.empty() ? std::nullopt : std::optional<std::regex>(std::regex(o.exclude));
  std::vector<SelectedTensor> out;
  for (auto& item : m->named_parameters()) {
    const std::string& name = item.key();
    if (!std::regex_match(name, include) || (exclude && std::regex_match(name, *exclude))) continue;
    const at::Tensor& p = item.value();
    if (p.dim() != 2 || !at::isFloatingType(p.scalar_type())) {
      throw ConfigError("probe.tensors.include matches '" + name +
                        "', which is not a 2-D floating weight; only such tensors can be "
                        "quantized (narrow the pattern or add it to probe.tensors.exclude)");
    }
    for (const QuantScheme* s : {&o.int4, &o.int8}) {
      try {
        s->group_length(p.size(1), "'" + name + "'");
      } catch (const Error& e) {
        throw ConfigError(std::string("probe: ") + e.what());
      }
    }
    out.push_back({name, layer_of(name), p});
  }
  if (out.empty()) {
    throw ConfigError("probe.tensors.include '" + o.include + "' (minus probe.tensors.exclude '" +
                      o.exclude + "') matches no parameter of the model");
  }
  return out;
}

at::Tensor windows_tensor(const data::TokenRows& rows) {
  return at::tensor(rows.tokens, at::kLong).view({rows.rows, rows.row_tokens});
}

ProbeResult probe_model(model::GptNeoXForCausalLM& m, const at::Tensor& windows,
                        const ProbeOptions& o, const at::Tensor& calibration) {
  if (m->dtype() != at::kFloat) {
    throw Error(std::string("the probe measures float32 perplexity; the model is ") +
                c10::toString(m->dtype()));
  }
  if (o.gptq && !calibration.defined()) {
    throw Error("probe.gptq.enabled: the probe was given no calibration windows");
  }
  const auto start = std::chrono::steady_clock::now();
  torch_compat::ScopedNoTf32 no_tf32;
  torch::NoGradGuard no_grad;
  // The statistics' temporaries and the evaluations' buffers are reused by size and
  // handed back between phases (see cpu_block_cache.h), so none of them stays resident
  // in a fragmented heap next to the next phase's.
  std::optional<ScopedCpuBlockCache> buffers;
  if (m->device().is_cpu()) buffers.emplace();
  std::vector<SelectedTensor> selected = select_tensors(m, o);

  ProbeResult r;
  r.int4_scheme = o.int4.name();
  r.int8_scheme = o.int8.name();
  r.tensors.resize(selected.size());
  for (std::size_t i = 0; i < selected.size(); ++i) {
    TensorStats& t = r.tensors[i];
    const at::Tensor& w = selected[i].param;
    t.name = selected[i].name;
    t.numel = w.numel();
    t.nonfinite = count_nonfinite(w);
    if (t.nonfinite > 0) {
      spdlog::warn(
          "probe: {} holds {} NaN/Inf weight(s) of {}; its statistics are NaN and left "
          "out of the means",
          t.name, t.nonfinite, t.numel);
      t.kurtosis = t.outlier_groups = kNaN;
    } else {
      t.kurtosis = excess_kurtosis(w);
      t.outlier_groups = outlier_group_fraction(w, o.int4, o.outlier_ratio, t.name);
    }
  }

  ScopedCpuBlockCache::release();
  const std::int64_t per_sequence =
      (windows.size(1) - 1) * m->config().hidden_size * static_cast<std::int64_t>(sizeof(float));
  EvalOptions eval;
  eval.batch_size = o.batch_size;
  eval.chunk_sequences =
      static_cast<std::int64_t>(o.activation_memory * static_cast<double>(weight_bytes(m))) /
      std::max<std::int64_t>(1, per_sequence);
  r.fp32 = evaluate_layerwise(m, windows, eval);
  spdlog::debug("probe: FP32 perplexity {:.6f}", r.fp32.ppl);

  std::vector<QuantErrorSums> sums4, sums8;
  r.int4 = quantized_eval(m, windows, selected, o.int4, eval, sums4);
  r.int8 = quantized_eval(m, windows, selected, o.int8, eval, sums8);
  for (std::size_t i = 0; i < selected.size(); ++i) {
    TensorStats& t = r.tensors[i];
    const bool bad = t.nonfinite > 0;
    t.rel_error_int4 = bad ? kNaN : sums4[i].relative_error();
    t.grid_residual = bad ? kNaN : sums4[i].grid_residual();
    t.rel_error_int8 = bad ? kNaN : sums8[i].relative_error();
  }
  r.gap_int4_pct = gap_pct(r.int4.ppl, r.fp32.ppl);
  r.gap_int8_pct = gap_pct(r.int8.ppl, r.fp32.ppl);
  std::vector<at::Tensor> gptq_weights;
  if (o.gptq) gptq_weights = probe_gptq(m, windows, calibration, o, eval, selected, r);
  if (o.attribution != AttributionUnits::none) {
    std::vector<AttributionTensor> units;
    for (std::size_t i = 0; i < selected.size(); ++i) {
      units.push_back({selected[i].name, selected[i].layer, selected[i].param,
                       gptq_weights.empty() ? at::Tensor() : gptq_weights[i]});
    }
    r.attribution = attribute_gaps(m, windows, eval, units, o.attribution, o.int4, r.fp32.ppl);
  }
  r.stats = aggregate(r.tensors);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

ProbeResult probe_checkpoint(const std::filesystem::path& dir, const at::Tensor& windows,
                             const ProbeOptions& o, const at::Tensor& calibration) {
  at::Device device = at::kCPU;
  try {
    device = at::Device(o.device);
  } catch (const c10::Error&) {
    throw ConfigError("probe.device '" + o.device +
                      "' is not a device name (cpu, cuda, cuda:1, ...)");
  }
  model::LoadedModel loaded = model::load_hf_checkpoint(dir, {at::kFloat, device});
  return probe_model(loaded.model, windows, o, calibration);
}

}  // namespace qf::quant
