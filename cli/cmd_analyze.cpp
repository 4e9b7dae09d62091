// quantfork analyze: the fork experiment's statistics over run files (method.md,
// "Statistics"; experiments/analyze.h) -> JSON and a Markdown table.
#include <iostream>

#include "cli/analyze_cli.h"
#include "experiments/analysis_io.h"

namespace qf::cli {

void add_analyze_options(ArgParser& parser) {
  parser.repeated("runs", "DIR_OR_FILE", "a run.h5 file or a directory of runs (repeatable)")
      .positional("DIR_OR_FILE", "more run files or directories, as with --runs");
  add_config_options(parser);
}

std::vector<std::string> run_inputs(const ArgParser& parser) {
  std::vector<std::string> inputs = parser.all("runs");
  for (const auto& p : parser.positionals()) inputs.push_back(p);
  return inputs;
}

bool load_analyze_options(const ArgParser& parser, experiments::AnalyzeOptions& out) {
  ConfigSchema schema;
  experiments::declare_analyze_config(schema);
  Config cfg;
  if (!load_config(parser, schema, cfg)) return false;
  out = experiments::analyze_options(cfg);
  return true;
}

int run_analyze(const std::vector<std::string>& args) {
  ArgParser parser(
      "analyze", "--runs DIR_OR_FILE... --out FILE.json [--markdown FILE.md] [options]",
      "Compares every arm of a fork experiment with the baseline arm (analyze.baseline) on one "
      "probe metric (analyze.metric), and with its controls (analyze.controls, e.g. oli with "
      "cosine_matched): a paired t-test over probe rows matched by seed and step (after the "
      "arm's analyze.phase_filter; n = probe pairs), the same test over seeds (each seed's "
      "differences averaged; n = seeds, since probes within one run are correlated and the "
      "probe-level p is optimistic), Welch's t-test and pairwise wins on the final probe of "
      "each seed. --runs takes run.h5 files or directories searched recursively for "
      "run.h5 (OUT/<experiment>/<arm>/seed<k>/); arm and seed come from each file. Rows that "
      "cannot be paired are listed under \"unpaired\" in the JSON and warned about. The "
      "Markdown table (also printed) holds the JSON's numbers.");
  parser.option("out", "FILE.json", "where the statistics are written")
      .option("markdown", "FILE.md", "also write the statistics table as Markdown");
  add_analyze_options(parser);
  if (!parser.parse(args)) return 0;
  experiments::AnalyzeOptions options;
  if (!load_analyze_options(parser, options)) return 0;
  const std::string out = parser.get("out");

  const experiments::Analysis analysis = experiments::analyze_inputs(run_inputs(parser), options);
  experiments::write_text_file(out, experiments::analysis_to_json(analysis).dump(2) + "\n");
  const std::string table = experiments::markdown_table(analysis);
  if (parser.has("markdown")) experiments::write_text_file(parser.get("markdown"), table);
  std::cout << table;
  return 0;
}

}  // namespace qf::cli
