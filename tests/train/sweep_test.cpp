// `quantfork sweep` end to end on the tiny model: a small grid × seeds trained, audited
// and tabulated (the table checked against each run's own files), a relaunch that trains
// nothing, a kill at any stage resumed to the same table, and bad grids refused before
// anything runs.
#include "experiments/sweep.h"

#include <signal.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "core/hdf5_table.h"
#include "train_test_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

// The grid: weight decay 0 and 0.1 (a grid) × two peak rates given with their floors (a
// list), two seeds: 8 runs of 12 updates, checkpoints at 1, 2, 4, 8 and 12.
const char* kSweep = R"(
sweep:
  name: tiny
  out: out
  grid: {optimizer.weight_decay: [0, 0.1]}
  list:
    - {schedule.max_lr: 1.0e-2, schedule.min_lr: 1.0e-3}
    - {schedule.max_lr: 3.0e-2, schedule.min_lr: 0}
  seeds: [1, 2]
  checkpoint_every: 4
  parallel: 2
  threads_per_run: 1
model: {config: tiny_config.json}
train: {steps: 12, global_batch: 2, seq_len: 16}
schedule: {name: pythia_cosine, max_lr: 1.0e-2, min_lr: 1.0e-3, warmup_steps: 2, decay_steps: 12, step_offset: 0}
data: {dataset: tokens}
probe:
  int4_scheme: int4_asym_g32
  eval: {dataset: tokens, sequences: 4, seq_len: 16}
audit:
  phases: {min_step: 1}
)";

struct Csv {
  std::vector<std::string> header;
  std::vector<std::map<std::string, std::string>> rows;
};

