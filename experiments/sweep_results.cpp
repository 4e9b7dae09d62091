// The sweep's table (CSV and HDF5) and its Markdown report (experiments/sweep.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/gnuplot.h"
#include "core/hdf5_table.h"
#include "core/run_file.h"
#include "experiments/fork.h"
#include "experiments/report_plot.h"
#include "experiments/statistics.h"
#include "experiments/sweep.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace qf::experiments {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

SweepRow summarize_run(const SweepPlan& plan, size_t i) {
  const RunSpec& run = plan.runs.runs[i];
  SweepRow row;
  row.point = plan.point_of[i];
  row.seed = run.seed;
  row.gap_int4_conv_pct = row.gap_int8_conv_pct = row.gap_int4_end_pct = row.gap_int8_end_pct =
      row.int4_growth = row.max_gap_int8_pct = row.final_ppl_fp32 = row.fp32_drift_pct = kNaN;
  const fs::path run_file = run.dir / "run.h5";
  if (fs::exists(run_file)) {
    try {
      const auto train = RunFile::open_read_only(run_file.string()).read_train();
      for (const auto& t : train) row.train_seconds += t.step_time_s;
      row.steps = train.empty() ? 0 : train.back().step + 1;
    } catch (const Error&) {
      // a run killed while its file was created: no steps to count
    }
  }
  const fs::path audit_file = run.dir / "audit.h5";
  const YAML::Node config = YAML::LoadFile(run.config_path.string());
  if (!run_finished(run.dir, config["train"]["steps"].as<int64_t>())) {
    row.status = "untrained";
    return row;
  }
  if (!fs::exists(audit_file)) {
    row.status = "unaudited";
    return row;
  }
  std::optional<AuditFile> opened;
  try {
    opened.emplace(AuditFile::open_read_only(audit_file.string()));
  } catch (const Error&) {
    row.status = "unaudited";  // killed while written: the next launch audits it again
    return row;
  }
  AuditFile& audit = *opened;
  const auto marks = audit.landmarks();
  if (!marks) {
    row.status = "unaudited";
    return row;
  }
  row.status = "ok";
  const std::string verdict = audit.file().string_attribute("phase_verdict").value_or("");
  row.audit_finding = verdict.substr(0, verdict.find('\n'));
  std::vector<AuditRow> rows = audit.read_audit();
  // A step's last row is its reading (a failed probe may have been retried).
  std::map<int64_t, AuditRow> by_step;
  for (const auto& r : rows) by_step[r.step] = r;
  for (const auto& [step, r] : by_step) {
    if (r.phase == "failed") continue;
    row.trajectory.push_back({step, r.ppl_fp32, r.gap_int4_pct, r.gap_int8_pct});
  }
  row.converged_inside = audit.file().int_attribute("converged_inside").value_or(0) == 1;
  row.fp32_convergence_step = marks->fp32_convergence_step.value_or(-1);
  row.divergence_onset_step = marks->divergence_onset_step.value_or(-1);
  row.pre_divergence_step = marks->pre_divergence_step.value_or(-1);
  const auto segments = audit.read_phases();
  row.fit_start_step = segments.empty() ? 0 : segments.front().start_step;
  judge_sweep_row(row, plan.int8_small_pct, plan.fp32_flat_pct);
  return row;
}

