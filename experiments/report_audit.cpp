// The audit section of the report: FP32 perplexity and quantization gaps along a
// trajectory, its phases and landmarks, and weight kurtosis against the INT4 gap.
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <map>
#include <tuple>

#include "core/gnuplot.h"
#include "core/run_file.h"
#include "experiments/analysis_io.h"
#include "experiments/report.h"
#include "experiments/report_plot.h"
#include "experiments/statistics.h"

namespace fs = std::filesystem;

namespace qf::experiments {
namespace {

// The audit marks a checkpoint it could not probe with this phase (and NaN values);
// a later successful row of the same step supersedes it (quant_probe/audit.h).
constexpr const char* kFailedPhase = "failed";

const char* const kPhaseColors[] = {"#4daf4a", "#377eb8", "#e41a1c"};

std::string step_text(const std::optional<std::int64_t>& step) {
  return step ? std::to_string(*step) : "none";
}

std::string gap_figure(const std::vector<AuditRow>& rows, const std::vector<PhaseRow>& phases,
                       const std::optional<AuditLandmarks>& marks, const fs::path& out_dir,
                       std::vector<fs::path>& figures) {
  ScratchDir scratch("quantfork-report");
  std::vector<std::vector<double>> data;
  bool gptq = false;
  for (const auto& r : rows) {
    if (r.step <= 0) continue;
    data.push_back(
        {double(r.step), r.ppl_fp32, r.gap_int4_pct, r.gap_int8_pct, r.gap_int4_gptq_pct});
    gptq = gptq || std::isfinite(r.gap_int4_gptq_pct);
  }
  detail::write_data(scratch / "audit.dat", data);
  std::string s =
      "set title 'FP32 perplexity and quantization gap along the trajectory (shaded: fitted "
      "phases)'\nset logscale x\nset xlabel 'step (log scale)'\nset ylabel 'FP32 perplexity "
      "(log scale)'\nset logscale y\nset y2label 'gap vs FP32 (%)'\nset y2tics\nset ytics "
      "nomirror\n"
      "set key outside right top\nset autoscale xfix\n";
  for (std::size_t i = 0; i < phases.size(); ++i) {
    s += "set object " + std::to_string(i + 1) + " rect from " +
         std::to_string(std::max<std::int64_t>(phases[i].start_step, 1)) + ", graph 0 to " +
         std::to_string(std::max<std::int64_t>(phases[i].end_step, 1)) +
         ", graph 1 behind fc rgb '" + kPhaseColors[i % 3] +
         "' fs transparent solid 0.12 noborder\n";
    // Staggered: neighbouring phases on a log axis can be narrow.
    s += "set label " + gnuplot_quote(phases[i].phase) + " at " +
         std::to_string(std::max<std::int64_t>(phases[i].start_step, 1)) + ", graph " +
         std::to_string(0.04 + 0.06 * double(i % 3)) + " left offset 0.5,0 front\n";
  }
  if (marks && marks->fp32_convergence_step) {
    s += detail::vertical_marker(double(*marks->fp32_convergence_step), "FP32 convergence",
                                 "#000000", 0.95);
  }
  if (marks && marks->divergence_onset_step) {
    s += detail::vertical_marker(double(*marks->divergence_onset_step), "divergence onset",
                                 "#e41a1c", 0.88);
  }
  const std::string dat = gnuplot_quote((scratch / "audit.dat").string());
  s += "plot " + dat +
       " using 1:2 axes x1y1 with linespoints lw 2 pt 7 ps 0.5 title 'FP32 "
       "perplexity', " +
       dat +
       " using 1:3 axes x1y2 with linespoints lw 2 pt 5 ps 0.5 title "
       "'INT4 gap (%)', " +
       dat +
       " using 1:4 axes x1y2 with linespoints lw 2 pt 9 ps 0.5 title "
       "'INT8 gap (%)'" +
       (gptq ? ", " + dat +
                   " using 1:5 axes x1y2 with linespoints lw 2 dt 2 pt 4 ps 0.5 title "
                   "'INT4 gap after GPTQ (%)'"
             : std::string()) +
       "\n";
  return detail::draw(s, out_dir, "audit_gap.png",
                      gptq ? "FP32 perplexity and INT4 (round to nearest and GPTQ) and INT8 gap "
                             "against step"
                           : "FP32 perplexity and INT4/INT8 gap against step",
                      figures);
}

// Whether a calibrated quantizer shows the same growth of the INT4 gap as round to
// nearest: both gaps at the first and last checkpoints that have both, and at the
// divergence onset when there is one.
std::string gptq_text(const std::vector<AuditRow>& rows,
                      const std::optional<AuditLandmarks>& marks) {
  std::vector<const AuditRow*> both;
  for (const auto& r : rows) {
    if (std::isfinite(r.gap_int4_gptq_pct) && std::isfinite(r.gap_int4_pct)) both.push_back(&r);
  }
  if (both.empty()) return "";
  std::string md =
      "INT4 gap by round to nearest (the probe) and after GPTQ (calibrated on " +
      std::string("text outside the evaluation windows), at ") + std::to_string(both.size()) +
      " checkpoint(s):\n\n| step | RTN INT4 gap % | GPTQ INT4 gap % |\n|--:|--:|--:|\n";
  std::vector<const AuditRow*> shown = {both.front()};
  if (marks && marks->divergence_onset_step) {
    for (const AuditRow* r : both) {
      if (r->step == *marks->divergence_onset_step && r != both.front() && r != both.back())
        shown.push_back(r);
    }
  }
  if (both.back() != both.front()) shown.push_back(both.back());
  for (const AuditRow* r : shown) {
    md += "| " + std::to_string(r->step) + " | " + format_stat(r->gap_int4_pct, 3) + " | " +
          format_stat(r->gap_int4_gptq_pct, 3) + " |\n";
  }
  md += "\n";
  if (both.size() >= 2) {
    const double rtn = both.back()->gap_int4_pct - both.front()->gap_int4_pct;
    const double cal = both.back()->gap_int4_gptq_pct - both.front()->gap_int4_gptq_pct;
    md += "From step " + std::to_string(both.front()->step) + " to " +
          std::to_string(both.back()->step) + " the RTN gap changed by " + format_stat(rtn, 3) +
          " points and the GPTQ gap by " + format_stat(cal, 3) +
          " points. A collapse that GPTQ does not share is a property of round to nearest, "
          "not of the weights alone; one it shares is not an artefact of the quantizer. "
          "GPTQ's numbers depend on its calibration text (see the stored config).\n\n";
  }
  return md;
}

std::string correlation_text(const Correlation& c) {
  if (c.n < 3) return "too few checkpoints for a correlation (n = " + std::to_string(c.n) + ")";
  return "r = " + format_stat(c.r, 3) + " (n = " + std::to_string(c.n) + " checkpoints)";
}

std::string kurtosis_figure(const std::vector<AuditRow>& rows,
                            const std::optional<AuditLandmarks>& marks, const fs::path& out_dir,
                            std::vector<fs::path>& figures) {
  std::vector<std::vector<double>> data;
  for (const auto& r : rows) {
    if (std::isfinite(r.kurtosis_mean) && std::isfinite(r.gap_int4_pct)) {
      data.push_back({r.kurtosis_mean, r.gap_int4_pct, double(r.step)});
    }
  }
  if (data.empty()) return "No checkpoint has both a mean kurtosis and an INT4 gap to plot.\n\n";
  const auto onset = marks ? marks->divergence_onset_step : std::nullopt;
  const KurtosisGapCorrelation k = kurtosis_gap_correlation(rows, onset);
  ScratchDir scratch("quantfork-report");
  detail::write_data(scratch / "kurtosis.dat", data);
  const std::string within =
      k.divergence ? ", within divergence " + format_stat(k.divergence->r, 3) : "";
  const std::string s =
      "set title " +
      gnuplot_quote(
          "mean excess kurtosis of the quantized weights against the "
          "INT4 gap (Pearson r = " +
          format_stat(k.all.r, 3) + within + ")") +
      "\nset xlabel 'mean excess kurtosis'\nset ylabel 'INT4 gap (%)'\n"
      "set cblabel 'step'\nset palette defined (0 '#2c7bb6', 1 '#ffffbf', 2 '#d7191c')\n"
      "plot " +
      gnuplot_quote((scratch / "kurtosis.dat").string()) +
      " using 1:2:3 with points pt 7 ps 1 lc palette notitle\n";
  return detail::draw(s, out_dir, "audit_kurtosis.png", "mean kurtosis against INT4 gap", figures) +
         "Pearson r between mean weight kurtosis and INT4 gap: over the whole trajectory " +
         correlation_text(k.all) + "; within the divergence phase" +
         (k.divergence
              ? " (steps >= " + std::to_string(*onset) + ") " + correlation_text(*k.divergence)
              : std::string(", no divergence phase: not computed")) +
         ". The paper's r = -0.26 is within its divergence phase.\n\n";
}

// The quantizers behind the INT4 and INT8 columns, from the config the file stores; a
// width other than the column's is said in bold, since every "INT4" below then means it.
std::string schemes_text(const std::string& config_yaml) {
  YAML::Node probe;
  try {
    probe = YAML::Load(config_yaml)["probe"];
  } catch (const YAML::Exception&) {
    return "";
  }
  const auto scheme = [&](const char* key, const char* fallback) {
    return probe && probe[key] && probe[key].IsScalar() ? probe[key].Scalar()
                                                        : std::string(fallback);
  };
  const std::string low = scheme("int4_scheme", "int4_asym_g128");
  const std::string high = scheme("int8_scheme", "int8_sym_channel");
  std::string md = "Quantizers: `" + low + "` (the INT4 columns) and `" + high +
                   "` (the INT8 columns), round to nearest without calibration.";
  for (const auto& [name, column, prefix] :
       {std::tuple{low, "INT4", "int4_"}, std::tuple{high, "INT8", "int8_"}}) {
    if (name.rfind(prefix, 0) != 0) {
      md += std::string(" **The ") + column + " columns of this audit hold `" + name + "`.**";
    }
  }
  return md + "\n\n";
}

// The landmarks in sentences; plain about what was not found.
std::string landmarks_text(AuditFile& file, const std::optional<AuditLandmarks>& marks,
                           const std::string& path) {
  if (!marks) {
    return "Phase detection has not run on this file, so there are no landmarks; run `quantfork "
           "audit --phases-only --out " +
           path + "`.\n\n";
  }
  std::string md;
  if (marks->fp32_convergence_step) {
    md +=
        "- FP32 convergence (the first checkpoint whose moving median of FP32 perplexity is "
        "within audit.phases.converged_within_pct of its minimum): step " +
        std::to_string(*marks->fp32_convergence_step);
    if (file.file().int_attribute("converged_inside").value_or(1) == 0) {
      md += ", the last checkpoint: FP32 perplexity has not converged inside this trajectory";
    }
    md += ".\n";
  } else {
    md += "- FP32 convergence: not found.\n";
  }
  if (marks->divergence_onset_step) {
    md += "- Divergence onset: step " + std::to_string(*marks->divergence_onset_step) +
          "; pre-divergence checkpoint: step " + step_text(marks->pre_divergence_step) + ".\n";
    if (const auto lag = file.file().double_attribute("lag_steps"); lag && std::isfinite(*lag)) {
      md += "- Lag from FP32 convergence to the divergence onset: " + format_stat(*lag, 6) +
            " steps.\n";
    }
  } else {
    md +=
        "- No divergence phase was found in this trajectory, so there is no divergence onset "
        "and no pre-divergence checkpoint to fork from.\n";
  }
  if (const auto verdict = file.file().string_attribute("phase_verdict");
      verdict && !verdict->empty()) {
    md += "\nThe audit's findings:\n\n";
    std::size_t start = 0;
    while (start < verdict->size()) {
      const std::size_t end = verdict->find('\n', start);
      const std::string line = verdict->substr(start, end - start);
      if (!line.empty()) md += "- " + line + "\n";
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  return md + "\n";
}

}  // namespace

KurtosisGapCorrelation kurtosis_gap_correlation(const std::vector<AuditRow>& rows,
                                                std::optional<std::int64_t> divergence_onset) {
  std::vector<double> k, g, k_div, g_div;
  for (const auto& r : rows) {
    if (!std::isfinite(r.kurtosis_mean) || !std::isfinite(r.gap_int4_pct)) continue;
    k.push_back(r.kurtosis_mean);
    g.push_back(r.gap_int4_pct);
    if (divergence_onset && r.step >= *divergence_onset) {
      k_div.push_back(r.kurtosis_mean);
      g_div.push_back(r.gap_int4_pct);
    }
  }
  KurtosisGapCorrelation out;
  out.all = {k.size(), pearson_r(k, g)};
  if (divergence_onset) out.divergence = Correlation{k_div.size(), pearson_r(k_div, g_div)};
  return out;
}

std::string audit_section(const fs::path& audit, const fs::path& out_dir,
                          std::vector<fs::path>& figures) {
  AuditFile file = AuditFile::open_read_only(audit.string());
  // One row per step: its last good one.
  std::map<std::int64_t, AuditRow> by_step;
  std::size_t failed = 0;
  for (const auto& r : file.read_audit()) {
    if (r.phase == kFailedPhase) {
      ++failed;
      continue;
    }
    by_step[r.step] = r;
  }
  std::vector<AuditRow> rows;
  for (const auto& [step, r] : by_step) rows.push_back(r);
  const auto phases = file.read_phases();
  const auto marks = file.landmarks();

  std::string md = "## Audit: `" + audit.string() + "`\n\n";
  if (rows.empty()) return md + "The audit file holds no probed checkpoint yet.\n\n";
  md += std::to_string(rows.size()) + " checkpoint(s) probed, steps " +
        std::to_string(rows.front().step) + " to " + std::to_string(rows.back().step) +
        (failed ? "; " + std::to_string(failed) + " failed probe row(s) left out" : "") +
        (rows.front().step == 0 ? "; step 0 is not drawn on the log axis" : "") + ".\n\n";
  md += schemes_text(file.config_yaml());
  md += gap_figure(rows, phases, marks, out_dir, figures);
  md += gptq_text(rows, marks);
  md += landmarks_text(file, marks, audit.string());
  if (phases.empty()) {
    md += "No phases were fitted (too few checkpoints at or after the first fitted step).\n\n";
  } else {
    md +=
        "| phase | start step | end step | slope of log(INT4 gap) per step |\n"
        "|---|--:|--:|--:|\n";
    for (const auto& p : phases) {
      md += "| " + p.phase + " | " + std::to_string(p.start_step) + " | " +
            std::to_string(p.end_step) + " | " + format_stat(p.slope) + " |\n";
    }
    md += "\n";
  }
  md += detail::attribution_section(file.read_attribution(), rows, marks, out_dir, figures);
  md += detail::lawa_section(file.read_lawa(), file.lawa_k(), rows, marks, out_dir, figures);
  return md + kurtosis_figure(rows, marks, out_dir, figures);
}

}  // namespace qf::experiments
