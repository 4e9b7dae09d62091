// The report's weight-averaging section (report_plot.h): the INT4 gap of the LAWA average
// of each checkpoint with the k − 1 before it (/audit_lawa) beside the raw checkpoint's,
// along the audited trajectory.
#include <cmath>
#include <map>

#include "core/gnuplot.h"
#include "experiments/analysis_io.h"
#include "experiments/report_plot.h"

namespace fs = std::filesystem;

namespace qf::experiments::detail {

namespace {

struct Pair {
  const AuditRow* raw = nullptr;
  const LawaRow* lawa = nullptr;
};

std::string lawa_figure(const std::vector<Pair>& pairs, std::int64_t k,
                        const std::optional<AuditLandmarks>& marks, const fs::path& out_dir,
                        std::vector<fs::path>& figures) {
  ScratchDir scratch("quantfork-report");
  std::vector<std::vector<double>> data;
  for (const Pair& p : pairs) {
    if (p.raw->step <= 0) continue;
    data.push_back({double(p.raw->step), p.raw->gap_int4_pct, p.lawa->gap_int4_pct,
                    p.raw->gap_int8_pct, p.lawa->gap_int8_pct});
  }
  detail::write_data(scratch / "lawa.dat", data);
  const std::string kk = std::to_string(k);
  std::string s = "set title " +
                  gnuplot_quote(
                      "INT4 and INT8 gap of each checkpoint and of its LAWA average "
                      "with the " +
                      std::to_string(k - 1) + " before it") +
                  "\nset logscale x\nset xlabel 'step (log scale)'\nset ylabel 'gap vs FP32 "
                  "(%)'\nset key outside right top\nset autoscale xfix\n";
  if (marks && marks->fp32_convergence_step) {
    s +=
        vertical_marker(double(*marks->fp32_convergence_step), "FP32 convergence", "#000000", 0.95);
  }
  if (marks && marks->divergence_onset_step) {
    s +=
        vertical_marker(double(*marks->divergence_onset_step), "divergence onset", "#e41a1c", 0.88);
  }
  const std::string dat = gnuplot_quote((scratch / "lawa.dat").string());
  s += "plot " + dat + " using 1:2 with linespoints lw 2 pt 5 ps 0.5 lc 1 title 'INT4, raw', " +
       dat + " using 1:3 with linespoints lw 2 dt 2 pt 4 ps 0.5 lc 1 title 'INT4, LAWA k=" + kk +
       "', " + dat + " using 1:4 with linespoints lw 1 pt 9 ps 0.5 lc 2 title 'INT8, raw', " + dat +
       " using 1:5 with linespoints lw 1 dt 2 pt 8 ps 0.5 lc 2 title 'INT8, LAWA k=" + kk + "'\n";
  return draw(s, out_dir, "audit_lawa.png",
              "INT4/INT8 gap of the raw checkpoints and of their LAWA averages (k = " + kk +
                  ") against step",
              figures);
}

std::string row_text(const char* what, const Pair& p) {
  return "| " + std::string(what) + " | " + std::to_string(p.raw->step) + " | " +
         format_stat(p.raw->ppl_fp32, 5) + " | " + format_stat(p.lawa->ppl_fp32, 5) + " | " +
         format_stat(p.raw->gap_int4_pct, 3) + " | " + format_stat(p.lawa->gap_int4_pct, 3) +
         " |\n";
}

}  // namespace

std::string lawa_section(const std::vector<LawaRow>& lawa, std::optional<std::int64_t> k,
                         const std::vector<AuditRow>& rows,
                         const std::optional<AuditLandmarks>& marks, const fs::path& out_dir,
                         std::vector<fs::path>& figures) {
  if (lawa.empty()) return "";
  std::map<std::int64_t, const LawaRow*> by_step;
  for (const auto& r : lawa) by_step[r.step] = &r;  // the last row of a step wins
  // Checkpoints with a full window only: the first k − 1 average fewer and would mix two
  // different quantities into the comparison.
  const std::int64_t window = k.value_or(0);
  std::vector<Pair> pairs;
  for (const auto& r : rows) {
    const auto it = by_step.find(r.step);
    if (it == by_step.end() || it->second->checkpoints != window) continue;
    if (!std::isfinite(r.gap_int4_pct) || !std::isfinite(it->second->gap_int4_pct)) continue;
    pairs.push_back({&r, it->second});
  }
  std::string md = "### Weight averaging (LAWA, k = " + std::to_string(window) + ")\n\n";
  if (pairs.empty()) {
    return md + "No checkpoint has both a raw row and a LAWA average of a full window of " +
           std::to_string(window) + " checkpoints.\n\n";
  }
  md += lawa_figure(pairs, window, marks, out_dir, figures);
  std::size_t lower = 0;
  for (const Pair& p : pairs) lower += p.lawa->gap_int4_pct < p.raw->gap_int4_pct;
  md += "The uniform average of each checkpoint with the " + std::to_string(window - 1) +
        " before it (LAWA) had a lower INT4 gap than the checkpoint itself at " +
        std::to_string(lower) + " of " + std::to_string(pairs.size()) +
        " checkpoints with a full window.\n\n"
        "| where | step | FP32 ppl raw | FP32 ppl LAWA | INT4 gap % raw | INT4 gap % LAWA |\n"
        "|---|--:|--:|--:|--:|--:|\n";
  md += row_text("first full window", pairs.front());
  const auto at = [&](const std::optional<std::int64_t>& step, const char* what) {
    if (!step) return;
    for (const Pair& p : pairs) {
      if (p.raw->step == *step && &p != &pairs.front() && &p != &pairs.back()) {
        md += row_text(what, p);
      }
    }
  };
  if (marks) {
    at(marks->fp32_convergence_step, "FP32 convergence");
    at(marks->divergence_onset_step, "divergence onset");
  }
  if (pairs.size() > 1) md += row_text("last", pairs.back());
  const Pair& last = pairs.back();
  md += "\nAt the last checkpoint the average's INT4 gap is " +
        format_stat(last.lawa->gap_int4_pct, 3) + "% against " +
        format_stat(last.raw->gap_int4_pct, 3) +
        "% for the raw weights, at an FP32 perplexity of " + format_stat(last.lawa->ppl_fp32, 5) +
        " against " + format_stat(last.raw->ppl_fp32, 5) +
        ". This is one trajectory (n = 1, no seeds): a difference here is a measurement of this "
        "run, not an effect with an error bar; an average over checkpoints far apart in the "
        "schedule also mixes weights of different learning rates, so compare the FP32 column "
        "before reading the gap.\n\n";
  return md;
}

}  // namespace qf::experiments::detail
