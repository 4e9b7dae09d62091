// quantfork status: where the runs under a path stand (experiments/run_status.h).
#include <iostream>

#include "cli/command.h"
#include "core/errors.h"
#include "experiments/run_status.h"

namespace qf::cli {

int run_status(const std::vector<std::string>& args) {
  ArgParser parser(
      "status", "PATH [--json]",
      "Shows where the runs under PATH stand: a run directory, an experiment "
      "(OUT/<experiment>) or any directory above runs and experiments (a sweep). For each "
      "run: its state (done; running, by the process holding its lock; failed, with the "
      "first error line; stopped, which the same command resumes; not started), its updates "
      "out of train.steps, the last loss and INT4 gap; for each experiment, per arm, the "
      "probes matched by seed and step in every arm so far. It only reads (a running run's "
      "rows from its run.h5.journal), so it is safe beside training.");
  parser.flag("json", "print JSON (quantfork.status/1) for scripts instead of the table")
      .positional("PATH", "a run, an experiment or a directory above them", 1);
  if (!parser.parse(args)) return 0;
  if (parser.positionals().empty()) throw UsageError("quantfork status: give a PATH (see --help)");
  const experiments::StatusReport report = experiments::status_of(parser.positionals()[0]);
  if (parser.has("json")) {
    nlohmann::json j = experiments::status_json(report);
    j["schema"] = "quantfork.status/1";
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << experiments::format_status(report);
  }
  return 0;
}

}  // namespace qf::cli
