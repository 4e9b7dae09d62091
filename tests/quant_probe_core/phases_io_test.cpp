// The phases in an audit file, on the terminal and in JSON; their configuration keys; and
// a CSV of an audit's numbers giving the audit's own landmarks.
#include "quant_probe/phases_io.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.h"
#include "quant_probe/trajectory_table.h"
#include "synthetic_trajectory.h"
#include "test_support.h"

namespace qf::test {
namespace {

// A paper-shaped trajectory as audit rows, with a failed probe and a step probed twice.
std::vector<AuditRow> audit_rows(const SyntheticSpec& spec) {
  std::vector<AuditRow> rows;
  for (const auto& p : synthetic_trajectory(spec)) {
    AuditRow row;
    row.step = p.step;
    row.phase = "audit";
    row.ppl_fp32 = p.ppl_fp32;
    row.gap_int4_pct = p.gap_int4_pct;
    row.gap_int8_pct = 0.5;
    row.ppl_int4 = p.ppl_fp32 * (1 + p.gap_int4_pct / 100);
    rows.push_back(row);
  }
  AuditRow& failed = rows[60];  // step 50000
  failed.phase = quant::kFailedProbePhase;
  failed.ppl_fp32 = failed.gap_int4_pct = std::nan("");
  AuditRow again = rows[100];
  again.gap_int4_pct *= 1.01;  // the later row of a step wins
  rows.push_back(again);
  return rows;
}

AuditFile audit_file(const std::filesystem::path& path, const std::vector<AuditRow>& rows) {
  AuditFile file = AuditFile::create(path.string(), {}, "{}\n");
  for (const auto& row : rows) file.append_audit(row);
  return file;
}

std::string csv_of(const std::vector<AuditRow>& rows) {
  std::string csv = "ppl_int4,step,gap_int4_pct,phase,ppl_fp32\n";
  char line[256];
  for (const auto& r : rows) {
    if (r.phase == quant::kFailedProbePhase) continue;  // a tool that drops failed probes
    std::snprintf(line, sizeof line, "%.17g,%lld,%.17g,%s,%.17g\n", r.ppl_int4,
                  static_cast<long long>(r.step), r.gap_int4_pct, r.phase.c_str(), r.ppl_fp32);
    csv += line;
  }
  return csv;
}

TEST(PhasesIo, CsvOfAnAuditGivesTheAuditsLandmarks) {
  for (RiseShape shape : {RiseShape::LogLinear, RiseShape::LossPenalty}) {
    for (bool diverges : {true, false}) {
      SyntheticSpec spec;
      spec.shape = shape;
      spec.diverges = diverges;
      spec.convergence = 72000;
      spec.log_gap_noise = 0.05;
      SCOPED_TRACE(shape_name(shape) + (diverges ? ", diverging" : ", flat"));
      TempDir dir;
      const std::vector<AuditRow> rows = audit_rows(spec);
      AuditFile file = audit_file(dir / "audit.h5", rows);
      const quant::PhaseReport in_file = quant::detect_and_write_phases(file, {});
      const auto marks = file.landmarks();
      ASSERT_TRUE(marks.has_value());
      EXPECT_EQ(marks->divergence_onset_step.has_value(), diverges);

      write_file(dir / "audit.csv", csv_of(rows));
      const quant::PhaseReport from_csv = quant::detect_phases(
          quant::trajectory_points(quant::read_trajectory_table(dir / "audit.csv")), {});
      EXPECT_EQ(from_csv.fp32_convergence_step, marks->fp32_convergence_step);
      EXPECT_EQ(from_csv.divergence_onset_step, marks->divergence_onset_step);
      EXPECT_EQ(from_csv.pre_divergence_step, marks->pre_divergence_step);
      EXPECT_EQ(from_csv.findings, in_file.findings);
      EXPECT_EQ(from_csv.used.size(), 143u - 1);  // step 50000 failed; steps < 1000 left out
    }
  }
}

TEST(PhasesIo, TrajectoryPointsTakeTheLastGoodRowOfEachStep) {
  std::vector<AuditRow> rows(4);
  rows[0].step = 2000, rows[0].gap_int4_pct = 1;
  rows[1].step = 1000, rows[1].gap_int4_pct = 2;
  rows[2].step = 2000, rows[2].gap_int4_pct = 3;
  rows[3].step = 2000, rows[3].gap_int4_pct = 4, rows[3].phase = quant::kFailedProbePhase;
  const auto points = quant::trajectory_points(rows);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].step, 1000);
  EXPECT_EQ(points[1].step, 2000);
  EXPECT_EQ(points[1].gap_int4_pct, 3);
}

