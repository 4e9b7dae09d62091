// End to end on the real training trajectory (fixtures/trajectory): `quantfork audit` over
// its 22 checkpoints reproduces the reference probe (HF forward + the AWQ quantizers),
// says what the trajectory shows about its phases, writes a file h5py reads, resumes,
// and copes with missing and broken checkpoints.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/hdf5_file.h"
#include "core/run_file.h"
#include "python_support.h"
#include "quant_probe/probe_report.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace qf::test {
namespace {

fs::path trajectory() {
  return fixtures_dir() / "trajectory";
}

std::string audit_args(const fs::path& out) {
  return "audit --out '" + out.string() + "' --eval '" + (trajectory() / "eval").string() +
         "' --set probe.eval.sequences=32 --set probe.eval.seq_len=128";
}

double relative(double a, double b) {
  return std::fabs(a - b) / std::fabs(b);
}

class Trajectory : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(trajectory())) return;
    dir_ = new TempDir;
    result_ = new CommandResult(run_quantfork(audit_args(*dir_ / "audit.h5") + " '" +
                                              (trajectory() / "step*").string() + "'"));
  }
  static void TearDownTestSuite() {
    delete result_;
    delete dir_;
  }
  void SetUp() override {
    QF_REQUIRE_FIXTURE("trajectory");
    ASSERT_EQ(result_->exit_code, 0) << result_->err;
  }
  static fs::path audit_file() { return *dir_ / "audit.h5"; }

  static TempDir* dir_;
  static CommandResult* result_;
};
TempDir* Trajectory::dir_ = nullptr;
CommandResult* Trajectory::result_ = nullptr;

TEST_F(Trajectory, AuditReproducesTheReferenceProbe) {
  const auto reference = nlohmann::json::parse(read_file(trajectory() / "probe_reference.json"));
  AuditFile file = AuditFile::open_read_only(audit_file().string());
  const auto rows = file.read_audit();
  ASSERT_EQ(rows.size(), reference.size());
  double ppl = 0, gap = 0, kurt = 0, grid = 0, err = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& want = reference[i];
    const AuditRow& got = rows[i];
    SCOPED_TRACE("step " + std::to_string(got.step));
    EXPECT_EQ(got.step, want["step"].get<std::int64_t>());
    EXPECT_EQ(got.tokens_evaluated, 4096);
    for (auto [value, key] : {std::pair{got.ppl_fp32, "ppl_fp32"},
                              {got.ppl_int4, "ppl_int4"},
                              {got.ppl_int8, "ppl_int8"}}) {
      EXPECT_LE(relative(value, want[key]), 1e-5) << key;
      ppl = std::max(ppl, relative(value, want[key]));
    }
    EXPECT_NEAR(got.loss_fp32, want["loss_fp32"].get<double>(), 1e-5);
    for (auto [value, key] :
         {std::pair{got.gap_int4_pct, "gap_int4_pct"}, {got.gap_int8_pct, "gap_int8_pct"}}) {
      EXPECT_NEAR(value, want[key].get<double>(), 0.01) << key;
      gap = std::max(gap, std::fabs(value - want[key].get<double>()));
    }
    EXPECT_LE(relative(got.kurtosis_mean, want["kurtosis_mean"]), 1e-6);
    EXPECT_NEAR(got.grid_residual_mean, want["grid_residual_mean"].get<double>(), 1e-9);
    kurt = std::max(kurt, relative(got.kurtosis_mean, want["kurtosis_mean"]));
  }
  // Per tensor, from the /tensors table.
  const hdf5::Table table =
      hdf5::Table::open(file.file(), "tensors", quant::audit_tensors_schema());
  const hdf5::RowSet t = table.read();
  ASSERT_EQ(t.size(), rows.size() * 8);
  for (std::size_t r = 0; r < t.size(); ++r) {
    const std::int64_t step = t.int_at(r, "step");
    const auto& want = reference[r / 8]["tensors"][t.string_at(r, "tensor")];
    ASSERT_EQ(reference[r / 8]["step"].get<std::int64_t>(), step);
    ASSERT_FALSE(want.is_null()) << t.string_at(r, "tensor");
    EXPECT_LE(relative(t.double_at(r, "kurtosis"), want["kurtosis"]), 1e-6);
    EXPECT_NEAR(t.double_at(r, "grid_residual"), want["grid_residual"].get<double>(), 1e-9);
    for (const char* key : {"rel_error_int4", "rel_error_int8"}) {
      EXPECT_LE(relative(t.double_at(r, key), want[key]), 1e-9) << key;
      err = std::max(err, relative(t.double_at(r, key), want[key]));
    }
    kurt = std::max(kurt, relative(t.double_at(r, "kurtosis"), want["kurtosis"]));
    grid = std::max(
        grid, std::fabs(t.double_at(r, "grid_residual") - want["grid_residual"].get<double>()));
    EXPECT_EQ(t.int_at(r, "nonfinite"), 0);
  }
  std::printf(
      "trajectory: max relative ppl deviation %.3g, max gap deviation %.3g pp, max "
      "relative kurtosis deviation %.3g, max grid residual deviation %.3g, max relative "
      "error deviation %.3g\n",
      ppl, gap, kurt, grid, err);
}

