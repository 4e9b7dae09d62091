// The experiment section of the report: the metric of every arm along the fork (mean
// over seeds with a min-max band), the learning rates, and the final probe of each seed.
#include <algorithm>
#include <cmath>
#include <map>

#include "core/gnuplot.h"
#include "experiments/analysis_io.h"
#include "experiments/report.h"
#include "experiments/report_plot.h"

namespace fs = std::filesystem;

namespace qf::experiments {
namespace {

using ArmRuns = std::map<std::string, std::vector<const Run*>>;  // by arm, seeds ascending

ArmRuns by_arm(const std::vector<Run>& runs) {
  ArmRuns out;
  for (const auto& r : runs) out[r.arm].push_back(&r);
  for (auto& [arm, list] : out) {
    std::sort(list.begin(), list.end(),
              [](const Run* a, const Run* b) { return a->seed < b->seed; });
  }
  return out;
}

// `i`-th data file of a scratch dir, quoted for a plot command.
std::string data_file(const ScratchDir& scratch, const std::string& stem, std::size_t i) {
  return gnuplot_quote((scratch / (stem + std::to_string(i) + ".dat")).string());
}

std::string metric_figure(const ArmRuns& arms, const std::string& metric, const fs::path& out_dir,
                          std::vector<fs::path>& figures) {
  ScratchDir scratch("quantfork-report");
  std::string plot;
  std::size_t i = 0;
  for (const auto& [arm, runs] : arms) {
    std::map<std::int64_t, std::vector<double>> at;  // step -> finite values over seeds
    for (const Run* r : runs) {
      for (const auto& p : r->probes) {
        if (std::isfinite(p.value)) at[p.step].push_back(p.value);
      }
    }
    std::vector<std::vector<double>> data;
    for (const auto& [step, v] : at) {
      double sum = 0;
      for (double x : v) sum += x;
      data.push_back({double(step), sum / double(v.size()), *std::min_element(v.begin(), v.end()),
                      *std::max_element(v.begin(), v.end())});
    }
    detail::write_data(scratch / ("metric" + std::to_string(i) + ".dat"), data);
    const std::string f = data_file(scratch, "metric", i), lc = " lc " + std::to_string(i + 1);
    plot += std::string(i ? ", " : "") + f +
            " using 1:3:4 with filledcurves fs transparent solid " + "0.2 noborder" + lc +
            " notitle, " + f + " using 1:2 with linespoints lw 2 pt 7 ps 0.6" + lc + " title " +
            gnuplot_quote(arm + " (" + std::to_string(runs.size()) + " seeds)");
    ++i;
  }
  const std::string s = "set title " +
                        gnuplot_quote(metric + " per arm: mean over seeds, band min-max") +
                        "\nset xlabel 'step'\nset ylabel " + gnuplot_quote(metric) +
                        "\nset key outside right top\nplot " + plot + "\n";
  return detail::draw(s, out_dir, "experiment_metric.png", metric + " per arm against step",
                      figures);
}

std::string lr_figure(const ArmRuns& arms, const fs::path& out_dir,
                      std::vector<fs::path>& figures) {
  ScratchDir scratch("quantfork-report");
  std::string plot, missing;
  std::size_t i = 0;
  for (const auto& [arm, runs] : arms) {
    ++i;
    // Every seed of an arm follows the same schedule: its first seed with /train rows.
    const auto r =
        std::find_if(runs.begin(), runs.end(), [](const Run* x) { return !x->train.empty(); });
    if (r == runs.end()) {
      missing += (missing.empty() ? "" : ", ") + arm;
      continue;
    }
    std::vector<std::vector<double>> data;
    for (const auto& t : (*r)->train) data.push_back({double(t.step), t.lr});
    detail::write_data(scratch / ("lr" + std::to_string(i) + ".dat"), data);
    plot += std::string(plot.empty() ? "" : ", ") + data_file(scratch, "lr", i) +
            " using 1:2 with lines lw 2 lc " + std::to_string(i) + " title " + gnuplot_quote(arm);
  }
  std::string note =
      missing.empty() ? "" : "No /train rows, so no learning rate, for: " + missing + ".\n\n";
  if (plot.empty()) return note;
  const std::string s =
      "set title 'learning rate per arm (from /train)'\nset xlabel 'step'\n"
      "set ylabel 'learning rate'\nset format y '%g'\nset key outside right top\n"
      "plot " +
      plot + "\n";
  return detail::draw(s, out_dir, "experiment_lr.png", "learning rate per arm", figures) + note;
}

double value_at(const Run& r, std::int64_t step) {
  for (const auto& p : r.probes) {
    if (p.step == step) return p.value;
  }
  return std::nan("");
}

std::string final_figure(const ArmRuns& arms, const std::string& metric, std::int64_t step,
                         const fs::path& out_dir, std::vector<fs::path>& figures) {
  ScratchDir scratch("quantfork-report");
  std::vector<std::vector<double>> data;
  std::string xtics, table = "| arm | seed | " + metric + " at step " + std::to_string(step) +
                             " |\n|---|--:|--:|\n";
  std::size_t i = 0;
  for (const auto& [arm, runs] : arms) {
    xtics += std::string(i ? ", " : "") + gnuplot_quote(arm) + " " + std::to_string(i);
    for (const Run* r : runs) {
      const double v = value_at(*r, step);
      data.push_back({double(i), v, double(r->seed)});
      table += "| " + arm + " | " + std::to_string(r->seed) + " | " + format_stat(v) + " |\n";
    }
    ++i;
  }
  detail::write_data(scratch / "final.dat", data);
  const std::string f = gnuplot_quote((scratch / "final.dat").string());
  const std::string s = "set title " +
                        gnuplot_quote(metric + " at the final probe (step " + std::to_string(step) +
                                      "), one point per seed") +
                        "\nset xtics (" + xtics +
                        ")\nset xrange [-0.5:" + std::to_string(arms.size()) +
                        " - 0.5]\nset ylabel " + gnuplot_quote(metric) +
                        "\nset offsets 0, 0, graph 0.1, graph 0.1\nplot " + f +
                        " using 1:2 with points pt 7 ps 1.5 lc 1 notitle, " + f +
                        " using 1:2:(sprintf('seed %d', $3)) with labels left offset 1,0 notitle\n";
  return detail::draw(s, out_dir, "experiment_final.png", "final probe per seed", figures) + table +
         "\n";
}

}  // namespace

std::string experiment_section(const std::vector<Run>& runs, const std::string& metric,
                               const fs::path& out_dir, std::vector<fs::path>& figures) {
  std::string md = "## Fork experiment\n\n";
  if (runs.empty()) return md + "No runs.\n\n";
  const ArmRuns arms = by_arm(runs);
  md += "| arm | seeds | probes | run files |\n|---|---|--:|---|\n";
  for (const auto& [arm, list] : arms) {
    std::string seeds, files;
    std::size_t probes = 0;
    for (const Run* r : list) {
      seeds += (seeds.empty() ? "" : ", ") + std::to_string(r->seed);
      files += (files.empty() ? "`" : "`, `") + r->file.string();
      probes += r->probes.size();
    }
    md += "| " + arm + " | " + seeds + " | " + std::to_string(probes) + " | " + files + "` |\n";
  }
  md += "\n";
  md += metric_figure(arms, metric, out_dir, figures);
  md += lr_figure(arms, out_dir, figures);
  std::vector<const Run*> all;
  for (const auto& r : runs) all.push_back(&r);
  if (const auto step = common_final_step(all)) {
    md += final_figure(arms, metric, *step, out_dir, figures);
  } else {
    md += "No step has a finite value in every run, so there is no common final probe to show.\n\n";
  }
  return md;
}

}  // namespace qf::experiments
