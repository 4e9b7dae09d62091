// The divergence monitor acting during training (monitor.action: log, stop, switch) and
// the weight average probed beside the raw weights (train.ema), through the real
// `quantfork train`, with kill -9 and resume. The monitor's settings are loose enough to
// fire on the tiny model's noisy gap; where it fires is not hard-coded but taken from
// replaying the monitor over the run's own /probe rows (quant_probe/divergence_monitor.h),
// which the run must have acted on exactly.
#include <ATen/ATen.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "quant_probe/divergence_monitor.h"
#include "train_test_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

// A probe after every update; the monitor decides from 3 probes on and fires whenever the
// fitted gap rises at all (FP32 always counts as stalled).
const char* kProbe =
    "probe: {enabled: true, every: 1, at_phase_boundaries: false, int4_scheme: int4_asym_g32,\n"
    "        eval: {dataset: tokens, sequences: 16, seq_len: 16}}\n";
std::string monitor(const std::string& action, const std::string& extra = "") {
  return "monitor: {action: " + action +
         ", window: 3, min_probes: 3, slope_threshold: 1.0e-6, fp32_tolerance_pct: 1.0e6, "
         "gap_floor_pct: 1.0e-6" +
         extra + "}\n";
}
const char* kSwitchTo = ", switch_to: {name: constant, lr: 7.5e-4}";

quant::MonitorOptions options() {
  quant::MonitorOptions o;
  o.window = 3;
  o.min_probes = 3;
  o.slope_threshold = 1e-6;
  o.fp32_tolerance_pct = 1e6;
  o.gap_floor_pct = 1e-6;
  return o;
}

RunFile open(const fs::path& run) {
  return RunFile::open_read_only((run / "run.h5").string());
}

// Where the monitor fires over the run's raw /probe rows, replayed offline.
std::vector<int64_t> replayed_firings(const fs::path& run) {
  std::vector<quant::MonitorPoint> points;
  for (const auto& p : open(run).read_probe()) {
    if (p.weights == kRawWeights) points.push_back({p.step, p.ppl_fp32, p.gap_int4_pct});
  }
  std::vector<int64_t> out;
  for (const auto& r : quant::replay_monitor(points, options())) {
    if (r.fires) out.push_back(r.step);
  }
  return out;
}

std::vector<int64_t> event_steps(const fs::path& run, const std::string& kind) {
  std::vector<int64_t> out;
  for (const auto& e : open(run).read_events()) {
    if (e.kind == kind) out.push_back(e.step);
  }
  return out;
}

class Monitor : public TinyRunTest {
 protected:
  CommandResult train(const std::string& config, const std::string& args = "") {
    return run_quantfork("train --config " + config + " " + args, dir_.path());
  }
  // A log-only run: where the monitor fires on this trajectory.
  std::vector<int64_t> firings() {
    write_run_config(dir_.path(), std::string(kProbe) + monitor("log"), "log.yaml");
    const auto r = train("log.yaml", "--set run.dir=log");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (event_steps(dir_ / "log", "monitor_fired").empty()) std::cerr << r.err;
    return event_steps(dir_ / "log", "monitor_fired");
  }
};

TEST_F(Monitor, LogRecordsAnEventWhereverTheReplayFiresAndTrainsOn) {
  const auto fired = firings();
  ASSERT_FALSE(fired.empty()) << "the loose monitor never fired: the test would prove nothing";
  EXPECT_EQ(fired, replayed_firings(dir_ / "log"));
  EXPECT_EQ(train_rows(dir_ / "log").back().step, 11);  // the run went on to the end
  for (const auto& e : open(dir_ / "log").read_events()) {
    EXPECT_EQ(e.metric, "gap_int4_pct");
    EXPECT_TRUE(std::isfinite(e.value) && std::isfinite(e.gap_rise)) << e.step;
    EXPECT_GE(e.gap_rise, 1e-6) << e.step;
    EXPECT_EQ(e.detail, "action: log");
  }
  // A log-only monitor leaves the run as it was without one, update for update.
  write_run_config(dir_.path(), kProbe, "plain.yaml");
  ASSERT_EQ(train("plain.yaml", "--set run.dir=plain").exit_code, 0);
  const auto a = train_rows(dir_ / "log"), b = train_rows(dir_ / "plain");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].loss, b[i].loss) << i;
}

