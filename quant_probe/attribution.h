#pragma once
// Per-unit attribution of the INT4 gap (docs/quant_probe.md): quantize one unit at a time
// (one tensor, or one layer's selected tensors), the rest float32, and measure each one's
// INT4 gap; the sum of the single gaps beside the joint gap says whether the damage adds
// up or comes from interactions, and along a trajectory which units carry a divergence.
// The float work below each unit is shared (layerwise_eval.h, evaluate_perturbations).
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/config_schema.h"
#include "model/gpt_neox.h"
#include "quant_probe/layerwise_eval.h"
#include "quant_probe/quant_scheme.h"

namespace qf::quant {

enum class AttributionUnits { none, tensor, layer };
// "none", "tensor", "layer": probe.attribution's choices.
const EnumNames<AttributionUnits>& attribution_unit_names();
const char* attribution_units_name(AttributionUnits units);

struct UnitGap {
  std::string unit;  // the HF tensor name, or "gpt_neox.layers.L" for a layer
  std::int64_t layer = 0;
  double ppl_int4 = 0, gap_int4_pct = 0;
  double ppl_int4_gptq = std::numeric_limits<double>::quiet_NaN();
  double gap_int4_gptq_pct = std::numeric_limits<double>::quiet_NaN();
};

struct Attribution {
  AttributionUnits units_kind = AttributionUnits::tensor;
  std::vector<UnitGap> units;
  double sum_gap_int4_pct = 0;
  double sum_gap_int4_gptq_pct = std::numeric_limits<double>::quiet_NaN();
  // Layer-over-chunk passes run, and what one full evaluation per unit would have run
  // (units × layers × chunks): the saving of sharing the float work.
  std::int64_t layer_passes = 0, full_pass_layers = 0;
  double seconds = 0;
};

// One quantizable tensor of the model: its parameter, and GPTQ's weights when measured.
struct AttributionTensor {
  std::string name;
  std::int64_t layer = 0;  // −1 outside the layers: refused
  at::Tensor param;
  at::Tensor gptq_weight;  // undefined without GPTQ
};

// `ppl_fp32`: the model's float perplexity on `windows` (the gaps' base).
Attribution attribute_gaps(model::GptNeoXForCausalLM& model, const at::Tensor& windows,
                           const EvalOptions& eval, std::vector<AttributionTensor>& tensors,
                           AttributionUnits units, const QuantScheme& int4, double ppl_fp32);

}  // namespace qf::quant
