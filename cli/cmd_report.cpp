// quantfork report: a Markdown report with PNG figures of an audit and/or a fork
// experiment (experiments/report.h).
#include <iostream>

#include "cli/analyze_cli.h"
#include "experiments/report.h"

namespace qf::cli {

int run_report(const std::vector<std::string>& args) {
  ArgParser parser(
      "report", "[--audit FILE.h5] [--runs DIR_OR_FILE...] [--analysis FILE.json] --out DIR",
      "Writes DIR/report.md and its figures (PNG, drawn by gnuplot). --audit (an audit.h5 from "
      "quantfork audit): FP32 perplexity and INT4/INT8 gap against step on a log axis with the "
      "phases shaded and the FP32 convergence step marked (audit_gap.png), mean kurtosis "
      "against INT4 gap (audit_kurtosis.png), the landmarks and the phases table. --runs (run "
      "files or directories, as for quantfork analyze): the analyze.metric per arm against "
      "step, mean over seeds with a min-max band (experiment_metric.png), each arm's learning "
      "rate (experiment_lr.png), the final probe of each seed (experiment_final.png). The "
      "statistics table comes from --analysis (a quantfork analyze JSON) or, without it, is "
      "computed from --runs with the analyze.* configuration and written to "
      "DIR/analysis.json; beside the tables, each comparison in words, saying whether its "
      "sign agrees with the paper's. Give at least one of --audit, --runs, --analysis.");
  parser.option("audit", "FILE.h5", "an audit file (quantfork.audit/3)")
      .option("analysis", "FILE.json", "statistics written by quantfork analyze")
      .option("caveat", "TEXT",
              "a line the statistics section opens with, e.g. on the scale of a miniature")
      .option("out", "DIR", "the report folder (created when missing)");
  add_analyze_options(parser);
  if (!parser.parse(args)) return 0;
  experiments::ReportOptions options;
  if (!load_analyze_options(parser, options.analyze)) return 0;
  if (parser.has("audit")) options.audit = parser.get("audit");
  if (parser.has("analysis")) options.analysis = parser.get("analysis");
  if (parser.has("caveat")) options.caveat = parser.get("caveat");
  options.runs = run_inputs(parser);
  const experiments::ReportFiles files = experiments::write_report(options, parser.get("out"));
  std::cout << "wrote " << files.markdown.string();
  for (const auto& f : files.figures) std::cout << ", " << f.filename().string();
  if (files.analysis) std::cout << ", " << files.analysis->filename().string();
  std::cout << "\n";
  return 0;
}

}  // namespace qf::cli
