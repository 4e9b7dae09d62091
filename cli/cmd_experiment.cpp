// quantfork experiment: the fork experiment (experiments/fork.h) from a config.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "core/subprocess.h"
#include "experiments/experiment_runner.h"

namespace qf::cli {

int run_experiment(const std::vector<std::string>& args) {
  ArgParser parser(
      "experiment", "--config FILE [--set key=value ...] [--plan-only] [--run-index N]",
      "Runs the fork experiment: from experiment.base, every arm of experiment.arms with every "
      "seed of experiment.seeds, each a `quantfork train` run in "
      "experiment.out/<name>/<arm>/seed<k>/ probed at one shared plan (every arm's phase "
      "boundaries and settled points, every probe.every updates, the last). The config holds "
      "the training keys shared by all runs (quantfork train --dump-config-docs). Running it "
      "again skips finished runs and resumes unfinished ones. Under torchrun / srun, "
      "experiment.ranks_per_run splits the job into run groups that take the runs in turn.");
  parser.flag("plan-only",
              "write the run configs and the probe plan, list the runs by index, train nothing");
  parser.option("run-index", "N",
                "run only plan run N (experiment.run_index; a Slurm array task: "
                "--run-index $SLURM_ARRAY_TASK_ID)");
  add_config_options(parser);
  if (!parser.parse(args)) return 0;
  ConfigSchema schema;
  experiments::declare_experiment_config(schema);
  Config cfg;
  std::vector<std::string> shortcuts;
  if (parser.has("run-index"))
    shortcuts.push_back("experiment.run_index=" + parser.get("run-index"));
  if (!load_config(parser, schema, cfg, "", "", shortcuts)) return 0;
  const experiments::ExperimentPlan plan = experiments::plan_experiment(cfg);
  std::cout << "experiment " << plan.name << ": " << plan.runs.size() << " runs, "
            << plan.probe_plan.size() << " probe steps, base " << plan.base.string() << " (step "
            << plan.base_step << ")\n";
  if (parser.has("plan-only")) {
    for (size_t i = 0; i < plan.runs.size(); ++i) {
      const auto& r = plan.runs[i];
      std::cout << "run " << i << ": " << r.arm << "/seed" << r.seed
                << (r.finished ? " (finished)" : "") << "\n";
    }
    return 0;
  }
  experiments::run_experiment(plan, self_program());
  std::cout << "runs in " << plan.out.string() << "\n";
  return 0;
}

}  // namespace qf::cli
