// Per-unit attribution of the INT4 gap: the shared-float-work evaluation gives the same
// bits as a full layer-by-layer evaluation with the unit quantized, the probe reports
// every unit (tensor or layer) with the sum beside the joint gap for fewer layer passes
// than one full evaluation per unit, and the audit writes /probe_attribution, which the
// report draws.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/run_file.h"
#include "data/indexed_dataset.h"
#include "model/hf_checkpoint.h"
#include "quant_probe/layerwise_eval.h"
#include "quant_probe/probe.h"
#include "quant_probe/probe_report.h"
#include "quant_test_support.h"

namespace fs = std::filesystem;

namespace qf::test {
namespace {

fs::path trajectory() {
  return fixtures_dir() / "trajectory";
}

at::Tensor eval_windows(int n = 32) {
  const auto ds = data::IndexedDataset::open(trajectory() / "eval");
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n) * 129);
  ds.read_tokens(0, static_cast<std::int64_t>(ids.size()), ids.data());
  return at::tensor(ids, at::kLong).view({n, 129});
}

model::LoadedModel step6000() {
  return model::load_hf_checkpoint(trajectory() / "step6000", {at::kFloat, at::kCPU});
}

at::Tensor param(model::GptNeoXForCausalLM& m, const std::string& name) {
  return m->named_parameters()[name];
}

TEST(Attribution, SharedFloatWorkGivesTheBitsOfAFullEvaluation) {
  QF_REQUIRE_FIXTURE("trajectory");
  model::LoadedModel loaded = step6000();
  auto& m = loaded.model;
  const at::Tensor windows = eval_windows();
  quant::EvalOptions eval;
  eval.batch_size = 4;
  eval.chunk_sequences = 12;  // 3 layers' worth of buffers: one batch per chunk
  const auto scheme = quant::QuantScheme::parse("int4_asym_g128");
  const std::vector<std::pair<std::string, std::int64_t>> units = {
      {"gpt_neox.layers.0.attention.query_key_value.weight", 0},
      {"gpt_neox.layers.1.mlp.dense_4h_to_h.weight", 1}};
  std::vector<quant::LayerPerturbation> perturbations;
  std::vector<at::Tensor> saved(units.size());
  for (std::size_t i = 0; i < units.size(); ++i) {
    at::Tensor p = param(m, units[i].first);
    perturbations.push_back({units[i].second,
                             [&saved, i, p, scheme]() mutable {
                               saved[i] = p.clone();
                               quant::fake_quantize_into(p, p, scheme);
                             },
                             [&saved, i, p]() mutable {
                               torch::NoGradGuard g;
                               p.copy_(saved[i]);
                             }});
  }
  std::int64_t passes = 0;
  const auto shared = quant::evaluate_perturbations(m, windows, eval, perturbations, &passes);
  for (std::size_t i = 0; i < units.size(); ++i) {
    quant::LayerHooks hooks;
    hooks.before = [&](std::int64_t l) {
      if (l == units[i].second) perturbations[i].apply();
    };
    hooks.after = [&](std::int64_t l) {
      if (l == units[i].second) perturbations[i].restore();
    };
    const quant::EvalResult full = quant::evaluate_layerwise(m, windows, eval, hooks);
    EXPECT_EQ(shared[i].loss, full.loss) << units[i].first;
    EXPECT_EQ(shared[i].tokens, full.tokens);
  }
  // 8 chunks: 1 float pass (layer 0 -> 1) each, then 2 + 1 passes for the two units.
  EXPECT_EQ(passes, 8 * (1 + 2 + 1));
  // The model is back as it was.
  const quant::EvalResult fp32 = quant::evaluate_layerwise(m, windows, eval);
  auto reference = step6000();
  EXPECT_TRUE(at::equal(param(m, units[1].first), param(reference.model, units[1].first)));
  EXPECT_LT(fp32.ppl, shared[0].ppl);
}