std::string num(double v, int precision = 4) {
  if (std::isnan(v)) return "";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

std::string step_text(int64_t s) {
  return s < 0 ? "none" : std::to_string(s);
}

const std::vector<std::string> kNumericColumns = {"steps",
                                                  "train_seconds",
                                                  "final_ppl_fp32",
                                                  "converged_inside",
                                                  "fp32_convergence_step",
                                                  "divergence_onset_step",
                                                  "pre_divergence_step",
                                                  "gap_int4_conv_pct",
                                                  "gap_int8_conv_pct",
                                                  "gap_int4_end_pct",
                                                  "gap_int8_end_pct",
                                                  "int4_growth",
                                                  "max_gap_int8_pct",
                                                  "fp32_drift_pct",
                                                  "int4_slope_after_conv",
                                                  "int4_slope_after_conv_lo",
                                                  "int4_slope_after_conv_hi",
                                                  "fit_start_step",
                                                  "int4_slope_before_conv",
                                                  "int4_slope_before_conv_lo",
                                                  "int4_slope_before_conv_hi",
                                                  "three_phases"};

std::string csv_table(const SweepPlan& plan, const std::vector<SweepRow>& rows) {
  std::ostringstream out;
  out << "point,seed";
  for (const auto& k : plan.keys) out << "," << csv_field(k);
  out << ",status";
  for (const auto& c : kNumericColumns) out << "," << c;
  out << "\n";
  for (const auto& r : rows) {
    const SweepPoint& p = plan.points[r.point];
    out << p.id << "," << r.seed;
    for (const auto& k : plan.keys) {
      const auto at = std::find(p.keys.begin(), p.keys.end(), k);
      out << "," << (at == p.keys.end() ? "" : csv_field(p.values[at - p.keys.begin()]));
    }
    out << "," << r.status << "," << r.steps << "," << num(r.train_seconds, 6) << ","
        << num(r.final_ppl_fp32, 8) << "," << (r.converged_inside ? 1 : 0) << ","
        << r.fp32_convergence_step << "," << r.divergence_onset_step << "," << r.pre_divergence_step
        << "," << num(r.gap_int4_conv_pct, 8) << "," << num(r.gap_int8_conv_pct, 8) << ","
        << num(r.gap_int4_end_pct, 8) << "," << num(r.gap_int8_end_pct, 8) << ","
        << num(r.int4_growth, 8) << "," << num(r.max_gap_int8_pct, 8) << ","
        << num(r.fp32_drift_pct, 8) << "," << num(r.int4_slope_after_conv, 8) << ","
        << num(r.int4_slope_after_conv_lo, 8) << "," << num(r.int4_slope_after_conv_hi, 8) << ","
        << r.fit_start_step << "," << num(r.int4_slope_before_conv, 8) << ","
        << num(r.int4_slope_before_conv_lo, 8) << "," << num(r.int4_slope_before_conv_hi, 8) << ","
        << (r.three_phases ? 1 : 0) << "\n";
  }
  return out.str();
}

size_t longest(const std::vector<std::string>& texts, size_t at_least) {
  size_t n = at_least;
  for (const auto& t : texts) n = std::max(n, t.size());
  return n;
}

// sweep.h5: root attribute schema = quantfork.sweep/1, /config (the sweep's resolved
// config), /runs (the table: the swept values as strings) and /trajectory (every run's
// audit rows). Written beside and renamed into place, so a reader never sees half a file.
void write_h5(const SweepPlan& plan, const std::vector<SweepRow>& rows,
              const std::string& config_yaml, const fs::path& path) {
  const fs::path tmp = path.string() + ".tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  {
    hdf5::File f = hdf5::File::create(tmp.string());
    f.set_string_attribute("schema", "quantfork.sweep/1");
    f.set_string_attribute("name", plan.name);
    f.set_int_attribute("seeds", static_cast<int64_t>(plan.seeds.size()));
    f.set_double_attribute("int8_small_pct", plan.int8_small_pct);
    f.set_double_attribute("fp32_flat_pct", plan.fp32_flat_pct);
    f.write_string("config", config_yaml);
    std::vector<std::string> ids, all_values, keys_text;
    for (const auto& p : plan.points) {
      ids.push_back(p.id);
      for (const auto& v : p.values) all_values.push_back(v);
    }
    hdf5::Schema schema = {hdf5::str("point", longest(ids, 1)), hdf5::i8("seed")};
    for (const auto& k : plan.keys) schema.push_back(hdf5::str(k, longest(all_values, 1)));
    schema.push_back(hdf5::str("status", 16));
    for (const auto& c : kNumericColumns) {
      const bool integer = c == "steps" || c == "converged_inside" || c == "three_phases" ||
                           c.find("_step") != std::string::npos;
      schema.push_back(integer ? hdf5::i8(c) : hdf5::f8(c));
    }
    hdf5::Table table = hdf5::Table::create(f, "runs", schema);
    std::vector<hdf5::RowBuilder> built;
    for (const auto& r : rows) {
      const SweepPoint& p = plan.points[r.point];
      auto b = table.row();
      b.set("point", p.id).set("seed", r.seed);
      for (const auto& k : plan.keys) {
        const auto at = std::find(p.keys.begin(), p.keys.end(), k);
        b.set(k, at == p.keys.end() ? std::string() : p.values[at - p.keys.begin()]);
      }
      b.set("status", r.status)
          .set("steps", r.steps)
          .set("train_seconds", r.train_seconds)
          .set("final_ppl_fp32", r.final_ppl_fp32)
          .set("converged_inside", static_cast<int64_t>(r.converged_inside))
          .set("fp32_convergence_step", r.fp32_convergence_step)
          .set("divergence_onset_step", r.divergence_onset_step)
          .set("pre_divergence_step", r.pre_divergence_step)
          .set("gap_int4_conv_pct", r.gap_int4_conv_pct)
          .set("gap_int8_conv_pct", r.gap_int8_conv_pct)
          .set("gap_int4_end_pct", r.gap_int4_end_pct)
          .set("gap_int8_end_pct", r.gap_int8_end_pct)
          .set("int4_growth", r.int4_growth)
          .set("max_gap_int8_pct", r.max_gap_int8_pct)
          .set("fp32_drift_pct", r.fp32_drift_pct)
          .set("int4_slope_after_conv", r.int4_slope_after_conv)
          .set("int4_slope_after_conv_lo", r.int4_slope_after_conv_lo)
          .set("int4_slope_after_conv_hi", r.int4_slope_after_conv_hi)
          .set("fit_start_step", r.fit_start_step)
          .set("int4_slope_before_conv", r.int4_slope_before_conv)
          .set("int4_slope_before_conv_lo", r.int4_slope_before_conv_lo)
          .set("int4_slope_before_conv_hi", r.int4_slope_before_conv_hi)
          .set("three_phases", static_cast<int64_t>(r.three_phases));
      built.push_back(std::move(b));
    }
    if (!built.empty()) table.append(built);
    hdf5::Table traj = hdf5::Table::create(
        f, "trajectory",
        {hdf5::str("point", longest(ids, 1)), hdf5::i8("seed"), hdf5::i8("step"),
         hdf5::f8("ppl_fp32"), hdf5::f8("gap_int4_pct"), hdf5::f8("gap_int8_pct")});
    std::vector<hdf5::RowBuilder> points;
    for (const auto& r : rows) {
      for (const auto& t : r.trajectory) {
        auto b = traj.row();
        b.set("point", plan.points[r.point].id)
            .set("seed", r.seed)
            .set("step", t.step)
            .set("ppl_fp32", t.ppl_fp32)
            .set("gap_int4_pct", t.gap_int4_pct)
            .set("gap_int8_pct", t.gap_int8_pct);
        points.push_back(std::move(b));
      }
    }
    if (!points.empty()) traj.append(points);
    f.close();
  }
  fs::rename(tmp, path);
  sync_directory(path.parent_path());
}