TEST_F(Trajectory, PhaseDetectionSaysThereIsNoDivergence) {
  // The README: the INT4 gap creeps up from ~0.5 % to ~2 % with noise of several tenths
  // of a point while FP32 perplexity improves; no explosive phase.
  AuditFile file = AuditFile::open_read_only(audit_file().string());
  const auto landmarks = file.landmarks();
  ASSERT_TRUE(landmarks.has_value());
  EXPECT_FALSE(landmarks->divergence_onset_step.has_value());
  EXPECT_FALSE(landmarks->pre_divergence_step.has_value());
  // The moving median of ppl_fp32 (…, 4.7636, 4.6633, 4.5814, 4.4947, 4.4941, 4.4935) is
  // lowest at the last checkpoint and still falling there (6 % over the last five
  // checkpoints): no convergence inside the trajectory by the method's rule.
  EXPECT_EQ(landmarks->fp32_convergence_step, 6000);
  const std::string verdict = *file.file().string_attribute("phase_verdict");
  EXPECT_EQ(verdict.rfind("No divergence phase, and so no pre-divergence checkpoint", 0), 0u)
      << verdict;
  EXPECT_NE(verdict.find("has not converged inside the trajectory"), std::string::npos) << verdict;
  EXPECT_NE(verdict.find("is not clearly positive"), std::string::npos) << verdict;
  const auto phases = file.read_phases();
  ASSERT_EQ(phases.size(), 3u);
  EXPECT_EQ(phases[0].phase, "segment_1");
  EXPECT_EQ(phases[0].start_step, 1000);
  EXPECT_EQ(phases[2].end_step, 6000);
  EXPECT_TRUE(std::isnan(*file.file().double_attribute("lag_steps")));
  EXPECT_NE(result_->out.find("No divergence phase"), std::string::npos) << result_->out;
}

TEST_F(Trajectory, AuditFileReadsWithH5py) {
  TempDir tmp;
  QF_RUN_PYTHON(R"(
import h5py, numpy as np
f = h5py.File(")" + audit_file().string() +
                    R"(", "r")
assert f.attrs["schema"] == "quantfork.audit/3", f.attrs["schema"]
a = f["audit"][:]
assert len(a) == 22 and list(a["step"][:3]) == [0, 1, 2], a["step"]
assert a.dtype.names[:5] == ("step", "phase", "phase_index", "loss_fp32", "ppl_fp32"), a.dtype.names
assert "lr" in a.dtype.names and np.isnan(a["lr"]).all()
assert abs(a["ppl_fp32"][-1] - 4.4947) < 1e-3, a["ppl_fp32"][-1]
p = f["phases"][:]
assert len(p) == 3 and p["phase"][0] == b"segment_1", p
t = f["tensors"][:]
assert len(t) == 22 * 8 and t["tensor"][0] == b"gpt_neox.layers.0.attention.query_key_value.weight"
assert f.attrs["divergence_onset_step"] == -1 and f.attrs["pre_divergence_step"] == -1
assert f.attrs["fp32_convergence_step"] == 6000
assert "No divergence phase" in f.attrs["phase_verdict"]
assert b"int4_asym_g128" in f["config"][()]
print("ok")
)",
                tmp.path());
}