TEST(Attribution, TheProbeReportsEveryUnitAndTheSumBesideTheJointGap) {
  QF_REQUIRE_FIXTURE("trajectory");
  model::LoadedModel loaded = step6000();
  quant::ProbeOptions o;
  o.batch_size = 8;
  o.attribution = quant::AttributionUnits::tensor;
  const quant::ProbeResult r = quant::probe_model(loaded.model, eval_windows(), o);
  ASSERT_TRUE(r.attribution.has_value());
  const quant::Attribution& a = *r.attribution;
  ASSERT_EQ(a.units.size(), 8u);
  double sum = 0;
  for (const auto& u : a.units) {
    EXPECT_TRUE(std::isfinite(u.gap_int4_pct)) << u.unit;
    EXPECT_TRUE(std::isnan(u.gap_int4_gptq_pct)) << u.unit;  // no GPTQ asked for
    sum += u.gap_int4_pct;
  }
  EXPECT_DOUBLE_EQ(a.sum_gap_int4_pct, sum);
  EXPECT_LT(a.layer_passes, a.full_pass_layers);
  // Each unit's gap is a share of the joint one here (2.25% at step 6000).
  EXPECT_NEAR(r.gap_int4_pct, 2.2525, 0.001);
  for (const auto& u : a.units) EXPECT_LT(u.gap_int4_pct, r.gap_int4_pct) << u.unit;

  o.attribution = quant::AttributionUnits::layer;
  o.gptq = quant::GptqOptions{};
  const at::Tensor calibration = eval_windows(48).narrow(0, 32, 16);  // after the eval windows
  const quant::ProbeResult l = quant::probe_model(loaded.model, eval_windows(), o, calibration);
  ASSERT_EQ(l.attribution->units.size(), 2u);
  EXPECT_EQ(l.attribution->units[1].unit, "gpt_neox.layers.1");
  for (const auto& u : l.attribution->units) EXPECT_TRUE(std::isfinite(u.gap_int4_gptq_pct));
  // The two layers' gaps relate to the tensors': a layer holds its four tensors' damage.
  EXPECT_GT(l.attribution->units[0].gap_int4_pct, a.units[0].gap_int4_pct);
  const nlohmann::json j = quant::to_json(l, 6000);
  EXPECT_EQ(j["attribution"]["units"], "layer");
  EXPECT_EQ(j["attribution"]["gaps"].size(), 2u);
}

// With GPTQ on as well: one audit with GPTQ and attribution together.
TEST(Attribution, AuditWritesTheTableAndTheReportDrawsIt) {
  QF_REQUIRE_FIXTURE("trajectory");
  TempDir tmp;
  const auto r = run_quantfork(
      "audit --out '" + (tmp / "a.h5").string() + "' --eval '" + (trajectory() / "eval").string() +
      "' --set probe.eval.sequences=16 --set probe.eval.seq_len=128 --set probe.batch_size=16"
      " --set probe.attribution=tensor --set log.tensorboard=false"
      " --set probe.gptq.enabled=true --set probe.gptq.calibration.sequences=16"
      " --set probe.gptq.calibration.seq_len=128 '" +
      (trajectory() / "step1000").string() + "' '" + (trajectory() / "step6000").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = AuditFile::open_read_only((tmp / "a.h5").string()).read_attribution();
  ASSERT_EQ(rows.size(), 2u * 9u);
  EXPECT_EQ(rows[8].unit, "sum");
  EXPECT_EQ(rows[8].layer, -1);
  EXPECT_EQ(rows[9].step, 6000);
  for (const auto& row : rows) EXPECT_TRUE(std::isfinite(row.gap_int4_gptq_pct)) << row.unit;
  const auto rep = run_quantfork("report --audit a.h5 --out rep", tmp.path());
  ASSERT_EQ(rep.exit_code, 0) << rep.err;
  const std::string md = read_file(tmp / "rep" / "report.md");
  EXPECT_NE(md.find("(audit_attribution.png)"), std::string::npos) << md;
  EXPECT_NE(md.find("Growth of each unit's gap from step 1000"), std::string::npos) << md;
  EXPECT_NE(md.find("single gaps sum to"), std::string::npos) << md;
  EXPECT_NE(md.find("| step | RTN INT4 gap % | GPTQ INT4 gap % |"), std::string::npos) << md;
  EXPECT_TRUE(fs::exists(tmp / "rep" / "audit_attribution.png"));
  // Bad value: the key is named.
  const auto bad = run_quantfork(
      "audit --out '" + (tmp / "b.h5").string() + "' --eval '" + (trajectory() / "eval").string() +
      "' --set probe.attribution=tensors '" + (trajectory() / "step1000").string() + "'");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("probe.attribution"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace qf::test