TEST(PhasesIo, EveryAttributeIsWrittenAndRewritten) {
  TempDir dir;
  SyntheticSpec spec;
  spec.convergence = 72000;
  AuditFile file = audit_file(dir / "audit.h5", audit_rows(spec));
  const quant::PhaseReport r = quant::detect_and_write_phases(file, {});
  ASSERT_TRUE(r.divergence_onset_step.has_value()) << r.findings[0];
  EXPECT_EQ(r.divergence_onset_step, 77000);
  const auto phases = file.read_phases();
  ASSERT_EQ(phases.size(), 3u);
  EXPECT_EQ(phases.back().phase, "divergence");
  EXPECT_EQ(phases.back().end_step, 143000);
  const std::vector<std::string> names = quant::segment_phases(r);
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(phases[k].phase, names[k]);
    EXPECT_EQ(phases[k].start_step, r.fit->segments[k].start_step);
    EXPECT_DOUBLE_EQ(phases[k].slope, r.fit->segments[k].slope.value);
    EXPECT_DOUBLE_EQ(*file.file().double_attribute("slope_low_" + std::to_string(k + 1)),
                     r.fit->segments[k].slope.low);
  }
  hdf5::File& f = file.file();
  EXPECT_EQ(f.int_attribute("breakpoint_2_step"), r.fit->segments[2].start_step);
  EXPECT_EQ(f.int_attribute("converged_inside"), 1);
  EXPECT_EQ(f.double_attribute("lag_steps"), 5000.0);
  EXPECT_EQ(file.landmarks()->pre_divergence_step, 77000);
  EXPECT_EQ(f.string_attribute("phase_verdict")->rfind(r.findings[0] + "\n", 0), 0u);

  // Rerun with options under which nothing can be fitted: nothing stale stays behind.
  quant::PhaseOptions none;
  none.min_step = 1000000;
  quant::detect_and_write_phases(file, none);
  EXPECT_TRUE(file.read_phases().empty());
  EXPECT_EQ(f.int_attribute("breakpoint_1_step"), AuditLandmarks::kNotFound);
  EXPECT_TRUE(std::isnan(*f.double_attribute("slope_high_3")));
  EXPECT_TRUE(std::isnan(*f.double_attribute("lag_steps")));
  EXPECT_FALSE(file.landmarks()->divergence_onset_step.has_value());
}

TEST(PhasesIo, JsonHoldsLandmarksSegmentsAndFindings) {
  SyntheticSpec spec;
  spec.convergence = 72000;
  const quant::PhaseReport r = quant::detect_phases(synthetic_trajectory(spec), {});
  const nlohmann::json j = quant::phases_json(r);
  EXPECT_EQ(j["fp32_convergence_step"], 72000);
  EXPECT_EQ(j["divergence_onset_step"], 77000);
  EXPECT_EQ(j["pre_divergence_step"], 77000);
  ASSERT_EQ(j["segments"].size(), 3u);
  EXPECT_EQ(j["segments"][2]["phase"], "divergence");
  EXPECT_EQ(j["segments"][2]["end_step"], 143000);
  EXPECT_DOUBLE_EQ(j["segments"][0]["slope"].get<double>(), r.fit->segments[0].slope.value);
  EXPECT_EQ(j["findings"].get<std::vector<std::string>>(), r.findings);

  spec.diverges = false;
  const nlohmann::json flat =
      quant::phases_json(quant::detect_phases(synthetic_trajectory(spec), {}));
  EXPECT_TRUE(flat["divergence_onset_step"].is_null());
  EXPECT_TRUE(flat["pre_divergence_step"].is_null());
  EXPECT_EQ(flat["segments"][0]["phase"], "segment_1");
  const nlohmann::json empty = quant::phases_json(quant::detect_phases({}, {}));
  EXPECT_TRUE(empty["fp32_convergence_step"].is_null());
  EXPECT_TRUE(empty["segments"].empty());
}

TEST(PhasesIo, TextShowsFindingsSegmentsAndTheFitTheOnsetIsReadFrom) {
  SyntheticSpec spec;
  spec.convergence = 72000;
  const std::string text =
      quant::format_phases(quant::detect_phases(synthetic_trajectory(spec), {}));
  EXPECT_EQ(text.rfind("Divergence phase from step 77000", 0), 0u) << text;
  EXPECT_NE(text.find("  3: steps "), std::string::npos) << text;
  // Log-linear: one knot explains it, and the onset comes from the one-knot fit.
  EXPECT_NE(text.find("not needed, the onset is read from the one-knot fit:\n  1: steps 1000-"),
            std::string::npos)
      << text;
}

TEST(PhasesIo, ConfigKeysResolveToTheDefaultsAndAreValidated) {
  ConfigSchema schema;
  quant::declare_phase_config(schema);
  const quant::PhaseOptions defaults = quant::phase_options(ConfigLoader(schema).resolve());
  const quant::PhaseOptions expected;
  EXPECT_EQ(defaults.min_step, expected.min_step);
  EXPECT_EQ(defaults.median_window, expected.median_window);
  EXPECT_EQ(defaults.gap_floor_pct, expected.gap_floor_pct);
  EXPECT_EQ(defaults.min_segment_points, expected.min_segment_points);
  EXPECT_EQ(defaults.confidence, expected.confidence);
  EXPECT_EQ(defaults.converged_within_pct, 1.0);
  EXPECT_EQ(expected.converged_within_pct, 1.0);
  EXPECT_EQ(defaults.onset_slack, expected.onset_slack);
  EXPECT_EQ(expected.onset_slack, 4);
  ConfigLoader set(schema);
  set.add_override("audit.phases.onset_slack=0");
  EXPECT_EQ(quant::phase_options(set.resolve()).onset_slack, 0);
  for (const char* key : {"audit.phases.median_window=0", "audit.phases.onset_slack=-1"}) {
    ConfigLoader bad(schema);
    bad.add_override(key);
    const std::string name = std::string(key).substr(0, std::string(key).find('='));
    EXPECT_NE(message_of<ConfigError>([&] { quant::phase_options(bad.resolve()); }).find(name),
              std::string::npos)
        << key;
  }
}

}  // namespace
}  // namespace qf::test
