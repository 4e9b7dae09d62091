#include "quant_probe/attribution.h"

#include <chrono>
#include <map>

#include "core/errors.h"
#include "quant_probe/quantize.h"

namespace qf::quant {

const EnumNames<AttributionUnits>& attribution_unit_names() {
  static const EnumNames<AttributionUnits> names = {{"none", AttributionUnits::none},
                                                    {"tensor", AttributionUnits::tensor},
                                                    {"layer", AttributionUnits::layer}};
  return names;
}

const char* attribution_units_name(AttributionUnits units) {
  for (const auto& [name, value] : attribution_unit_names()) {
    if (value == units) return name.c_str();
  }
  return "?";
}

namespace {

// The perturbation that puts `weights(i)` into the unit's tensors and the originals back.
LayerPerturbation perturbation(std::vector<AttributionTensor>& tensors,
                               const std::vector<std::size_t>& members, std::int64_t layer,
                               std::function<void(std::size_t, at::Tensor&)> replace) {
  auto saved = std::make_shared<std::vector<at::Tensor>>();
  LayerPerturbation p;
  p.layer = layer;
  p.apply = [&tensors, members, replace, saved] {
    saved->clear();
    for (std::size_t i : members) {
      saved->push_back(tensors[i].param.clone());
      replace(i, tensors[i].param);
    }
  };
  p.restore = [&tensors, members, saved] {
    at::NoGradGuard no_grad;
    for (std::size_t k = 0; k < saved->size(); ++k) tensors[members[k]].param.copy_((*saved)[k]);
    saved->clear();
  };
  return p;
}

}  // namespace

Attribution attribute_gaps(model::GptNeoXForCausalLM& m, const at::Tensor& windows,
                           const EvalOptions& eval, std::vector<AttributionTensor>& tensors,
                           AttributionUnits kind, const QuantScheme& int4, double ppl_fp32) {
  const auto start = std::chrono::steady_clock::now();
  Attribution out;
  out.units_kind = kind;
  // Units in the model's order: one per tensor, or one per layer holding selected ones.
  std::vector<std::pair<std::string, std::vector<std::size_t>>> units;
  std::map<std::int64_t, std::size_t> layer_unit;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].layer < 0) {
      throw ConfigError("probe.attribution quantizes units inside the layers; '" + tensors[i].name +
                        "' (selected by probe.tensors.include) is outside them");
    }
    if (kind == AttributionUnits::tensor) {
      units.push_back({tensors[i].name, {i}});
    } else {
      const auto it = layer_unit.find(tensors[i].layer);
      if (it == layer_unit.end()) {
        layer_unit[tensors[i].layer] = units.size();
        units.push_back({"gpt_neox.layers." + std::to_string(tensors[i].layer), {i}});
      } else {
        units[it->second].second.push_back(i);
      }
    }
  }
  const bool gptq = !tensors.empty() && tensors.front().gptq_weight.defined();
  std::vector<LayerPerturbation> perturbations;
  for (const auto& [name, members] : units) {
    perturbations.push_back(perturbation(
        tensors, members, tensors[members.front()].layer,
        [&](std::size_t i, at::Tensor& p) { fake_quantize_into(p, p, int4, tensors[i].name); }));
  }
  if (gptq) {
    for (const auto& [name, members] : units) {
      perturbations.push_back(
          perturbation(tensors, members, tensors[members.front()].layer,
                       [&](std::size_t i, at::Tensor& p) { p.copy_(tensors[i].gptq_weight); }));
    }
  }
  const std::vector<EvalResult> r =
      evaluate_perturbations(m, windows, eval, perturbations, &out.layer_passes);
  const std::int64_t layers = static_cast<std::int64_t>(m->gpt_neox->layers->size());
  const std::int64_t batch = eval.batch_size;
  const std::int64_t chunk = std::max(batch, eval.chunk_sequences / (layers + 1) / batch * batch);
  const std::int64_t chunks = (windows.size(0) + chunk - 1) / chunk;
  out.full_pass_layers = static_cast<std::int64_t>(perturbations.size()) * layers * chunks;
  out.sum_gap_int4_gptq_pct = gptq ? 0.0 : out.sum_gap_int4_gptq_pct;
  for (std::size_t u = 0; u < units.size(); ++u) {
    UnitGap g;
    g.unit = units[u].first;
    g.layer = tensors[units[u].second.front()].layer;
    g.ppl_int4 = r[u].ppl;
    g.gap_int4_pct = gap_pct(r[u].ppl, ppl_fp32);
    out.sum_gap_int4_pct += g.gap_int4_pct;
    if (gptq) {
      g.ppl_int4_gptq = r[units.size() + u].ppl;
      g.gap_int4_gptq_pct = gap_pct(g.ppl_int4_gptq, ppl_fp32);
      out.sum_gap_int4_gptq_pct += g.gap_int4_gptq_pct;
    }
    out.units.push_back(std::move(g));
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace qf::quant
