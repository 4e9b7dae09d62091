#include "experiments/report.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <system_error>

#include "core/errors.h"
#include "core/gnuplot.h"
#include "experiments/analysis_io.h"
#include "experiments/report_plot.h"

namespace fs = std::filesystem;

namespace qf::experiments {

namespace detail {

void write_data(const fs::path& file, const std::vector<std::vector<double>>& rows) {
  std::ofstream out(file);
  char buf[32];
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%.17g", row[i]);
      out << (i ? " " : "") << buf;
    }
    out << "\n";
  }
  if (!out) throw IoError(errno_message("cannot write", file.string()));
}

std::string draw(const std::string& body, const fs::path& out_dir, const std::string& name,
                 const std::string& caption, std::vector<fs::path>& figures) {
  const fs::path png = out_dir / name;
  run_gnuplot(gnuplot_png_preamble(png, 1100, 550) + "set grid\n" + body, png);
  figures.push_back(png);
  return "![" + caption + "](" + name + ")\n\n";
}

std::string vertical_marker(double x, const std::string& label, const std::string& color,
                            double label_y) {
  char xs[32], ys[32];
  std::snprintf(xs, sizeof xs, "%.17g", x);
  std::snprintf(ys, sizeof ys, "%.3f", label_y);
  return std::string("set arrow from ") + xs + ", graph 0 to " + xs +
         ", graph 1 nohead dt 2 lw 2 lc rgb '" + color + "' front\n" + "set label " +
         gnuplot_quote(label) + " at " + xs + ", graph " + ys + " right offset -0.5,0 tc rgb '" +
         color + "' front\n";
}

}  // namespace detail

ReportFiles write_report(const ReportOptions& o, const fs::path& out_dir) {
  if (!o.audit && o.runs.empty() && !o.analysis) {
    throw UsageError("nothing to report: give an audit file, run files or an analysis.json");
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec)
    throw IoError("cannot create the report folder '" + out_dir.string() + "': " + ec.message());

  ReportFiles files;
  files.markdown = out_dir / "report.md";
  std::string md = "# quantfork report\n\n";
  if (o.audit) md += audit_section(*o.audit, out_dir, files.figures);

  std::optional<Analysis> analysis;
  if (o.analysis) analysis = read_analysis_json(*o.analysis);
  if (!o.runs.empty()) {
    std::vector<std::string> warnings;
    // The figures show the metric the statistics are about.
    const std::string metric = analysis ? analysis->metric : o.analyze.metric;
    // The figures show the weights the statistics are about, too.
    const WeightsSelection weights =
        analysis ? weights_from_name(analysis->weights).value_or(WeightsSelection::kRaw)
                 : o.analyze.weights;
    const auto runs = load_runs(find_run_files(o.runs), metric, true, warnings, weights);
    for (const auto& w : warnings) spdlog::warn("report: {}", w);
    md += experiment_section(runs, metric, out_dir, files.figures);
    if (!analysis) {
      analysis = analyze(runs, o.analyze);
      analysis->warnings.insert(analysis->warnings.begin(), warnings.begin(), warnings.end());
      for (const auto& w : analysis->warnings) spdlog::warn("analyze: {}", w);
      for (const auto& n : analysis->notes) spdlog::info("analyze: {}", n);
      files.analysis = out_dir / "analysis.json";
      write_text_file(*files.analysis, analysis_to_json(*analysis).dump(2) + "\n");
    }
  }
  if (analysis) md += statistics_section(*analysis, o.caveat);
  write_text_file(files.markdown, md);
  return files;
}

}  // namespace qf::experiments