// Enough of CSV for the sweep's table (quoted fields without embedded newlines).
Csv read_csv(const fs::path& path) {
  Csv csv;
  std::ifstream in(path);
  std::string line;
  const auto split = [](const std::string& l) {
    std::vector<std::string> out;
    std::string cur;
    bool quoted = false;
    for (size_t i = 0; i < l.size(); ++i) {
      const char c = l[i];
      if (quoted && c == '"' && i + 1 < l.size() && l[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = !quoted;
      } else if (c == ',' && !quoted) {
        out.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    out.push_back(cur);
    return out;
  };
  if (std::getline(in, line)) csv.header = split(line);
  while (std::getline(in, line)) {
    const auto cells = split(line);
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < cells.size() && i < csv.header.size(); ++i)
      row[csv.header[i]] = cells[i];
    csv.rows.push_back(row);
  }
  return csv;
}

class Sweep : public TinyRunTest {
 protected:
  void SetUp() override {
    TinyRunTest::SetUp();
    write_file(dir_ / "sweep.yaml", kSweep);
  }
  fs::path out() const { return dir_ / "out/tiny"; }
};

TEST_F(Sweep, TrainsAuditsAndTabulatesEveryPointAndSeed) {
  auto r = run_quantfork("sweep --config sweep.yaml", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("8 of 8 run(s) trained and audited"), std::string::npos) << r.out;
  const Csv csv = read_csv(out() / "sweep.csv");
  ASSERT_EQ(csv.rows.size(), 8u);
  for (const char* column :
       {"point", "seed", "schedule.max_lr", "schedule.min_lr", "optimizer.weight_decay", "status",
        "final_ppl_fp32", "fp32_convergence_step", "divergence_onset_step", "gap_int4_conv_pct",
        "gap_int8_end_pct", "int4_growth", "train_seconds", "fp32_drift_pct",
        "int4_slope_after_conv", "int4_slope_after_conv_lo", "int4_slope_after_conv_hi",
        "three_phases"}) {
    EXPECT_NE(std::find(csv.header.begin(), csv.header.end(), column), csv.header.end()) << column;
  }
  std::set<std::string> points;
  std::map<std::string, double> final_ppl;
  std::set<std::string> findings;
  for (const auto& row : csv.rows) {
    points.insert(row.at("point"));
    ASSERT_EQ(row.at("status"), "ok");
    const fs::path run = out() / row.at("point") / ("seed" + row.at("seed"));
    // The swept values are the run's config.
    const YAML::Node cfg = YAML::LoadFile((run / "run_config.yaml").string());
    EXPECT_DOUBLE_EQ(cfg["optimizer"]["weight_decay"].as<double>(),
                     std::stod(row.at("optimizer.weight_decay")));
    EXPECT_DOUBLE_EQ(cfg["schedule"]["max_lr"].as<double>(), std::stod(row.at("schedule.max_lr")));
    EXPECT_DOUBLE_EQ(cfg["schedule"]["min_lr"].as<double>(), std::stod(row.at("schedule.min_lr")));
    EXPECT_EQ(cfg["train"]["seed"].as<int64_t>(), std::stoll(row.at("seed")));
    // Checkpoints where sweep.checkpoint_every puts them, every one audited.
    auto audit = AuditFile::open_read_only((run / "audit.h5").string());
    std::vector<int64_t> steps;
    for (const auto& a : audit.read_audit()) steps.push_back(a.step);
    EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 4, 8, 12})) << run;
    // The table's numbers are the run's own files'.
    const auto last = audit.read_audit().back();
    EXPECT_NEAR(std::stod(row.at("final_ppl_fp32")), last.ppl_fp32, 1e-6 * last.ppl_fp32);
    EXPECT_NEAR(std::stod(row.at("gap_int4_end_pct")), last.gap_int4_pct,
                1e-6 * std::abs(last.gap_int4_pct) + 1e-9);
    EXPECT_NEAR(std::stod(row.at("gap_int8_end_pct")), last.gap_int8_pct,
                1e-6 * std::abs(last.gap_int8_pct) + 1e-9);
    const auto marks = audit.landmarks();
    ASSERT_TRUE(marks);
    EXPECT_EQ(std::stoll(row.at("fp32_convergence_step")),
              marks->fp32_convergence_step.value_or(-1));
    EXPECT_EQ(std::stoll(row.at("divergence_onset_step")),
              marks->divergence_onset_step.value_or(-1));
    double seconds = 0;
    for (const auto& t : train_rows(run)) seconds += t.step_time_s;
    EXPECT_NEAR(std::stod(row.at("train_seconds")), seconds, 1e-5 * seconds + 1e-6);
    EXPECT_EQ(std::stoll(row.at("steps")), 12);
    final_ppl[row.at("point") + "/" + row.at("seed")] = last.ppl_fp32;
    const std::string verdict = audit.file().string_attribute("phase_verdict").value_or("");
    ASSERT_FALSE(verdict.empty()) << run;
    findings.insert(verdict.substr(0, verdict.find('\n')));
  }
  EXPECT_EQ(points.size(), 4u);
  // Every point and seed trained something different.
  std::set<double> distinct;
  for (const auto& [k, v] : final_ppl) distinct.insert(v);
  EXPECT_EQ(distinct.size(), 8u);

  const std::string report = read_file(out() / "report/report.md");
  EXPECT_NE(report.find("n per point is the number of seeds"), std::string::npos);
  EXPECT_NE(report.find("sweep_gaps.png"), std::string::npos);
  EXPECT_GT(fs::file_size(out() / "report/sweep_gaps.png"), 1000u);
  // Each run's row says what its audit found (the onset, or why there is none).
  for (const auto& finding : findings) {
    EXPECT_NE(report.find(" | " + finding + " |"), std::string::npos) << finding;
  }

  // A second launch trains and audits nothing.
  const auto before = fs::last_write_time(out() / csv.rows[0].at("point") / "seed1/run.h5");
  r = run_quantfork("sweep --config sweep.yaml", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("0 run(s) to do of 8"), std::string::npos) << r.err;
  EXPECT_EQ(fs::last_write_time(out() / csv.rows[0].at("point") / "seed1/run.h5"), before);
  const Csv again = read_csv(out() / "sweep.csv");
  ASSERT_EQ(again.rows.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(again.rows[i], csv.rows[i]) << i;
}