TEST_F(Trajectory, ResumingProbesNothingTwice) {
  TempDir tmp;
  fs::copy_file(audit_file(), tmp / "audit.h5");
  const auto r =
      run_quantfork(audit_args(tmp / "audit.h5") + " '" + (trajectory() / "step*").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("probed 0, already in the file 22, failed 0"), std::string::npos) << r.out;
  EXPECT_EQ(AuditFile::open_read_only((tmp / "audit.h5").string()).read_audit().size(), 22u);
  // Another probe setting would mix two probes in one file.
  const auto other =
      run_quantfork(audit_args(tmp / "audit.h5") + " --set probe.int4_scheme=int4_asym_g64 '" +
                    (trajectory() / "step*").string() + "'");
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("was made with probe.int4_scheme = int4_asym_g128"), std::string::npos)
      << other.err;
}

// A kill while the file was created or written can leave bytes HDF5 cannot open: the
// audit sets them aside (renamed, never deleted) and probes again, to the same rows.
TEST_F(Trajectory, AFileAKillLeftUnreadableIsSetAsideAndTheAuditStartsOver) {
  TempDir tmp;
  const std::string whole = read_file(audit_file());
  write_file(tmp / "audit.h5", whole.substr(0, whole.size() / 3));
  const std::vector<std::string> steps = {"step1000", "step2000"};
  std::string dirs;
  for (const auto& s : steps) dirs += " '" + (trajectory() / s).string() + "'";
  const auto r = run_quantfork(audit_args(tmp / "audit.h5") + dirs);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("cannot be read"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("set aside as"), std::string::npos) << r.err;
  EXPECT_EQ(fs::file_size(tmp / "audit.h5.unreadable"), whole.size() / 3);
  const auto rows = AuditFile::open_read_only((tmp / "audit.h5").string()).read_audit();
  const auto reference = AuditFile::open_read_only(audit_file().string()).read_audit();
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    for (const auto& ref : reference) {
      if (ref.step == row.step) {
        EXPECT_EQ(row.ppl_int4, ref.ppl_int4) << row.step;
      }
    }
  }
  // A readable HDF5 file of another kind is not the audit's to set aside.
  hdf5::File::create((tmp / "other.h5").string()).close();
  const auto other = run_quantfork(audit_args(tmp / "other.h5") + dirs);
  EXPECT_NE(other.exit_code, 0);
  EXPECT_TRUE(fs::exists(tmp / "other.h5"));
  EXPECT_FALSE(fs::exists(tmp / "other.h5.unreadable"));
}