TEST_F(Monitor, StopEndsTheRunForGoodAtTheFirstFiringWithACheckpoint) {
  const auto fired = firings();
  ASSERT_FALSE(fired.empty());
  ASSERT_LT(fired.front(), 11) << "fires only at the last update: nothing to stop";
  write_run_config(dir_.path(), std::string(kProbe) + monitor("stop"), "stop.yaml");
  const auto r = train("stop.yaml", "--set run.dir=stop");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ended after " + std::to_string(fired.front() + 1) + " of 12 updates"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("divergence monitor fired"), std::string::npos) << r.out;
  EXPECT_EQ(train_rows(dir_ / "stop").back().step, fired.front());
  EXPECT_EQ(event_steps(dir_ / "stop", "monitor_fired"), std::vector<int64_t>{fired.front()});
  EXPECT_EQ(event_steps(dir_ / "stop", "stop"), std::vector<int64_t>{fired.front()});
  // The checkpoint of the stop records why; the losses up to it are the log run's.
  const fs::path ckpt = dir_ / "stop/checkpoints" / ("step" + std::to_string(fired.front() + 1));
  const auto state = nlohmann::json::parse(read_file(ckpt / "trainer_state.json"));
  EXPECT_NE(state.at("stop_reason").get<std::string>().find("gap_int4_pct"), std::string::npos);
  const auto stopped = train_rows(dir_ / "stop"), logged = train_rows(dir_ / "log");
  for (size_t i = 0; i < stopped.size(); ++i) EXPECT_EQ(stopped[i].loss, logged[i].loss) << i;
  // Started again, it does nothing: the run is finished.
  const auto again = train("stop.yaml", "--set run.dir=stop");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("ended after"), std::string::npos) << again.out;
  EXPECT_EQ(train_rows(dir_ / "stop").size(), stopped.size());
  // `quantfork status` counts it done and says why it ended early.
  const auto status = run_quantfork("status stop", dir_.path());
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("done"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("divergence monitor fired"), std::string::npos) << status.out;
}

TEST_F(Monitor, SwitchFollowsTheNewScheduleFromTheNextUpdateAndSurvivesKillNine) {
  const auto fired = firings();
  ASSERT_FALSE(fired.empty());
  ASSERT_LT(fired.front(), 9) << "fires too late for a kill after the switch";
  const std::string extra = std::string(kProbe) + monitor("switch", kSwitchTo);
  write_run_config(dir_.path(), extra, "switch.yaml");
  ASSERT_EQ(train("switch.yaml", "--set run.dir=straight").exit_code, 0);
  const auto straight = train_rows(dir_ / "straight");
  ASSERT_EQ(straight.size(), 12u);
  const int64_t s = fired.front();
  for (const auto& row : straight) {
    if (row.step > s) {
      EXPECT_EQ(row.lr, 7.5e-4) << row.step;
    } else {
      EXPECT_NE(row.lr, 7.5e-4) << row.step;
    }
  }
  EXPECT_EQ(event_steps(dir_ / "straight", "schedule_switch"), std::vector<int64_t>{s});
  // Later firings are logged only: a run switches once.
  for (const auto& e : open(dir_ / "straight").read_events()) {
    if (e.kind == "monitor_fired" && e.step > s) {
      EXPECT_NE(e.detail.find("switched already"), std::string::npos) << e.detail;
    }
  }
  // Killed after a checkpoint that holds the switch, then resumed: the same run.
  write_run_config(dir_.path(), extra + "checkpoint: {every: 2, keep_last: 10}\n", "killed.yaml");
  const int64_t after = ((s + 1) / 2 + 1) * 2;  // the first checkpoint after the switch
  const pid_t pid = spawn_quantfork("train --config killed.yaml --set run.dir=killed", dir_.path());
  ASSERT_TRUE(wait_for(dir_ / "killed/checkpoints" / ("step" + std::to_string(after)), 120));
  ::kill(pid, SIGKILL);
  ASSERT_EQ(wait_exit_code(pid), 128 + SIGKILL) << "the run ended before the kill";
  const auto r = train("killed.yaml", "--set run.dir=killed");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming from"), std::string::npos) << r.err;
  const auto resumed = train_rows(dir_ / "killed");
  ASSERT_EQ(resumed.size(), straight.size());
  for (size_t i = 0; i < straight.size(); ++i) {
    EXPECT_EQ(resumed[i].loss, straight[i].loss) << i;
    EXPECT_EQ(resumed[i].lr, straight[i].lr) << i;
  }
  const auto a = open(dir_ / "straight").read_events(), b = open(dir_ / "killed").read_events();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].step, b[i].step);
    EXPECT_EQ(a[i].kind, b[i].kind);
    EXPECT_EQ(a[i].detail, b[i].detail);
  }
  const auto state =
      nlohmann::json::parse(read_file(dir_ / "killed/checkpoints/step12/trainer_state.json"));
  EXPECT_EQ(state.at("switch_after").get<int64_t>(), s);
}