TEST_F(Sweep, TheHdf5TableHasTheCsvRowsAndEveryTrajectoryRow) {
  auto r = run_quantfork("sweep --config sweep.yaml --set sweep.seeds=[1]", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const Csv csv = read_csv(out() / "sweep.csv");
  ASSERT_EQ(csv.rows.size(), 4u);
  const auto f = hdf5::File::open((out() / "sweep.h5").string(), hdf5::Access::kReadOnly);
  // The columns, by reading the table with the schema the format promises.
  hdf5::Schema traj = {hdf5::str("point", 12), hdf5::i8("seed"),         hdf5::i8("step"),
                       hdf5::f8("ppl_fp32"),   hdf5::f8("gap_int4_pct"), hdf5::f8("gap_int8_pct")};
  const auto rows = hdf5::Table::open(f, "trajectory", traj).read();
  EXPECT_EQ(rows.size(), 4u * 5u);  // four runs, five checkpoints each
  for (size_t i = 0; i < rows.size(); ++i) {
    const fs::path run = out() / rows.string_at(i, "point") / "seed1";
    const auto audit = AuditFile::open_read_only((run / "audit.h5").string()).read_audit();
    bool found = false;
    for (const auto& a : audit) {
      if (a.step == rows.int_at(i, "step")) {
        found = true;
        EXPECT_EQ(rows.double_at(i, "gap_int4_pct"), a.gap_int4_pct);
        EXPECT_EQ(rows.double_at(i, "ppl_fp32"), a.ppl_fp32);
      }
    }
    EXPECT_TRUE(found) << run << " step " << rows.int_at(i, "step");
  }
  EXPECT_NE(f.read_string("config").find("weight_decay"), std::string::npos);
}

// Kills the whole sweep (its process group: the sweep, its train and audit children) with
// SIGKILL at a stage, relaunches it, and checks that the table equals an uninterrupted
// sweep's in everything but the seconds.
TEST_F(Sweep, AKillAtAnyStageResumesToTheSameTable) {
  auto r = run_quantfork(
      "sweep --config sweep.yaml --set sweep.out=reference --set sweep.seeds=[1]", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Csv reference = read_csv(dir_ / "reference/tiny/sweep.csv");
  ASSERT_EQ(reference.rows.size(), 4u);
  const std::string first = reference.rows[0].at("point");
  // While the first run trains (its first checkpoint), and while it is audited.
  for (const std::string stage : {"checkpoints/step2", "audit.h5"}) {
    const fs::path out_dir = dir_ / ("killed_" + fs::path(stage).filename().string());
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      ::chdir(dir_.path().c_str());
      const std::string cmd = "exec '" + quantfork_binary().string() +
                              "' sweep --config sweep.yaml --set sweep.seeds=[1] --set "
                              "sweep.parallel=1 --set sweep.out=" +
                              out_dir.string() + " >> killed.log 2>&1";
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid, pid);
    const bool reached = wait_for(out_dir / "tiny" / first / "seed1" / stage, 120);
    ::kill(-pid, SIGKILL);
    EXPECT_EQ(wait_exit_code(pid), 128 + SIGKILL) << stage;
    ASSERT_TRUE(reached) << stage << ": " << read_file(dir_ / "killed.log");
    EXPECT_FALSE(fs::exists(out_dir / "tiny/sweep.csv")) << stage << ": killed before the table";
    r = run_quantfork(
        "sweep --config sweep.yaml --set sweep.seeds=[1] --set sweep.out=" + out_dir.string(),
        dir_.path());
    ASSERT_EQ(r.exit_code, 0) << stage << ": " << r.err;
    const Csv resumed = read_csv(out_dir / "tiny/sweep.csv");
    ASSERT_EQ(resumed.rows.size(), reference.rows.size()) << stage;
    for (size_t i = 0; i < resumed.rows.size(); ++i) {
      auto a = resumed.rows[i], b = reference.rows[i];
      a.erase("train_seconds");
      b.erase("train_seconds");
      EXPECT_EQ(a, b) << stage << " row " << i;
    }
  }
}

TEST_F(Sweep, BadGridsAreRefusedBeforeAnythingRunsNamingTheKey) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"--set 'sweep.grid={optimizer.wieght_decay: [0, 0.1]}'",
       {"optimizer.wieght_decay", "sweep point p00"}},
      {"--set 'sweep.grid={train.steps: [12, abc]}'", {"train.steps", "abc"}},
      {"--set 'sweep.grid={train.steps: 12}'", {"train.steps", "non-empty list"}},
      {"--set 'sweep.grid={train.steps: [0]}'", {"train.steps"}},
      {"--set 'sweep.grid={schedule.max_lr: [-1]}'", {"max_lr"}},
      {"--set 'sweep.grid={train.seed: [1, 2]}'", {"train.seed", "sweep.seeds"}},
      {"--set 'sweep.list=[{optimizer.weight_decay: 0.1}]'",
       {"optimizer.weight_decay", "sweep.grid"}},
      {"--set 'sweep.list=[3]'", {"sweep.list", "entry 0"}},
      {"--set probe.eval.dataset=null", {"probe.eval.dataset"}},
  };
  for (const auto& [args, words] : cases) {
    const auto r = run_quantfork("sweep --config sweep.yaml " + args, dir_.path());
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    for (const auto& w : words)
      EXPECT_NE(r.err.find(w), std::string::npos) << args << ": " << w << "\n" << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out")) << args << ": something was written";
  }
}

