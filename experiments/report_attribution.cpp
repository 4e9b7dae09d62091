// The report's attribution section (report_plot.h): which units of the network carry the
// INT4 gap and its growth along an audited trajectory.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/gnuplot.h"
#include "experiments/analysis_io.h"
#include "experiments/report_plot.h"

namespace fs = std::filesystem;

namespace qf::experiments::detail {

namespace {

// "gpt_neox.layers.3.mlp.dense_4h_to_h.weight" -> "L3 mlp.dense_4h_to_h"; a layer unit
// "gpt_neox.layers.3" -> "L3".
std::string short_unit(const std::string& unit) {
  const std::string prefix = "gpt_neox.layers.";
  if (unit.rfind(prefix, 0) != 0) return unit;
  std::string rest = unit.substr(prefix.size());
  const auto dot = rest.find('.');
  std::string out = "L" + rest.substr(0, dot);
  if (dot == std::string::npos) return out;
  rest = rest.substr(dot + 1);
  if (rest.size() > 7 && rest.compare(rest.size() - 7, 7, ".weight") == 0) {
    rest.resize(rest.size() - 7);
  }
  return out + " " + rest;
}

// unit -> step -> gap (the last row of a step wins, as for /audit rows)
using Grid = std::map<std::string, std::map<std::int64_t, double>>;

std::string heat_map(const Grid& grid, const std::vector<std::string>& units,
                     const std::vector<std::int64_t>& steps, const fs::path& out_dir,
                     std::vector<fs::path>& figures) {
  ScratchDir scratch("quantfork-report");
  std::vector<std::vector<double>> data;
  for (std::size_t u = 0; u < units.size(); ++u) {
    for (std::size_t s = 0; s < steps.size(); ++s) {
      const auto& row = grid.at(units[u]);
      const auto it = row.find(steps[s]);
      data.push_back({double(s), double(u), it == row.end() ? NAN : it->second});
    }
  }
  write_data(scratch / "attribution.dat", data);
  std::string xtics, ytics;
  const std::size_t every = std::max<std::size_t>(1, steps.size() / 12);
  for (std::size_t s = 0; s < steps.size(); s += every) {
    xtics += (xtics.empty() ? "" : ", ") + gnuplot_quote(std::to_string(steps[s])) + " " +
             std::to_string(s);
  }
  for (std::size_t u = 0; u < units.size(); ++u) {
    ytics +=
        (ytics.empty() ? "" : ", ") + gnuplot_quote(short_unit(units[u])) + " " + std::to_string(u);
  }
  const std::string s =
      "set title 'INT4 gap (%) with one unit quantized at a time, the rest float32'\n"
      "set xlabel 'checkpoint step'\nset xtics (" +
      xtics +
      ") rotate by 45 right\n"
      "set ytics (" +
      ytics + ")\nset yrange [-0.5:" + std::to_string(units.size() - 0.5) +
      "]\nset xrange [-0.5:" + std::to_string(steps.size() - 0.5) +
      "]\nset palette defined (0 '#ffffff', 1 '#fdae61', 2 '#d7191c')\nset cblabel 'gap %'\n"
      "plot " +
      gnuplot_quote((scratch / "attribution.dat").string()) + " using 1:2:3 with image notitle\n";
  return draw(s, out_dir, "audit_attribution.png",
              "INT4 gap of each unit quantized alone, against checkpoint step", figures);
}

}  // namespace

std::string attribution_section(const std::vector<AttributionRow>& attribution,
                                const std::vector<AuditRow>& rows,
                                const std::optional<AuditLandmarks>& marks, const fs::path& out_dir,
                                std::vector<fs::path>& figures) {
  if (attribution.empty()) return "";
  Grid grid, grid_gptq;
  std::vector<std::string> units;  // in the file's order
  std::set<std::int64_t> step_set;
  std::map<std::int64_t, double> sums;
  for (const auto& a : attribution) {
    if (a.unit == "sum") {
      sums[a.step] = a.gap_int4_pct;
      continue;
    }
    if (!grid.count(a.unit)) units.push_back(a.unit);
    grid[a.unit][a.step] = a.gap_int4_pct;
    grid_gptq[a.unit][a.step] = a.gap_int4_gptq_pct;
    step_set.insert(a.step);
  }
  const std::vector<std::int64_t> steps(step_set.begin(), step_set.end());
  std::string md = "### Where the INT4 gap sits\n\n";
  md += std::to_string(units.size()) + " unit(s) quantized one at a time (the rest float32) at " +
        std::to_string(steps.size()) + " checkpoint(s).\n\n";
  md += heat_map(grid, units, steps, out_dir, figures);

  // The reference step: the last before the divergence, else FP32 convergence, else the
  // first attributed step.
  std::int64_t ref = steps.front();
  std::string ref_name = "the first attributed checkpoint";
  const auto pick = [&](const std::optional<std::int64_t>& s, const char* name) {
    if (s && step_set.count(*s) && *s != steps.back()) {
      ref = *s;
      ref_name = name;
      return true;
    }
    return false;
  };
  if (marks) {
    pick(marks->pre_divergence_step, "the last checkpoint before the divergence") ||
        pick(marks->fp32_convergence_step, "FP32 convergence");
  }
  const std::int64_t last = steps.back();
  struct Growth {
    std::string unit;
    double from, to;
  };
  std::vector<Growth> growth;
  double total = 0;
  for (const auto& u : units) {
    const auto& row = grid.at(u);
    if (!row.count(ref) || !row.count(last)) continue;
    growth.push_back({u, row.at(ref), row.at(last)});
    total += row.at(last) - row.at(ref);
  }
  std::sort(growth.begin(), growth.end(),
            [](const Growth& a, const Growth& b) { return a.to - a.from > b.to - b.from; });
  if (!growth.empty() && ref != last) {
    md += "Growth of each unit's gap from step " + std::to_string(ref) + " (" + ref_name +
          ") to step " + std::to_string(last) +
          ", largest first (share: of the units' summed growth):\n\n"
          "| unit | gap % at " +
          std::to_string(ref) + " | gap % at " + std::to_string(last) +
          " | growth (points) | share |\n|---|--:|--:|--:|--:|\n";
    for (std::size_t i = 0; i < growth.size() && i < 8; ++i) {
      const Growth& g = growth[i];
      md += "| " + g.unit + " | " + format_stat(g.from, 3) + " | " + format_stat(g.to, 3) + " | " +
            format_stat(g.to - g.from, 3) + " | " +
            (total != 0 ? format_stat(100 * (g.to - g.from) / total, 3) + "%" : "n/a") + " |\n";
    }
    md += "\n";
  }
  const auto joint =
      std::find_if(rows.begin(), rows.end(), [&](const AuditRow& r) { return r.step == last; });
  if (sums.count(last) && joint != rows.end()) {
    const double sum = sums.at(last), all = joint->gap_int4_pct;
    md += "At step " + std::to_string(last) + " the units' single gaps sum to " +
          format_stat(sum, 3) + "% against a joint gap of " + format_stat(all, 3) + "%: " +
          (std::fabs(sum - all) <= 0.2 * std::fabs(all)
               ? "the damage is close to additive, so the single gaps apportion it."
           : sum < all ? "quantizing the units together costs more than the sum of their "
                         "single costs: the errors compound through the network."
                       : "together the units cost less than the sum of their single "
                         "costs: their errors partly cancel.") +
          "\n\n";
  }
  return md;
}

}  // namespace qf::experiments::detail