TEST_F(Monitor, BadSettingsAreRefusedBeforeTrainingNamingTheKey) {
  write_run_config(dir_.path(), monitor("stop"), "noprobe.yaml");
  auto r = train("noprobe.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("monitor.action"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("probe.enabled"), std::string::npos) << r.err;
  write_run_config(dir_.path(), std::string(kProbe) + monitor("switch"), "noblock.yaml");
  r = train("noblock.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("monitor.switch_to"), std::string::npos) << r.err;
  write_run_config(dir_.path(),
                   std::string(kProbe) + monitor("switch", ", switch_to: {name: cosine, peak: 1}"),
                   "badblock.yaml");
  r = train("badblock.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("monitor.switch_to"), std::string::npos) << r.err;
  write_run_config(dir_.path(), std::string(kProbe) + monitor("jump"), "badaction.yaml");
  r = train("badaction.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("monitor.action"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "run/checkpoints"));
}

// train.ema: every probe measures the average too, as a /probe row with weights "ema";
// the last one is the probe of the ema/ checkpoint the run writes at its end.
TEST_F(Monitor, TheWeightAverageIsProbedBesideTheRawWeights) {
  write_run_config(dir_.path(),
                   "probe: {enabled: true, every: 4, int4_scheme: int4_asym_g32,\n"
                   "        eval: {dataset: tokens, sequences: 4, seq_len: 16}}\n",
                   "ema.yaml", {{"ema", "{beta: 0.8, every: 1}"}});
  ASSERT_EQ(train("ema.yaml").exit_code, 0);
  std::map<int64_t, std::map<std::string, ProbeRow>> rows;
  for (const auto& p : open(dir_ / "run").read_probe()) rows[p.step][p.weights] = p;
  ASSERT_GE(rows.size(), 3u);
  for (const auto& [step, by] : rows) {
    ASSERT_EQ(by.size(), 2u) << step;
    // (Update 0 runs at the warmup's rate 0: the average equals the weights there.)
    if (step > 0) {
      EXPECT_NE(by.at("raw").ppl_fp32, by.at("ema").ppl_fp32) << step;
    }
  }
  // Per-tensor rows are the raw weights' only.
  EXPECT_EQ(open(dir_ / "run").read_probe_tensors().size() % rows.size(), 0u);
  const auto r = run_quantfork(
      "probe --model run/ema --eval tokens --json - --set probe.int4_scheme=int4_asym_g32 "
      "--set probe.eval.sequences=4 --set probe.eval.seq_len=16",
      dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const ProbeRow& last = rows.rbegin()->second.at("ema");
  EXPECT_EQ(rows.rbegin()->first, 11);
  EXPECT_DOUBLE_EQ(j.at("ppl_fp32").get<double>(), last.ppl_fp32) << r.out;
  EXPECT_DOUBLE_EQ(j.at("gap_int4_pct").get<double>(), last.gap_int4_pct) << r.out;
}

}  // namespace
}  // namespace qf::test
