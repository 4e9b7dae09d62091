// GPTQ in the probes of a training run (probe.gptq): every /probe row of run.h5 holds the
// GPTQ INT4 perplexity and its gap, calibrated on the windows after the evaluation set,
// and a calibration too small for the model is refused, naming the key.
#include <cmath>

#include "train_test_support.h"

namespace qf::test {
namespace {

const char* kProbe =
    "probe: {enabled: true, every: 4, int4_scheme: int4_asym_g32,\n"
    "        eval: {dataset: tokens, sequences: 4, seq_len: 16},\n"
    "        gptq: {enabled: true, calibration: {sequences: 8, seq_len: 16}}}\n";

using ProbeGptq = TinyRunTest;

TEST_F(ProbeGptq, EveryTrainingProbeLogsTheGptqGap) {
  write_run_config(dir_.path(), kProbe);
  const auto r = run_quantfork("train --config run.yaml", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto probes = RunFile::open_read_only((dir_ / "run/run.h5").string()).read_probe();
  ASSERT_GE(probes.size(), 3u);
  for (const auto& p : probes) {
    EXPECT_TRUE(std::isfinite(p.ppl_int4_gptq)) << p.step;
    EXPECT_NEAR(p.gap_int4_gptq_pct, 100 * (p.ppl_int4_gptq - p.ppl_fp32) / p.ppl_fp32, 1e-9)
        << p.step;
  }
}

TEST_F(ProbeGptq, TooFewCalibrationTokensAreRefusedNamingTheKey) {
  // 2 x 17 = 34 tokens against the 128 inputs of dense_4h_to_h.
  write_run_config(dir_.path(), std::string(kProbe) + "checkpoint: {every: 4}\n");
  const auto r = run_quantfork("train --config run.yaml --set probe.gptq.calibration.sequences=2",
                               dir_.path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("probe.gptq.calibration.sequences"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qf::test