// Small multiples: one panel per point, the INT4 gap (solid) and INT8 gap (dashed) of
// every seed against step (linear axes, step in thousands), the FP32 convergence step of
// the first seed marked.
std::string figure(const SweepPlan& plan, const std::vector<SweepRow>& rows,
                   const fs::path& out_dir, std::vector<fs::path>& figures) {
  std::map<size_t, std::vector<const SweepRow*>> by_point;
  for (const auto& r : rows) {
    if (!r.trajectory.empty()) by_point[r.point].push_back(&r);
  }
  if (by_point.empty()) return "";
  ScratchDir scratch("quantfork-sweep");
  const size_t n = by_point.size();
  const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int rows_n = static_cast<int>((n + cols - 1) / cols);
  std::ostringstream s;
  s << "set multiplot layout " << rows_n << "," << cols << "\n"
    << "set key off\nset tics font ',8'\nset title font ',9'\n"
    << "set xlabel 'step (thousands)' font ',8'\nset ylabel 'gap %' font ',8'\n";
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  for (const auto& [point, runs] : by_point) {
    std::string title = plan.points[point].id + ": " + plan.points[point].label();
    if (title.size() > 48) title = title.substr(0, 45) + "...";
    s << "unset arrow\nset title " << gnuplot_quote(title) << "\n";
    if (runs.front()->converged_inside) {
      const double at = static_cast<double>(runs.front()->fp32_convergence_step) / 1000.0;
      s << "set arrow from " << at << ", graph 0 to " << at
        << ", graph 1 nohead dt 2 lc rgb 'gray'\n";
    }
    s << "plot ";
    for (size_t k = 0; k < runs.size(); ++k) {
      const fs::path dat = scratch / (plan.points[point].id + "_" + std::to_string(k) + ".dat");
      std::vector<std::vector<double>> data;
      for (const auto& t : runs[k]->trajectory) {
        // a linear axis: gaps of a small model sit near 0 and can be negative
        data.push_back({static_cast<double>(t.step) / 1000.0, t.gap_int4_pct, t.gap_int8_pct});
      }
      detail::write_data(dat, data);
      const std::string c = colors[k % 6];
      s << (k ? ", " : "") << gnuplot_quote(dat.string()) << " using 1:2 with lines lw 1.5 lc rgb '"
        << c << "', " << gnuplot_quote(dat.string()) << " using 1:3 with lines dt 2 lc rgb '" << c
        << "'";
    }
    s << "\n";
  }
  s << "unset multiplot\n";
  const fs::path png = out_dir / "sweep_gaps.png";
  const int width = std::max(900, 360 * cols), height = std::max(500, 280 * rows_n);
  run_gnuplot(gnuplot_png_preamble(png, width, height) + "set grid\n" + s.str(), png);
  figures.push_back(png);
  return "![INT4 (solid) and INT8 (dashed) gap against step, one panel per point, one colour "
         "per seed; the dotted line is the first seed's FP32 convergence](sweep_gaps.png)\n\n";
}