// The verdict on a row, from trajectories shaped like the study's: FP32 falls to a
// plateau at step 500, then the INT4 gap grows fivefold while INT8 stays near 0.2 %.
experiments::SweepRow study_shaped_row(double fp32_rise_pct = 0, double int8_after_pct = 0.2) {
  experiments::SweepRow row;
  for (int64_t step = 100; step <= 1000; step += 100) {
    const double ppl =
        step <= 500 ? 40.0 - step * 0.04 : 20.0 * (1 + fp32_rise_pct / 100 * (step - 500) / 500.0);
    const double int4 = step <= 500 ? 1.0 : 1.0 + 4.0 * (step - 500) / 500.0;
    const double int8 = step <= 500 ? 0.2 : int8_after_pct;
    row.trajectory.push_back({step, ppl, int4, int8});
  }
  row.converged_inside = true;
  row.fp32_convergence_step = 500;
  row.divergence_onset_step = 600;
  return row;
}

TEST(SweepVerdict, TheStudysThreePhasesAreRecognisedWithTheirFigures) {
  auto row = study_shaped_row();
  experiments::judge_sweep_row(row, 1.0, 10.0);
  EXPECT_TRUE(row.three_phases);
  EXPECT_DOUBLE_EQ(row.final_ppl_fp32, 20.0);
  EXPECT_DOUBLE_EQ(row.gap_int4_conv_pct, 1.0);
  EXPECT_DOUBLE_EQ(row.gap_int4_end_pct, 5.0);
  EXPECT_DOUBLE_EQ(row.int4_growth, 5.0);
  EXPECT_DOUBLE_EQ(row.gap_int8_conv_pct, 0.2);
  EXPECT_DOUBLE_EQ(row.max_gap_int8_pct, 0.2);
  EXPECT_NEAR(row.fp32_drift_pct, 0.0, 1e-12);
  // 1 % to 5 % over steps 500-1000 on a line: 8 points per 1000 steps, no residual.
  EXPECT_NEAR(row.int4_slope_after_conv, 8.0, 1e-9);
  EXPECT_NEAR(row.int4_slope_after_conv_lo, 8.0, 1e-9);
  EXPECT_NEAR(row.int4_slope_after_conv_hi, 8.0, 1e-9);
  // Flat at 1 % before: slope 0 with no residual, so "steeper after" is clear.
  EXPECT_NEAR(row.int4_slope_before_conv, 0.0, 1e-9);
  EXPECT_NEAR(row.int4_slope_before_conv_hi, 0.0, 1e-9);
  // From the audit's first fitted checkpoint only: the 100-200 steps are left out.
  row.trajectory[0].gap_int4_pct = row.trajectory[1].gap_int4_pct = 50;
  row.fit_start_step = 300;
  experiments::judge_sweep_row(row, 1.0, 10.0);
  EXPECT_NEAR(row.int4_slope_before_conv, 0.0, 1e-9);
}

