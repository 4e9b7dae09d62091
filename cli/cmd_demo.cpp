// quantfork demo: the whole study in miniature on this machine (experiments/demo.h).
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "core/subprocess.h"
#include "experiments/demo.h"

namespace qf::cli {

int run_demo(const std::vector<std::string>& args) {
  ArgParser parser(
      "demo", "[--config FILE] [--set demo.key=value ...]",
      "The Pythia-160m study in miniature, with no download: a corpus from Debian's fortunes "
      "package, a tiny GPT-NeoX pretrained past convergence with Pythia-spaced checkpoints, "
      "the audit with phase detection, the fork from the pre-divergence checkpoint under "
      "cosine, SGDR and OLI x 3 seeds, the statistics and the report (demo.out/report/"
      "report.md). Every stage's config is written into demo.out; rerunning goes on where it "
      "stopped.");
  parser.flag("corpus-only",
              "only write the corpus (demo.out/data/train and val, indexed datasets), e.g. for "
              "experiments/configs/sweep_search.yaml, and print their paths");
  add_config_options(parser);
  if (!parser.parse(args)) return 0;
  ConfigSchema schema;
  experiments::declare_demo_config(schema);
  Config cfg;
  if (!load_config(parser, schema, cfg)) return 0;
  if (parser.has("corpus-only")) {
    const auto data = experiments::make_demo_corpus(cfg);
    std::cout << "training set: " << data.first.string()
              << "\nvalidation set: " << data.second.string() << "\n";
    return 0;
  }
  const auto result = experiments::run_demo(cfg, self_program());
  std::cout << "fork base: " << result.base_reason << "\nreport: " << result.report.string()
            << "\n";
  return 0;
}

}  // namespace qf::cli
