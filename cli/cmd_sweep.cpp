// quantfork sweep: train a grid of configs from scratch, audit each trajectory, tabulate
// (experiments/sweep.h).
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "core/errors.h"
#include "core/subprocess.h"
#include "experiments/experiment_runner.h"
#include "experiments/sweep.h"

namespace qf::cli {

int run_sweep(const std::vector<std::string>& args) {
  ArgParser parser(
      "sweep", "--config FILE [--set key=value ...] [--plan-only | --table-only]",
      "Trains every point of sweep.grid / sweep.list (changes to the training config it is "
      "given) with every seed of sweep.seeds, each a `quantfork train` run from scratch in "
      "sweep.out/<name>/<point>/seed<k>/, audits each run's checkpoints (audit.h5 beside it), "
      "and writes sweep.csv, sweep.h5 and report/report.md with one row per run: the swept "
      "values, final FP32 perplexity, FP32 convergence, the divergence onset, the INT4/INT8 "
      "gaps at convergence and at the end, the growth of the INT4 gap, and the training "
      "seconds. Every run's config is checked before anything runs. Running it again skips "
      "runs that trained and were audited and resumes the others.");
  parser.flag("plan-only", "check and write the run configs, list the points, train nothing");
  parser.flag("table-only",
              "train and audit nothing: tabulate what the runs hold now (e.g. while it runs)");
  add_config_options(parser);
  if (!parser.parse(args)) return 0;
  ConfigSchema schema;
  experiments::declare_sweep_config(schema);
  Config cfg;
  if (!load_config(parser, schema, cfg, "", "", {})) return 0;
  const experiments::SweepPlan plan = experiments::plan_sweep(cfg);
  std::cout << "sweep " << plan.name << ": " << plan.points.size() << " point(s) x "
            << plan.seeds.size() << " seed(s) in " << plan.out.string() << "\n";
  if (parser.has("plan-only")) {
    for (size_t i = 0; i < plan.runs.runs.size(); ++i) {
      const auto& r = plan.runs.runs[i];
      std::cout << "run " << i << ": " << r.arm << "/seed" << r.seed << "  "
                << plan.points[plan.point_of[i]].label()
                << (r.done()     ? " (done)"
                    : r.finished ? " (trained, not audited)"
                                 : "")
                << "\n";
    }
    return 0;
  }
  std::optional<Error> failure;
  if (!parser.has("table-only")) {
    try {
      experiments::run_experiment(plan.runs, self_program());
    } catch (const Error& e) {
      failure = e;  // tabulate what there is, then report the failure
    }
  }
  const auto rows = experiments::summarize_sweep(plan);
  const auto report = experiments::write_sweep_results(plan, rows, cfg.dump());
  int ok = 0, three = 0;
  for (const auto& r : rows) {
    ok += r.status == "ok";
    three += r.three_phases;
  }
  std::cout << ok << " of " << rows.size() << " run(s) trained and audited; " << three
            << " show the three phases\ntable: " << (plan.out / "sweep.csv").string() << " and "
            << (plan.out / "sweep.h5").string() << "\nreport: " << report.string() << "\n";
  if (failure) throw *failure;
  return 0;
}

}  // namespace qf::cli
