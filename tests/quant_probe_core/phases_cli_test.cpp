// `quantfork phases` end to end: a CSV and an audit file give the same landmarks, --json
// and --out hold what the terminal shows, and bad input exits 1 or 2 with a message that
// names what is wrong.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/run_file.h"
#include "synthetic_trajectory.h"
#include "test_support.h"

namespace qf::test {
namespace {

// A paper-shaped trajectory as a CSV: onset 77000, convergence 72000.
std::string trajectory_csv(bool diverges) {
  SyntheticSpec spec;
  spec.convergence = 72000;
  spec.diverges = diverges;
  spec.log_gap_noise = 0.05;
  spec.shape = RiseShape::LossPenalty;
  std::string csv = "step,gap_int4_pct,ppl_fp32,gap_int8_pct,note\n";
  char line[160];
  for (const auto& p : synthetic_trajectory(spec)) {
    std::snprintf(line, sizeof line, "%lld,%.17g,%.17g,0.5,x\n", static_cast<long long>(p.step),
                  p.gap_int4_pct, p.ppl_fp32);
    csv += line;
  }
  return csv;
}

TEST(PhasesCli, CsvAndAuditFileGiveTheSameLandmarks) {
  TempDir dir;
  write_file(dir / "t.csv", trajectory_csv(true));
  const auto csv = run_quantfork("phases --table t.csv --json t.json --out t.h5", dir.path());
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(csv.out.rfind("Divergence phase from step ", 0), 0u) << csv.out;
  EXPECT_NE(csv.out.find("segmented fit of log(max(gap_int4_pct, floor)) against step"),
            std::string::npos);

  const auto j = nlohmann::json::parse(read_file(dir / "t.json"));
  ASSERT_TRUE(j["divergence_onset_step"].is_number()) << j.dump();
  const std::int64_t onset = j["divergence_onset_step"];
  EXPECT_GE(onset, 73000);  // a concave rise: up to 4 checkpoints early
  EXPECT_LE(onset, 77000);
  EXPECT_EQ(j["pre_divergence_step"], onset);
  EXPECT_EQ(j["fp32_convergence_step"], 72000);
  ASSERT_EQ(j["segments"].size(), 3u);
  EXPECT_EQ(j["segments"][2]["phase"], "divergence");
  EXPECT_EQ(j["segments"][0]["start_step"], 1000);
  EXPECT_EQ(j["findings"][0].get<std::string>() + "\n", csv.out.substr(0, csv.out.find('\n') + 1));

  // The audit file holds the table's rows and the same phases.
  AuditFile file = AuditFile::open_read_only((dir / "t.h5").string());
  const auto rows = file.read_audit();
  ASSERT_EQ(rows.size(), 154u);
  EXPECT_EQ(rows[20].step, 10000);
  EXPECT_EQ(rows[20].gap_int8_pct, 0.5);
  EXPECT_TRUE(std::isnan(rows[20].ppl_int4));
  const auto marks = file.landmarks();
  ASSERT_TRUE(marks.has_value());
  EXPECT_EQ(marks->divergence_onset_step, onset);
  EXPECT_EQ(marks->pre_divergence_step, onset);
  EXPECT_EQ(marks->fp32_convergence_step, 72000);
  EXPECT_EQ(file.read_phases().size(), 3u);
  EXPECT_EQ(*file.file().string_attribute("source_table"), "t.csv");
  file.close();

  // And read back as a table, the audit file gives the same output.
  const auto audit = run_quantfork("phases --table t.h5 --json a.json", dir.path());
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_EQ(audit.out, csv.out);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "a.json")), j);
}

TEST(PhasesCli, NoDivergenceIsNullInJson) {
  TempDir dir;
  write_file(dir / "flat.csv", trajectory_csv(false));
  const auto r = run_quantfork("phases --table flat.csv --json flat.json", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("No divergence phase, and so no pre-divergence checkpoint", 0), 0u)
      << r.out;
  const auto j = nlohmann::json::parse(read_file(dir / "flat.json"));
  EXPECT_TRUE(j["divergence_onset_step"].is_null());
  EXPECT_TRUE(j["pre_divergence_step"].is_null());
  EXPECT_EQ(j["fp32_convergence_step"], 72000);
  EXPECT_EQ(j["segments"][0]["phase"], "segment_1");
}