// `text` inside one Markdown table cell.
std::string markdown_cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|')
      out += "\\|";
    else
      out += c == '\n' ? ' ' : c;
  }
  return out;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  size_t n = 0;
  for (double x : v) {
    if (!std::isnan(x)) s += x, ++n;
  }
  return n ? s / n : kNaN;
}

// The least-squares slope of the INT4 gap against step over the checkpoints in
// [from, to], per 1000 steps, and its 95 % interval (Student t, n - 2 degrees of freedom);
// NaN below 3 checkpoints.
void gap_slope(const std::vector<SweepRow::Point>& trajectory, int64_t from, int64_t to,
               double& slope, double& lo, double& hi) {
  slope = lo = hi = kNaN;
  std::vector<double> x, y;
  for (const auto& p : trajectory) {
    if (p.step < from || p.step > to) continue;
    x.push_back(static_cast<double>(p.step) / 1000.0);
    y.push_back(p.gap_int4_pct);
  }
  if (x.size() < 3) return;
  const double n = static_cast<double>(x.size());
  const double mx = mean_of(x), my = mean_of(y);
  double sxx = 0, sxy = 0;
  for (size_t k = 0; k < x.size(); ++k) {
    sxx += (x[k] - mx) * (x[k] - mx);
    sxy += (x[k] - mx) * (y[k] - my);
  }
  slope = sxy / sxx;
  double sse = 0;
  for (size_t k = 0; k < x.size(); ++k) {
    const double e = y[k] - my - slope * (x[k] - mx);
    sse += e * e;
  }
  const double half = student_t_quantile(0.975, n - 2) * std::sqrt(sse / (n - 2) / sxx);
  lo = slope - half;
  hi = slope + half;
}

