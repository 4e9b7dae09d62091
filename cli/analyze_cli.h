#pragma once
// What `analyze` and `report` share on the command line (defined in cmd_analyze.cpp):
// the run inputs (--runs, repeatable, and positional paths), the configuration options,
// and the analyze.* configuration.
#include <string>
#include <vector>

#include "cli/command.h"
#include "experiments/analyze.h"

namespace qf::cli {

// --runs DIR_OR_FILE (repeatable), positional DIR_OR_FILE..., and add_config_options.
void add_analyze_options(ArgParser& parser);
// The --runs values, then the positionals.
std::vector<std::string> run_inputs(const ArgParser& parser);
// Resolves the analyze.* configuration; false when --dump-config(-docs) was printed.
bool load_analyze_options(const ArgParser& parser, experiments::AnalyzeOptions& out);

}  // namespace qf::cli
