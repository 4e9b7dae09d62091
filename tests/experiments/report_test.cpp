// `quantfork report` end to end: the figures are real PNGs, the audit's landmarks are
// stated honestly, and the statistics table holds exactly analysis.json's numbers.
#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/run_file.h"
#include "experiments/analysis_io.h"
#include "run_builder.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace qf::experiments {
namespace {

using nlohmann::json;
using qf::test::run_quantfork;

// A small audited trajectory: the gap creeps up while FP32 perplexity falls, and the
// phase detection found no divergence (as on fixtures/trajectory).
void write_audit(const fs::path& file, bool diverged, bool gptq = false,
                 const std::string& config = "audit: {}\n") {
  AuditFile audit = AuditFile::create(file.string(), RunAttributes{}, config);
  const std::int64_t steps[] = {0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000};
  for (std::size_t i = 0; i < std::size(steps); ++i) {
    AuditRow r;
    r.step = steps[i];
    r.phase = "audit";
    r.ppl_fp32 = 400.0 / (1 + static_cast<double>(i));
    r.gap_int4_pct = 0.5 + 0.3 * static_cast<double>(i) * (diverged && i > 6 ? 10 : 1);
    r.gap_int8_pct = 0.05;
    r.kurtosis_mean = 3.0 - 0.1 * static_cast<double>(i);
    r.ppl_int4 = r.ppl_fp32 * (1 + r.gap_int4_pct / 100);
    r.ppl_int8 = r.ppl_fp32 * (1 + r.gap_int8_pct / 100);
    if (gptq) {
      r.gap_int4_gptq_pct = 0.1 + 0.01 * static_cast<double>(i);
      r.ppl_int4_gptq = r.ppl_fp32 * (1 + r.gap_int4_gptq_pct / 100);
    }
    audit.append_audit(r);
  }
  AuditRow failed;
  failed.step = 9500;
  failed.phase = "failed";
  failed.ppl_fp32 = std::nan("");
  audit.append_audit(failed);
  const char* names[3] = {"segment_1", "segment_2", "segment_3"};
  if (diverged) names[0] = "rapid_learning", names[1] = "plateau", names[2] = "divergence";
  audit.write_phases(
      {{names[0], 1000, 3000, -1e-4}, {names[1], 3000, 7000, 2e-5}, {names[2], 7000, 9000, 3e-4}});
  AuditLandmarks marks;
  marks.fp32_convergence_step = 9000;
  if (diverged) {
    marks.fp32_convergence_step = 6000;
    marks.divergence_onset_step = 7000;
    marks.pre_divergence_step = 6000;
  }
  audit.write_landmarks(marks);
  audit.file().set_int_attribute("converged_inside", diverged ? 1 : 0);
  audit.file().set_string_attribute("phase_verdict", "first finding\nsecond finding\n");
}

// A real PNG: the signature, then an IHDR chunk with the size the report asks for.
void expect_png(const fs::path& p) {
  ASSERT_TRUE(fs::exists(p)) << p;
  const std::string bytes = qf::test::read_file(p);
  EXPECT_GT(bytes.size(), 5000u) << p << " is too small to hold a plot";
  ASSERT_GE(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << p;
  EXPECT_EQ(bytes.substr(12, 4), "IHDR") << p;
  const auto u = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
  EXPECT_EQ((u(16) << 24) | (u(17) << 16) | (u(18) << 8) | u(19), 1100) << p;  // width
  EXPECT_EQ((u(20) << 24) | (u(21) << 16) | (u(22) << 8) | u(23), 550) << p;   // height
}

// The cells of the table row that starts with `lead` (cells joined by " | ") and has
// `cells` cells: the report's tables also start with the arm, but differ in width.
std::vector<std::string> row_of(const std::string& md, const std::string& lead, std::size_t count) {
  std::istringstream lines(md);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| " + lead + " |", 0) != 0) continue;
    std::vector<std::string> cells;
    std::size_t start = 2;
    for (std::size_t bar; (bar = line.find(" | ", start)) != std::string::npos; start = bar + 3) {
      cells.push_back(line.substr(start, bar - start));
    }
    cells.push_back(line.substr(start, line.size() - start - 2));
    if (cells.size() == count) return cells;
  }
  ADD_FAILURE() << "no row " << lead << " in\n" << md;
  return {};
}

// analysis.json's numbers: finite ones as JSON numbers, the others as strings.
double number(const json& j) {
  if (j.is_number()) return j.get<double>();
  if (j == "Infinity") return std::numeric_limits<double>::infinity();
  if (j == "-Infinity") return -std::numeric_limits<double>::infinity();
  return std::nan("");
}

// A paired-test row (cells from n on) holds the JSON's test, formatted.
void expect_paired_cells(const std::vector<std::string>& cells, const json& p) {
  ASSERT_EQ(cells.size(), 11u);
  EXPECT_EQ(cells[4], std::to_string(p.at("n").get<int>()));
  EXPECT_EQ(cells[5], format_stat(number(p.at("mean_diff"))));
  EXPECT_EQ(cells[6], "[" + format_stat(number(p.at("ci95")[0])) + ", " +
                          format_stat(number(p.at("ci95")[1])) + "]");
  EXPECT_EQ(cells[7], format_stat(number(p.at("t"))));
  EXPECT_EQ(cells[8], format_stat(number(p.at("df"))));
  EXPECT_EQ(cells[9], format_p(number(p.at("p_two_sided"))));
  EXPECT_EQ(cells[10], format_stat(number(p.at("cohens_dz"))));
}

// Every number of the tables' rows equals analysis.json's value, formatted.
void expect_table_matches_json(const std::string& md, const json& analysis) {
  for (const auto& c : analysis.at("comparisons")) {
    const std::string lead =
        c.at("arm").get<std::string>() + " | " + c.at("baseline").get<std::string>();
    SCOPED_TRACE(lead);
    const std::string rows = c.at("phase_filter").empty() ? "all" : "cool:last";
    expect_paired_cells(row_of(md, lead + " | " + rows + " | probes", 11), c.at("paired"));
    expect_paired_cells(row_of(md, lead + " | " + rows + " | seeds", 11), c.at("paired_runs"));
    const json& w = c.at("welch_final");
    const auto cells = row_of(md, lead, 9);
    ASSERT_EQ(cells.size(), 9u) << md;
    EXPECT_EQ(cells[2], std::to_string(w.at("final_step").get<int>()));
    EXPECT_EQ(cells[3], std::to_string(w.at("n_arm").get<int>()));
    EXPECT_EQ(cells[4], std::to_string(w.at("n_baseline").get<int>()));
    EXPECT_EQ(cells[5], format_stat(number(w.at("t"))));
    EXPECT_EQ(cells[6], format_stat(number(w.at("df"))));
    EXPECT_EQ(cells[7], format_p(number(w.at("p_two_sided"))));
    EXPECT_EQ(cells[8], std::to_string(c.at("pairwise_wins").at("wins").get<int>()) + "/" +
                            std::to_string(c.at("pairwise_wins").at("total").get<int>()));
  }
}

class ReportCli : public ::testing::Test {
 protected:
  void SetUp() override {
    QF_REQUIRE_FIXTURE("stats/ttests.json");
    testing::write_fixture_experiment(dir_ / "out", testing::load_stats_cases());
  }
  qf::test::TempDir dir_;
};

TEST_F(ReportCli, AuditAndExperimentWithComputedAnalysis) {
  write_audit(dir_ / "audit.h5", false);
  const auto r = run_quantfork("report --audit audit.h5 --runs out --out rep", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* png : {"audit_gap.png", "audit_kurtosis.png", "experiment_metric.png",
                          "experiment_lr.png", "experiment_final.png"}) {
    expect_png(dir_ / "rep" / png);
  }
  const std::string md = qf::test::read_file(dir_ / "rep" / "report.md");
  for (const char* png : {"(audit_gap.png)", "(audit_kurtosis.png)", "(experiment_metric.png)",
                          "(experiment_lr.png)", "(experiment_final.png)"}) {
    EXPECT_NE(md.find(png), std::string::npos) << png;
  }
  EXPECT_NE(md.find("No divergence phase was found"), std::string::npos) << md;
  EXPECT_NE(md.find("has not converged inside this trajectory"), std::string::npos) << md;
  EXPECT_NE(md.find("| segment_2 | 3000 | 7000 | 2e-05 |"), std::string::npos) << md;
  EXPECT_NE(md.find("1 failed probe row(s) left out"), std::string::npos) << md;
  EXPECT_NE(md.find("\n- second finding\n"), std::string::npos) << md;
  // Kurtosis falls linearly while the gap rises linearly: r = -1; no divergence phase, so
  // no correlation within it.
  EXPECT_NE(md.find("over the whole trajectory r = -1 (n = 10 checkpoints); within the "
                    "divergence phase, no divergence phase: not computed."),
            std::string::npos)
      << md;
  // The final probe per seed: oli seed 2 is n3_exact_small's arm[1] = 2.
  EXPECT_NE(md.find("| oli | 2 | 2 |"), std::string::npos) << md;

  const json analysis = json::parse(qf::test::read_file(dir_ / "rep" / "analysis.json"));
  ASSERT_EQ(analysis.at("comparisons").size(), 2u);
  expect_table_matches_json(md, analysis);
  // What n counts, and why the probe-level p is optimistic.
  EXPECT_NE(md.find("probes (n = matched (seed, step) probe pairs) and seeds (n = seeds"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("Probes within one run are correlated, so the probe-level p is optimistic"),
            std::string::npos)
      << md;
  // No caveat unless asked for.
  EXPECT_EQ(md.find("Scale caveat"), std::string::npos);
}

// The fixture's OLI is lower than cosine (mean -2.02) and SGDR higher: both have the
// paper's sign; OLI against the control cosine_matched is not in the paper. The caveat
// opens the statistics section.
TEST_F(ReportCli, ComparisonsInWordsAgainstThePaper) {
  testing::write_fixture_control(dir_ / "out", testing::load_stats_cases(), -3.0);
  const auto r = run_quantfork("report --runs out --out rep --caveat 'Scale caveat: a tiny model.'",
                               dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string md = qf::test::read_file(dir_ / "rep" / "report.md");
  const std::size_t stats = md.find("## Statistics\n\n> Scale caveat: a tiny model.\n");
  ASSERT_NE(stats, std::string::npos) << md;
  const auto line_of = [&](const std::string& lead) {
    const std::size_t at = md.find("- **" + lead + "**", stats);
    return at == std::string::npos ? std::string() : md.substr(at, md.find('\n', at) - at);
  };
  const std::string oli = line_of("oli vs cosine"), sgdr = line_of("sgdr vs cosine"),
                    control = line_of("oli vs cosine_matched");
  EXPECT_NE(oli.find("probe level n = 9 probe pairs, mean -2.024"), std::string::npos) << oli;
  EXPECT_NE(oli.find("seed level n = 3 seeds, mean -2.024"), std::string::npos) << oli;
  EXPECT_NE(oli.find("lower than cosine by 2.2 points"), std::string::npos) << oli;
  EXPECT_NE(oli.find("The sign agrees with the paper's."), std::string::npos) << oli;
  EXPECT_NE(sgdr.find("0/9 wins"), std::string::npos) << sgdr;
  EXPECT_NE(sgdr.find("The sign agrees with the paper's."), std::string::npos) << sgdr;
  // oli - cosine_matched = (oli - cosine) + 3 > 0.
  EXPECT_NE(control.find("mean 0.976,"), std::string::npos) << control;
  EXPECT_NE(control.find("The paper has no such comparison."), std::string::npos) << control;
  const json analysis = json::parse(qf::test::read_file(dir_ / "rep" / "analysis.json"));
  ASSERT_EQ(analysis.at("comparisons").size(), 4u);
  expect_table_matches_json(md, analysis);
}

TEST_F(ReportCli, TableFromAnalyzeJsonIsAnalyzesTable) {
  ASSERT_EQ(run_quantfork("analyze --runs out --out a.json --markdown a.md", dir_.path()).exit_code,
            0);
  const auto r = run_quantfork("report --analysis a.json --out rep", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string md = qf::test::read_file(dir_ / "rep" / "report.md");
  EXPECT_NE(md.find(qf::test::read_file(dir_ / "a.md")), std::string::npos) << md;
  expect_table_matches_json(md, json::parse(qf::test::read_file(dir_ / "a.json")));
  EXPECT_FALSE(fs::exists(dir_ / "rep" / "analysis.json"));  // given, not computed
}

// An analysis.json written before the run-level test and the controls: its comparisons
// are against the top-level baseline, and the seed level is said to be missing.
TEST_F(ReportCli, AnalysisWithoutRunLevelFieldsStillReads) {
  ASSERT_EQ(run_quantfork("analyze --runs out --out a.json", dir_.path()).exit_code, 0);
  json old = json::parse(qf::test::read_file(dir_ / "a.json"));
  old.erase("n_counts");
  old.erase("notes");
  for (auto& c : old.at("comparisons")) {
    for (const char* k : {"baseline", "paired_runs", "seed_mean_diffs"}) c.erase(k);
  }
  qf::test::write_file(dir_ / "old.json", old.dump());
  const auto r = run_quantfork("report --analysis old.json --out rep", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string md = qf::test::read_file(dir_ / "rep" / "report.md");
  EXPECT_NE(md.find("| oli | cosine | cool:last | seeds | 0 | not computed: not in this analysis "
                    "file (written before the run-level test) |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| sgdr | cosine | 900 | 3 | 3 |"), std::string::npos) << md;
}

// With GPTQ columns the gap figure draws the calibrated gap too and the text sets the two
// side by side, at the ends and at the divergence onset.
TEST_F(ReportCli, GptqGapIsShownBesideTheRoundToNearestGap) {
  write_audit(dir_ / "audit.h5", true, /*gptq=*/true);
  const auto r = run_quantfork("report --audit audit.h5 --out rep", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string md = qf::test::read_file(dir_ / "rep" / "report.md");
  EXPECT_NE(md.find("INT4 (round to nearest and GPTQ)"), std::string::npos) << md;
  EXPECT_NE(md.find("| 0 | 0.5 | 0.1 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 7000 | 21.5 | 0.17 |"), std::string::npos) << md;  // the onset
  EXPECT_NE(md.find("| 9000 | 27.5 | 0.19 |"), std::string::npos) << md;
  EXPECT_NE(md.find("the RTN gap changed by 27 points and the GPTQ gap by 0.09 points"),
            std::string::npos)
      << md;
  write_audit(dir_ / "plain.h5", true);
  const auto p = run_quantfork("report --audit plain.h5 --out rep2", dir_.path());
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(qf::test::read_file(dir_ / "rep2" / "report.md").find("GPTQ"), std::string::npos);
}

// The INT4 and INT8 columns hold whatever probe.int4_scheme and probe.int8_scheme name;
// the report says which, and says it loudly when the width is not the column's.
TEST_F(ReportCli, TheQuantizersBehindTheColumnsAreNamed) {
  write_audit(dir_ / "audit.h5", true);
  ASSERT_EQ(run_quantfork("report --audit audit.h5 --out rep", dir_.path()).exit_code, 0);
  std::string md = qf::test::read_file(dir_ / "rep" / "report.md");
  EXPECT_NE(md.find("Quantizers: `int4_asym_g128` (the INT4 columns) and `int8_sym_channel` "
                    "(the INT8 columns)"),
            std::string::npos)
      << md;
  EXPECT_EQ(md.find("columns of this audit hold"), std::string::npos) << md;
  write_audit(dir_ / "int3.h5", true, false, "probe: {int4_scheme: int3_sym_g64}\n");
  ASSERT_EQ(run_quantfork("report --audit int3.h5 --out rep3", dir_.path()).exit_code, 0);
  md = qf::test::read_file(dir_ / "rep3" / "report.md");
  EXPECT_NE(md.find("**The INT4 columns of this audit hold `int3_sym_g64`.**"), std::string::npos)
      << md;
}

TEST_F(ReportCli, DivergenceIsNamed) {
  write_audit(dir_ / "audit.h5", true);
  const auto r = run_quantfork("report --audit audit.h5 --out rep", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string md = qf::test::read_file(dir_ / "rep" / "report.md");
  EXPECT_NE(md.find("Divergence onset: step 7000; pre-divergence checkpoint: step 6000"),
            std::string::npos)
      << md;
  EXPECT_EQ(md.find("No divergence phase"), std::string::npos);
  EXPECT_NE(md.find("| divergence | 7000 | 9000 |"), std::string::npos) << md;
  // Steps 7000-9000: kurtosis falls and the gap rises, both linearly.
  EXPECT_NE(md.find("within the divergence phase (steps >= 7000) r = -1 (n = 3 checkpoints)"),
            std::string::npos)
      << md;
  expect_png(dir_ / "rep" / "audit_gap.png");
}

TEST_F(ReportCli, BadInputs) {
  testing::expect_fails("report --out rep", dir_.path(), 2, {"nothing to report"});
  qf::test::write_file(dir_ / "bad.json", "{\"metric\": \"gap_int4_pct\", \"baseline\": 3}");
  testing::expect_fails("report --analysis bad.json --out rep", dir_.path(), 1,
                        {"bad.json", "'baseline'"});
  testing::expect_fails("report --audit out/fork/oli/seed1/run.h5 --out rep", dir_.path(), 1,
                        {"quantfork.audit/3"});
}

}  // namespace
}  // namespace qf::experiments