std::string markdown(const SweepPlan& plan, const std::vector<SweepRow>& rows,
                     const std::string& figure_md) {
  std::ostringstream md;
  md << "# Sweep " << plan.name << "\n\n"
     << plan.points.size() << " point(s) × " << plan.seeds.size()
     << " seed(s). Every run was trained from scratch and its checkpoints audited (RTN INT4 "
        "and INT8 against FP32 perplexity on the validation set). n per point is the number of "
        "seeds: runs of one point differ only in initialization and data order, so the spread "
        "over seeds is the noise a difference between points must exceed.\n\n"
     << "A run shows the study's **three phases** when the audit finds FP32 perplexity "
        "converging inside the run, an INT4 divergence onset at or after that convergence, "
        "the INT8 gap below "
     << num(plan.int8_small_pct) << " % from convergence on, and FP32 perplexity at the end within "
     << num(plan.fp32_flat_pct)
     << " % of its value at convergence (in the Pythia-160m study FP32 barely moves while the "
        "INT4 gap grows; a model that overfits its corpus, FP32 perplexity rising, is "
        "another phenomenon).\n\n";
  md << "## Points\n\n| point | setting | seeds ok | FP32 ppl (end) | converged | onset after "
        "convergence | INT4 gap at conv. % | INT4 gap at end % | growth | INT4 slope before conv. "
        "(pp/1k steps) | INT4 slope after conv. | rising after | steeper after | max INT8 gap % "
        "| FP32 drift % | three phases |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        "---|---|---|\n";
  for (size_t p = 0; p < plan.points.size(); ++p) {
    std::vector<double> ppl, conv, end, growth, before, slope, int8, drift;
    int ok = 0, converged = 0, onset = 0, rising = 0, steeper = 0, three = 0;
    for (const auto& r : rows) {
      if (r.point != p || r.status != "ok") continue;
      ++ok;
      ppl.push_back(r.final_ppl_fp32);
      conv.push_back(r.gap_int4_conv_pct);
      end.push_back(r.gap_int4_end_pct);
      growth.push_back(r.int4_growth);
      before.push_back(r.int4_slope_before_conv);
      slope.push_back(r.int4_slope_after_conv);
      rising += r.int4_slope_after_conv_lo > 0;
      steeper += r.int4_slope_after_conv_lo > r.int4_slope_before_conv_hi;
      int8.push_back(r.max_gap_int8_pct);
      drift.push_back(r.fp32_drift_pct);
      converged += r.converged_inside;
      onset += r.divergence_onset_step >= 0 && r.divergence_onset_step >= r.fp32_convergence_step;
      three += r.three_phases;
    }
    md << "| " << plan.points[p].id << " | " << plan.points[p].label() << " | " << ok << "/"
       << plan.seeds.size() << " | " << num(mean_of(ppl)) << " | " << converged << "/" << ok
       << " | " << onset << "/" << ok << " | " << num(mean_of(conv), 3) << " | "
       << num(mean_of(end), 3) << " | " << num(mean_of(growth), 3) << " | "
       << num(mean_of(before), 3) << " | " << num(mean_of(slope), 3) << " | " << rising << "/" << ok
       << " | " << steeper << "/" << ok << " | " << num(mean_of(int8), 3) << " | "
       << num(mean_of(drift), 3) << " | " << three << "/" << ok << " |\n";
  }
  md << "\nValues are means over the point's audited seeds; the per-run table is sweep.csv "
        "(and /runs in sweep.h5). Growth is the INT4 gap at the last checkpoint divided by the "
        "gap at FP32 convergence, only for runs that converged inside. The slope is the "
        "least-squares slope of the INT4 gap (in percentage points, not its log) from the "
        "convergence step to the end, and before convergence from the first checkpoint the audit "
        "fitted (audit.phases.min_step) to the convergence step; a run is rising after "
        "convergence when the later slope's 95 % confidence interval lies above 0, and "
        "steeper after when it lies above the earlier slope's interval. These are model-free "
        "checks beside the audit's onset, which is read off a segmented fit of the log "
        "gap.\n\n";
  md << "## Gap trajectories\n\n" << figure_md;
  md << "## Runs\n\n| point | seed | status | steps | train s | convergence | onset | "
        "pre-divergence | the audit's first finding |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    md << "| " << plan.points[r.point].id << " | " << r.seed << " | " << r.status << " | "
       << r.steps << " | " << num(r.train_seconds, 4) << " | "
       << (r.converged_inside ? step_text(r.fp32_convergence_step)
                              : "not inside (" + step_text(r.fp32_convergence_step) + ")")
       << " | " << step_text(r.divergence_onset_step) << " | " << step_text(r.pre_divergence_step)
       << " | " << markdown_cell(r.audit_finding) << " |\n";
  }
  md << "\n## What this does not show\n\nThe table is read off each run's own audit: a "
        "divergence onset is a statistical finding of the segmented fit (docs/method.md) on "
        "one trajectory, and three phases in some seeds of a point but not others is not a "
        "reproducible regime. Points were not compared by a test; a difference smaller than "
        "the spread over seeds means nothing.\n";
  return md.str();
}

}  // namespace

