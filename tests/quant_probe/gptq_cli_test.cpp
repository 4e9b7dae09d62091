// GPTQ through the command line: `quantize --method gptq` of a file (with Hessians) and
// of a checkpoint (with calibration data), `audit` with probe.gptq on the trajectory
// fixture (new columns, read back with h5py), and the errors that name their key.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/run_file.h"
#include "core/torch/tensor_io.h"
#include "python_support.h"
#include "quant_test_support.h"

namespace fs = std::filesystem;

namespace qf::test {
namespace {

fs::path gptq_fixture(const std::string& f) {
  return fixtures_dir() / "gptq" / f;
}
fs::path trajectory() {
  return fixtures_dir() / "trajectory";
}

std::string q(const fs::path& p) {
  return "'" + p.string() + "'";
}

TEST(GptqCommand, QuantizeAFileWithItsHessianGivesTheReferenceCodes) {
  QF_REQUIRE_FIXTURE("gptq");
  TempDir tmp;
  const auto cases = load_tensors(gptq_fixture("layer_cases.safetensors"));
  save_safetensors(
      tmp / "w.safetensors",
      {{"qkv", cases.at("qkv_l0_real.W")}, {"bias", at::ones({3})}, {"other", at::ones({4, 128})}});
  save_safetensors(tmp / "h.safetensors", {{"qkv", cases.at("qkv_l0_real.H")}});
  const auto r = run_quantfork("quantize --method gptq --in " + q(tmp / "w.safetensors") +
                               " --out " + q(tmp / "o.safetensors") + " --hessians " +
                               q(tmp / "h.safetensors") + " --scheme int4_asym_g128 --tensors qkv");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = load_tensors(tmp / "o.safetensors");
  // qkv_l0_real at the main setting: the reference's codes exactly (no near-tie there).
  EXPECT_TRUE(at::equal(got.at("qkv.codes"), cases.at("qkv_l0_real.b4_g128_asym.codes")));
  EXPECT_TRUE(at::equal(got.at("qkv.zeros"), cases.at("qkv_l0_real.b4_g128_asym.zeros")));
  EXPECT_TRUE(at::equal(got.at("qkv"), cases.at("qkv_l0_real.b4_g128_asym.Q")));
  EXPECT_TRUE(got.count("qkv.g_idx"));
  EXPECT_TRUE(at::equal(got.at("bias"), at::ones({3})));
  EXPECT_TRUE(at::equal(got.at("other"), at::ones({4, 128})));  // not matched: copied

  // A tensor without a Hessian is named.
  const auto missing = run_quantfork("quantize --method gptq --in " + q(tmp / "w.safetensors") +
                                     " --out " + q(tmp / "x.safetensors") + " --hessians " +
                                     q(tmp / "h.safetensors") + " --scheme int4_asym_channel");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no Hessian 'other'"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(tmp / "x.safetensors"));
}

TEST(GptqCommand, QuantizeACheckpointCalibratesOnTheGivenDataset) {
  QF_REQUIRE_FIXTURE("trajectory");
  TempDir tmp;
  const auto r = run_quantfork(
      "quantize --method gptq --in " + q(trajectory() / "step6000") + " --out " + q(tmp / "g") +
      " --scheme int4_asym_g128 --calibration " + q(trajectory() / "eval") +
      " --set gptq.sequences=16 --set gptq.seq_len=128 --set gptq.start_token=5000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto grids = load_tensors(tmp / "g" / "quantization.safetensors");
  EXPECT_EQ(grids.count("gpt_neox.layers.1.mlp.dense_4h_to_h.codes"), 1u);
  EXPECT_EQ(grids.at("gpt_neox.layers.0.attention.dense.scales").sizes(),
            (at::IntArrayRef{128, 1}));
  EXPECT_TRUE(fs::exists(tmp / "g" / "model.safetensors"));
  // Too few tokens in the dataset: the key to change is named.
  const auto big =
      run_quantfork("quantize --method gptq --in " + q(trajectory() / "step6000") + " --out " +
                    q(tmp / "g2") + " --scheme int4_asym_g128 " + "--calibration " +
                    q(trajectory() / "eval") + " --set gptq.sequences=1000 --set gptq.seq_len=200");
  EXPECT_NE(big.exit_code, 0);
  EXPECT_NE(big.err.find("gptq.sequences"), std::string::npos) << big.err;
  const auto nodata = run_quantfork("quantize --method gptq --in " + q(trajectory() / "step6000") +
                                    " --out " + q(tmp / "g3") + " --scheme int4_asym_g128");
  EXPECT_NE(nodata.exit_code, 0);
  EXPECT_NE(nodata.err.find("gptq.dataset"), std::string::npos) << nodata.err;
  const auto damp =
      run_quantfork("quantize --method gptq --in " + q(trajectory() / "step6000") + " --out " +
                    q(tmp / "g4") + " --scheme int4_asym_g128 " + "--calibration " +
                    q(trajectory() / "eval") + " --set gptq.damp=0");
  EXPECT_EQ(damp.exit_code, 2);
  EXPECT_NE(damp.err.find("gptq.damp"), std::string::npos) << damp.err;
}

std::string audit_args(const fs::path& out) {
  return "audit --out " + q(out) + " --eval " + q(trajectory() / "eval") +
         " --set probe.eval.sequences=32 --set probe.eval.seq_len=128 --set probe.batch_size=32"
         " --set probe.gptq.enabled=true --set probe.gptq.calibration.sequences=16"
         " --set probe.gptq.calibration.seq_len=128 --set log.tensorboard=false ";
}

TEST(GptqCommand, AuditWithGptqWritesTheGptqGapOfEveryCheckpoint) {
  QF_REQUIRE_FIXTURE("trajectory");
  TempDir tmp;
  const auto r = run_quantfork(audit_args(tmp / "a.h5") + q(trajectory() / "step1000") + " " +
                               q(trajectory() / "step6000"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = AuditFile::open_read_only((tmp / "a.h5").string()).read_audit();
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    EXPECT_TRUE(std::isfinite(row.ppl_int4_gptq)) << row.step;
    EXPECT_NEAR(row.gap_int4_gptq_pct, 100 * (row.ppl_int4_gptq - row.ppl_fp32) / row.ppl_fp32,
                1e-9);
    // In-distribution calibration right after the evaluation windows: GPTQ's gap is
    // below round-to-nearest's at the end of the trajectory.
    if (row.step == 6000) {
      EXPECT_LT(row.gap_int4_gptq_pct, row.gap_int4_pct);
    }
  }
  const PythonResult py = run_python3(
      "import h5py, json\n"
      "f = h5py.File('a.h5', 'r')\n"
      "s = f.attrs['schema']\n"
      "a = f['audit'][:]\n"
      "print(json.dumps({'schema': s.decode() if isinstance(s, bytes) else s,"
      " 'gap': [float(x) for x in a['gap_int4_gptq_pct']]}))\n",
      tmp.path());
  ASSERT_EQ(py.exit_code, 0) << py.output;
  const auto j = nlohmann::json::parse(py.output);
  EXPECT_EQ(j["schema"], "quantfork.audit/3");
  EXPECT_EQ(j["gap"].size(), 2u);
}

TEST(GptqCommand, CalibrationOverlappingTheEvaluationWindowsIsRefused) {
  QF_REQUIRE_FIXTURE("trajectory");
  TempDir tmp;
  const auto r =
      run_quantfork(audit_args(tmp / "a.h5") + "--set probe.gptq.calibration.start_item=0 " +
                    q(trajectory() / "step6000"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("overlap the evaluation windows"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("probe.gptq.calibration.start_item"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "a.h5"));
}

}  // namespace
}  // namespace qf::test