TEST_F(Trajectory, MissingAndBrokenCheckpointsAreSkippedOrStopTheAudit) {
  TempDir tmp;
  fs::create_directories(tmp / "run");
  for (const char* s : {"step1000", "step2000", "step3000"}) {
    fs::create_directory_symlink(trajectory() / s, tmp / "run" / s);
  }
  fs::create_directories(tmp / "run" / "step4000");  // broken: a config.json and no weights
  fs::copy_file(trajectory() / "step4000" / "config.json",
                tmp / "run" / "step4000" / "config.json");
  const std::string list =
      " '" + (tmp / "run" / "step*").string() + "' '" + (tmp / "gone" / "step2500").string() + "'";
  const auto skip = run_quantfork(audit_args(tmp / "skip.h5") + list);
  ASSERT_EQ(skip.exit_code, 0) << skip.err;
  EXPECT_NE(skip.err.find("gone/step2500' (step 2500)"), std::string::npos) << skip.err;
  EXPECT_NE(skip.err.find("step4000: no model weights"), std::string::npos) << skip.err;
  EXPECT_NE(skip.out.find("probed 3, already in the file 0, failed 2"), std::string::npos)
      << skip.out;
  const auto rows = AuditFile::open_read_only((tmp / "skip.h5").string()).read_audit();
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[2].step, 2500);
  EXPECT_EQ(rows[2].phase, "failed");
  EXPECT_TRUE(std::isnan(rows[2].ppl_fp32));
  EXPECT_EQ(rows[4].phase, "failed");
  EXPECT_EQ(rows[3].phase, "");

  const auto stop =
      run_quantfork(audit_args(tmp / "stop.h5") + " --set audit.on_error=stop" + list);
  EXPECT_EQ(stop.exit_code, 1);
  EXPECT_NE(stop.err.find("checkpoint '" + (tmp / "gone" / "step2500").string() + "' (step 2500)"),
            std::string::npos)
      << stop.err;
  EXPECT_EQ(AuditFile::open_read_only((tmp / "stop.h5").string()).read_audit().size(), 2u);

  // Resuming the skipping audit once the checkpoints are back retries the failed steps.
  fs::remove_all(tmp / "run" / "step4000");
  fs::create_directory_symlink(trajectory() / "step4000", tmp / "run" / "step4000");
  const auto again =
      run_quantfork(audit_args(tmp / "skip.h5") + " '" + (tmp / "run" / "step*").string() + "'");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("probed 1, already in the file 3, failed 0"), std::string::npos)
      << again.out;
}

TEST_F(Trajectory, ProbeCommandWritesTableJsonAndHdf5) {
  TempDir tmp;
  const auto r =
      run_quantfork("probe --model '" + (trajectory() / "step6000").string() + "' --eval '" +
                    (trajectory() / "eval").string() +
                    "' --set probe.eval.sequences=32 --set probe.eval.seq_len=128 --json '" +
                    (tmp / "p.json").string() + "' --out '" + (tmp / "p.h5").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("INT4   int4_asym_g128"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gpt_neox.layers.1.mlp.dense_4h_to_h.weight"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_file(tmp / "p.json"));
  const auto reference =
      nlohmann::json::parse(read_file(trajectory() / "probe_reference.json")).back();
  EXPECT_EQ(j["step"], 6000);
  EXPECT_LE(relative(j["ppl_int4"], reference["ppl_int4"]), 1e-5);
  EXPECT_NEAR(j["gap_int4_pct"].get<double>(), reference["gap_int4_pct"].get<double>(), 0.01);
  EXPECT_EQ(j["tensors"].size(), 8u);
  const auto rows = AuditFile::open_read_only((tmp / "p.h5").string()).read_audit();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].step, 6000);
  EXPECT_DOUBLE_EQ(rows[0].ppl_int4, j["ppl_int4"].get<double>());
  // --out never overwrites.
  const auto again =
      run_quantfork("probe --model '" + (trajectory() / "step6000").string() + "' --eval '" +
                    (trajectory() / "eval").string() + "' --out '" + (tmp / "p.h5").string() + "'");
  EXPECT_EQ(again.exit_code, 2);
}

TEST(ProbeCommand, EvalSetTooShortAndNoEvalSet) {
  QF_REQUIRE_FIXTURE("trajectory");
  const auto r =
      run_quantfork("probe --model '" + (trajectory() / "step6000").string() + "' --eval '" +
                    (trajectory() / "eval").string() + "' --set probe.eval.seq_len=2048");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("128 sequences of 2049 tokens need 262272 tokens"), std::string::npos)
      << r.err;
  const auto none = run_quantfork("probe --model '" + (trajectory() / "step6000").string() + "'");
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("exactly one evaluation source"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace qf::test