void judge_sweep_row(SweepRow& row, double int8_small_pct, double fp32_flat_pct) {
  row.final_ppl_fp32 = row.gap_int4_end_pct = row.gap_int8_end_pct = row.gap_int4_conv_pct =
      row.gap_int8_conv_pct = row.int4_growth = row.max_gap_int8_pct = row.fp32_drift_pct = kNaN;
  row.three_phases = false;
  if (row.trajectory.empty()) return;
  const auto& last = row.trajectory.back();
  row.final_ppl_fp32 = last.ppl_fp32;
  row.gap_int4_end_pct = last.gap_int4_pct;
  row.gap_int8_end_pct = last.gap_int8_pct;
  if (row.fp32_convergence_step >= 0) {
    for (const auto& p : row.trajectory) {
      if (p.step == row.fp32_convergence_step) {
        row.gap_int4_conv_pct = p.gap_int4_pct;
        row.gap_int8_conv_pct = p.gap_int8_pct;
        row.fp32_drift_pct = (row.final_ppl_fp32 / p.ppl_fp32 - 1) * 100;
      }
      if (p.step >= row.fp32_convergence_step) {
        row.max_gap_int8_pct = std::isnan(row.max_gap_int8_pct)
                                   ? p.gap_int8_pct
                                   : std::max(row.max_gap_int8_pct, p.gap_int8_pct);
      }
    }
  }
  if (row.converged_inside && row.gap_int4_conv_pct > 0) {
    row.int4_growth = row.gap_int4_end_pct / row.gap_int4_conv_pct;
  }
  if (row.fp32_convergence_step >= 0) {
    gap_slope(row.trajectory, row.fp32_convergence_step, row.trajectory.back().step,
              row.int4_slope_after_conv, row.int4_slope_after_conv_lo,
              row.int4_slope_after_conv_hi);
    gap_slope(row.trajectory, row.fit_start_step, row.fp32_convergence_step,
              row.int4_slope_before_conv, row.int4_slope_before_conv_lo,
              row.int4_slope_before_conv_hi);
  } else {
    row.int4_slope_after_conv = row.int4_slope_after_conv_lo = row.int4_slope_after_conv_hi =
        row.int4_slope_before_conv = row.int4_slope_before_conv_lo = row.int4_slope_before_conv_hi =
            kNaN;
  }
  row.three_phases = row.converged_inside && row.divergence_onset_step >= 0 &&
                     row.divergence_onset_step >= row.fp32_convergence_step &&
                     row.max_gap_int8_pct < int8_small_pct &&
                     std::abs(row.fp32_drift_pct) < fp32_flat_pct;
}

std::vector<SweepRow> summarize_sweep(const SweepPlan& plan) {
  std::vector<SweepRow> rows;
  for (size_t i = 0; i < plan.runs.runs.size(); ++i) rows.push_back(summarize_run(plan, i));
  return rows;
}

fs::path write_sweep_results(const SweepPlan& plan, const std::vector<SweepRow>& rows,
                             const std::string& config_yaml) {
  write_text_atomically(plan.out / "sweep.csv", csv_table(plan, rows));
  write_h5(plan, rows, config_yaml, plan.out / "sweep.h5");
  const fs::path report_dir = plan.out / "report";
  fs::create_directories(report_dir);
  std::vector<fs::path> figures;
  const std::string fig = figure(plan, rows, report_dir, figures);
  const fs::path md = report_dir / "report.md";
  write_text_atomically(md, markdown(plan, rows, fig));
  return md;
}

}  // namespace qf::experiments