TEST(PhasesCli, ConfigKeysAreTheAudits) {
  TempDir dir;
  write_file(dir / "t.csv", trajectory_csv(true));
  const auto dump = run_quantfork("phases --dump-config", dir.path());
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_NE(dump.out.find("converged_within_pct: 1"), std::string::npos) << dump.out;
  EXPECT_NE(dump.out.find("onset_slack: 4"), std::string::npos) << dump.out;
  // A 10 % tolerance puts convergence far earlier.
  const auto wide = run_quantfork(
      "phases --table t.csv --json w.json --set audit.phases.converged_within_pct=10", dir.path());
  ASSERT_EQ(wide.exit_code, 0) << wide.err;
  EXPECT_LT(nlohmann::json::parse(read_file(dir / "w.json"))["fp32_convergence_step"], 65000);
}

TEST(PhasesCli, MonitorReplaySaysWhereItWouldHaveFired) {
  TempDir dir;
  write_file(dir / "t.csv", trajectory_csv(true));
  write_file(dir / "flat.csv", trajectory_csv(false));
  const auto r = run_quantfork("phases --table t.csv --monitor-json m.json", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(read_file(dir / "m.json"));
  ASSERT_TRUE(j["first_fired_step"].is_number()) << j.dump();
  const std::int64_t fired = j["first_fired_step"];
  EXPECT_GT(fired, 77000);  // after the onset, not on the plateau
  EXPECT_LE(fired, 90000);
  EXPECT_EQ(j["readings"].size(), 154u);
  EXPECT_EQ(j["options"]["window"], 10);
  EXPECT_NE(r.out.find("the monitor would have fired first at step " + std::to_string(fired)),
            std::string::npos)
      << r.out;
  // A threshold above the rise it fired at fires later; the flat trajectory never.
  double rise_at_firing = 0;
  for (const auto& reading : j["readings"]) {
    if (reading["step"] == fired) rise_at_firing = reading["gap_rise"];
  }
  const auto late = run_quantfork(
      "phases --table t.csv --monitor-json late.json "
      "--set monitor.slope_threshold=" +
          std::to_string(rise_at_firing + 0.05),
      dir.path());
  ASSERT_EQ(late.exit_code, 0) << late.err;
  EXPECT_GT(nlohmann::json::parse(read_file(dir / "late.json"))["first_fired_step"], fired);
  const auto flat = run_quantfork("phases --table flat.csv --monitor", dir.path());
  ASSERT_EQ(flat.exit_code, 0) << flat.err;
  EXPECT_NE(flat.out.find("the monitor would not have fired"), std::string::npos) << flat.out;
  // Without --monitor, no replay.
  EXPECT_EQ(run_quantfork("phases --table t.csv", dir.path()).out.find("divergence monitor"),
            std::string::npos);
}

TEST(PhasesCli, BadInputExitsOneOrTwoAndSaysWhy) {
  TempDir dir;
  write_file(dir / "t.csv", trajectory_csv(true));
  write_file(dir / "bad.csv", "step,ppl_fp32,gap_int4_pct\n1000,12,11\n2000,12,eleven\n");
  write_file(dir / "short.csv", "step,ppl_fp32\n1000,12\n");
  write_file(dir / "empty.csv", "step,ppl_fp32,gap_int4_pct\n");
  write_file(dir / "exists.h5", "");
  const struct {
    const char* args;
    int exit_code;
    const char* message;
  } cases[] = {
      {"phases", 2, "--table"},
      {"phases --table t.csv --set audit.phases.median_window=0", 2,
       "audit.phases.median_window must be at least 1"},
      {"phases --table t.csv --set audit.phases.onset_slack=-1", 2,
       "audit.phases.onset_slack must be at least 0"},
      {"phases --table t.csv --set audit.phases.nope=1", 2, "audit.phases.nope"},
      {"phases --table t.csv --monitor --set monitor.window=2", 2,
       "monitor.window must be at least 3"},
      {"phases --table t.csv --monitor --set monitor.metric=ppl_int4", 2,
       "'ppl_int4' is no gap column"},
      {"phases --table t.csv --out exists.h5", 2, "--out 'exists.h5' exists"},
      {"phases --table bad.csv", 1, "bad.csv:3: column 3 (gap_int4_pct): 'eleven' is not a number"},
      {"phases --table short.csv", 1, "short.csv:1: the header has no column 'gap_int4_pct'"},
      {"phases --table empty.csv", 1, "'empty.csv' has no rows"},
      {"phases --table missing.csv", 1, "missing.csv"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const auto r = run_quantfork(c.args, dir.path());
    EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  EXPECT_EQ(read_file(dir / "exists.h5"), "");  // never overwritten
}

}  // namespace
}  // namespace qf::test