TEST(SweepVerdict, TheSlopeAfterConvergenceHasAStudentTInterval) {
  // Reference: numpy least squares on these four points, t(0.975, 2) = 4.302652729911275.
  experiments::SweepRow row;
  row.trajectory = {{400, 30, 0.2, 0.1},
                    {500, 20, 1.0, 0.1},
                    {600, 20, 1.4, 0.1},
                    {700, 20, 1.2, 0.1},
                    {800, 20, 1.8, 0.1}};
  row.converged_inside = true;
  row.fp32_convergence_step = 500;
  experiments::judge_sweep_row(row, 1.0, 10.0);
  EXPECT_NEAR(row.int4_slope_after_conv, 2.2, 1e-9);
  EXPECT_NEAR(row.int4_slope_after_conv_lo, -2.271447881318753, 1e-6);
  EXPECT_NEAR(row.int4_slope_after_conv_hi, 6.671447881318754, 1e-6);
  row.trajectory.pop_back();
  row.trajectory.pop_back();  // two checkpoints from convergence on: no slope
  experiments::judge_sweep_row(row, 1.0, 10.0);
  EXPECT_TRUE(std::isnan(row.int4_slope_after_conv));
  EXPECT_TRUE(std::isnan(row.int4_slope_after_conv_lo));
}

TEST(SweepVerdict, OverfittingALargeInt8GapOrAnEarlyOnsetIsNotTheStudysPattern) {
  auto overfit = study_shaped_row(/*fp32_rise_pct=*/30);
  experiments::judge_sweep_row(overfit, 1.0, 10.0);
  EXPECT_FALSE(overfit.three_phases);
  EXPECT_NEAR(overfit.fp32_drift_pct, 30.0, 1e-9);

  auto int8 = study_shaped_row(0, /*int8_after_pct=*/1.5);
  experiments::judge_sweep_row(int8, 1.0, 10.0);
  EXPECT_FALSE(int8.three_phases);
  EXPECT_DOUBLE_EQ(int8.max_gap_int8_pct, 1.5);
  experiments::judge_sweep_row(int8, 2.0, 10.0);  // a looser threshold admits it
  EXPECT_TRUE(int8.three_phases);

  auto early = study_shaped_row();
  early.divergence_onset_step = 400;  // the gap grew before FP32 converged
  experiments::judge_sweep_row(early, 1.0, 10.0);
  EXPECT_FALSE(early.three_phases);
  EXPECT_DOUBLE_EQ(early.int4_growth, 5.0);
}

TEST(SweepVerdict, WithoutConvergenceThereIsNoGrowthAndNoVerdict) {
  auto row = study_shaped_row();
  row.converged_inside = false;  // the minimum was the last checkpoint
  experiments::judge_sweep_row(row, 1.0, 10.0);
  EXPECT_FALSE(row.three_phases);
  EXPECT_TRUE(std::isnan(row.int4_growth));

  experiments::SweepRow empty;
  experiments::judge_sweep_row(empty, 1.0, 10.0);
  EXPECT_FALSE(empty.three_phases);
  EXPECT_TRUE(std::isnan(empty.final_ppl_fp32));
  EXPECT_TRUE(std::isnan(empty.gap_int4_end_pct));
}

}  // namespace
}  // namespace qf::test
