#include "experiments/monitor_hook.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "core/errors.h"
#include "schedules/registry.h"
#include "train/distributed.h"

namespace qf::experiments {
namespace {

constexpr const char* kSwitchLr = "$switch_lr";
constexpr const char* kRemainingSteps = "$remaining_steps";
constexpr std::string_view kMonitorTag = "run/monitor";

const EnumNames<MonitorAction> kActionNames = {{"off", MonitorAction::kOff},
                                               {"log", MonitorAction::kLog},
                                               {"stop", MonitorAction::kStop},
                                               {"switch", MonitorAction::kSwitch}};

void bind(YAML::Node node, double lr, int64_t remaining) {
  if (node.IsSequence()) {
    for (std::size_t i = 0; i < node.size(); ++i) bind(node[i], lr, remaining);
    return;
  }
  if (!node.IsMap()) return;
  for (auto kv : node) {
    const std::string key = kv.first.Scalar();
    const YAML::Node value = kv.second;
    if (value.IsScalar() && value.Scalar() == kSwitchLr) {
      node[key] = lr;
    } else if (value.IsScalar() && value.Scalar() == kRemainingSteps) {
      node[key] = remaining;
    } else {
      bind(value, lr, remaining);
    }
  }
}

// The monitor's points from the run's raw-weight /probe rows so far (a step logged twice
// keeps its last row), in step order.
std::vector<quant::MonitorPoint> history(const RunFile& file, const std::string& metric) {
  std::map<int64_t, quant::MonitorPoint> by_step;
  for (const ProbeRow& row : file.read_probe()) {
    if (row.weights != kRawWeights) continue;
    by_step[row.step] = {row.step, row.ppl_fp32, quant::monitor_metric(row, metric)};
  }
  std::vector<quant::MonitorPoint> out;
  for (auto& [step, p] : by_step) out.push_back(p);
  return out;
}

std::string flow(const YAML::Node& node) {
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

// /events' detail column holds kDetailBytes: a longer text is cut, visibly.
std::string fit(std::string text) {
  if (text.size() > kDetailBytes) text = text.substr(0, kDetailBytes - 3) + "...";
  return text;
}

enum Decision { kNone = 0, kLogged = 1, kStopped = 2, kSwitched = 3 };

}  // namespace

void declare_monitor_action_config(ConfigSchema& s) {
  quant::declare_monitor_config(s);
  s.optional("monitor.action", FieldType::String, "off",
             "What a training run does when the divergence monitor fires after a probe: off "
             "(no monitor), log (an /events row), stop (also end the run for good with a "
             "checkpoint, exit 0) or switch (also follow monitor.switch_to from the next "
             "update on).")
      .one_of(kActionNames)
      .optional("monitor.switch_to", FieldType::Block, "null",
                "For action switch: the schedule block to follow, counting its own steps from "
                "0 at the first switched update; $switch_lr is the configured schedule's rate "
                "there and $remaining_steps the updates left, e.g. {name: cosine, max_lr: "
                "$switch_lr, min_lr: 0, steps: $remaining_steps}.");
}

YAML::Node bind_switch_block(const YAML::Node& block, const train::Trainer& trainer,
                             int64_t after_step) {
  YAML::Node bound = YAML::Clone(block);
  bind(bound, trainer.schedule().lr(after_step + 1), trainer.options().steps - after_step - 1);
  return bound;
}

std::optional<MonitorPlan> monitor_plan(const Config& c, const train::Trainer& trainer) {
  MonitorPlan plan;
  plan.action = c.get_enum("monitor.action", kActionNames);
  if (plan.action == MonitorAction::kOff) return std::nullopt;
  if (!c.get_bool("probe.enabled")) {
    throw ConfigError("config " + c.where("monitor.action") +
                      ": the monitor reads the probes; set probe.enabled: true (and probe.eval.*) "
                      "or monitor.action: off");
  }
  plan.options = quant::monitor_options(c);
  if (plan.options.metric != "gap_int4_pct" && plan.options.metric != "gap_int8_pct") {
    throw ConfigError("config " + c.where("monitor.metric") +
                      ": expected gap_int4_pct or "
                      "gap_int8_pct, not '" +
                      plan.options.metric + "'");
  }
  if (plan.action == MonitorAction::kSwitch) {
    const YAML::Node block = c.node("monitor.switch_to");
    if (!block || !block.IsMap()) {
      throw ConfigError("config " + c.where("monitor.switch_to") +
                        ": monitor.action switch needs a schedule block here, e.g. {name: "
                        "cosine, max_lr: $switch_lr, min_lr: 0, steps: $remaining_steps}");
    }
    // Built now, with the placeholders bound as for a switch after update 0, so a bad
    // block fails before training rather than when the monitor fires.
    schedules::make_schedule(bind_switch_block(block, trainer, 0), "monitor.switch_to",
                             schedules::locator_for(c));
    plan.switch_to = YAML::Clone(block);
  }
  return plan;
}

bool monitor_after_probe(const MonitorPlan& plan, train::Trainer& t, const train::StepInfo& info) {
  const bool last_update = info.step + 1 >= t.options().steps;
  int decision = kNone;
  quant::MonitorReading reading;
  double value = std::numeric_limits<double>::quiet_NaN();  // the metric at this probe
  if (t.is_root() && t.run_file()) {
    const auto points = history(*t.run_file(), plan.options.metric);
    if (!points.empty() && points.back().step == info.step) {
      // The whole replay, so that "fires" (the condition here and not at the probe
      // before) is exactly what `quantfork phases --monitor` reports.
      reading = quant::replay_monitor(points, plan.options).back();
      value = points.back().gap_pct;
    }
    if (reading.fires) {
      decision = kLogged;
      if (plan.action == MonitorAction::kStop && !last_update) decision = kStopped;
      if (plan.action == MonitorAction::kSwitch && !last_update && t.switched_after() < 0) {
        decision = kSwitched;
      }
    }
  }
  decision = static_cast<int>(t.data_parallel().all_reduce_max(static_cast<double>(decision)));
  if (decision == kNone) return false;

  std::ostringstream why;
  why.precision(4);
  std::string reason;
  if (t.is_root()) {
    why << "the divergence monitor fired after update " << info.step << ": ln("
        << plan.options.metric << ") rose by " << reading.gap_rise << " across the last "
        << reading.probes << " probes while FP32 perplexity changed by " << reading.fp32_change_pct
        << "%";
    reason = why.str();
    std::string action = "log";
    if (decision == kStopped) action = "stop";
    if (decision == kSwitched) action = "switch";
    if (decision == kLogged && plan.action != MonitorAction::kLog) {
      action += last_update
                    ? " (at the run's last update: nothing to " +
                          std::string(plan.action == MonitorAction::kStop ? "stop" : "switch") + ")"
                    : " (the schedule switched already, after update " +
                          std::to_string(t.switched_after()) + ")";
    }
    EventRow fired;
    fired.step = info.step;
    fired.kind = "monitor_fired";
    fired.metric = plan.options.metric;
    fired.value = value;
    fired.gap_rise = reading.gap_rise;
    fired.fp32_change_pct = reading.fp32_change_pct;
    fired.detail = fit("action: " + action);
    t.run_file()->append_event(fired);
    if (t.events()) t.events()->text(kMonitorTag, info.step, reason + "; action: " + action);
    spdlog::warn("{}; action: {}", reason, action);
  }
  if (decision == kStopped) {
    if (t.is_root()) {
      EventRow stop;
      stop.step = info.step;
      stop.kind = "stop";
      stop.metric = plan.options.metric;
      stop.detail = fit(reason);
      t.run_file()->append_event(stop);
    }
    // Non-root ranks record no reason text of their own: the checkpoint is rank 0's.
    t.request_stop(t.is_root() ? reason : "stopped by the divergence monitor");
  }
  if (decision == kSwitched) {
    const YAML::Node bound = bind_switch_block(plan.switch_to, t, info.step);
    t.switch_schedule(info.step, bound, "monitor.switch_to");
    if (t.is_root()) {
      EventRow sw;
      sw.step = info.step;
      sw.kind = "schedule_switch";
      sw.metric = plan.options.metric;
      sw.detail = fit("from update " + std::to_string(info.step + 1) + ": " + flow(bound));
      t.run_file()->append_event(sw);
      if (t.events()) t.events()->text(kMonitorTag, info.step, sw.detail);
    }
  }
  if (t.events()) t.events()->flush();
  return decision == kSwitched;
}

}  // namespace qf::experiments
