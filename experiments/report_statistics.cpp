// The statistics section of the report: the tables of an Analysis, a scale caveat, and
// each comparison in words beside the paper's finding (method.md: OLI lower than cosine
// by 2.2 points, SGDR worse than cosine in 9 of 9 pairs).
#include <cmath>
#include <cstdio>

#include "experiments/analysis_io.h"
#include "experiments/report.h"

namespace qf::experiments {
namespace {

// The paper's fork results (arXiv 2604.15167; method.md's opening paragraph).
constexpr PaperFinding kPaperFindings[] = {
    {"oli", "cosine", -1,
     "OLI's cool phases lower than cosine by 2.2 points on average (t = -5.46, p < 0.0001)"},
    {"sgdr", "cosine", +1, "SGDR worse than cosine in 9 of 9 pairwise comparisons (0/9 wins)"},
};

std::string sign_sentence(PaperSign sign) {
  switch (sign) {
    case PaperSign::kAgrees:
      return "The sign agrees with the paper's.";
    case PaperSign::kOpposite:
      return "The sign is opposite to the paper's.";
    case PaperSign::kUndetermined:
      return "The difference has no sign to hold against the paper's.";
    case PaperSign::kNoPaperResult:
      break;
  }
  return "The paper has no such comparison.";
}

std::string level_text(const PairedTTest& p, const std::string& counts) {
  return "n = " + std::to_string(p.n) + " " + counts + ", mean " + format_stat(p.mean_diff) +
         ", t = " + format_stat(p.t) + ", p = " + format_p(p.p_two_sided);
}

// One comparison: both paired levels, the final probe, and the paper's finding.
std::string in_words(const Comparison& c) {
  std::string rows;
  for (const auto& s : c.phase_filter) rows += (rows.empty() ? "" : ", ") + s.str();
  std::string md = "- **" + c.arm + " vs " + c.baseline + "**" +
                   (rows.empty() ? "" : " (" + c.arm + "'s rows: " + rows + ")") +
                   ": probe level " + level_text(c.paired, "probe pairs") + "; seed level " +
                   (c.paired_runs ? level_text(*c.paired_runs, "seeds")
                                  : "not computed (" + c.paired_runs_absent + ")") +
                   "; final probe: " + std::to_string(c.wins.wins) + "/" +
                   std::to_string(c.wins.total) + " wins.";
  if (const PaperFinding* f = paper_finding(c.arm, c.baseline)) {
    md += std::string(" The paper: ") + f->text + ".";
  }
  return md + " " + sign_sentence(paper_sign(c.arm, c.baseline, c.paired.mean_diff)) + "\n";
}

}  // namespace

const PaperFinding* paper_finding(const std::string& arm, const std::string& baseline) {
  for (const auto& f : kPaperFindings) {
    if (arm == f.arm && baseline == f.baseline) return &f;
  }
  return nullptr;
}

PaperSign paper_sign(const std::string& arm, const std::string& baseline, double mean_diff) {
  const PaperFinding* f = paper_finding(arm, baseline);
  if (!f) return PaperSign::kNoPaperResult;
  if (!std::isfinite(mean_diff) || mean_diff == 0) return PaperSign::kUndetermined;
  return (mean_diff < 0) == (f->sign < 0) ? PaperSign::kAgrees : PaperSign::kOpposite;
}

std::string scale_caveat(std::int64_t parameters, const std::string& tokens) {
  const double millions = static_cast<double>(parameters) / 1e6;
  char size[32];
  std::snprintf(size, sizeof size,
                millions < 1    ? "%.2f"
                : millions < 10 ? "%.1f"
                                : "%.0f",
                millions);
  return std::string("Scale caveat: a ") + size + "M-parameter model on " + tokens +
         " tokens, not the paper's Pythia-160m (162M parameters, BPE tokens); a sign that "
         "agrees with the paper's checks the pipeline, it does not replicate the finding.";
}

std::string statistics_section(const Analysis& analysis, const std::string& caveat) {
  std::string md = "## Statistics\n\n";
  if (!caveat.empty()) md += "> " + caveat + "\n\n";
  md += markdown_table(analysis) + "\n### Each comparison in words\n\n";
  md += "The sign held against the paper's is that of the probe-level mean difference of `" +
        analysis.metric +
        "`; n counts probe pairs at the probe level and seeds at the seed "
        "level, whose p is the one to trust: probes within one run are correlated.\n\n";
  for (const auto& c : analysis.comparisons) md += in_words(c);
  return md + "\n";
}

}  // namespace qf::experiments
