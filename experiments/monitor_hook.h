#pragma once
// The divergence monitor acting during training (monitor.action; method.md, "Beyond the
// paper": a principled stopping criterion). After each probe of the raw weights, the
// monitor (quant_probe/divergence_monitor.h) reads the run's /probe rows so far; when it
// fires, a "monitor_fired" row goes to the run's /events table and, per monitor.action:
//
//   log     nothing more: training goes on;
//   stop    the run ends for good after this update, with a checkpoint that records why
//           (exit 0; the summary and `quantfork status` say so; starting it again does
//           nothing), and a "stop" event;
//   switch  from the next update on the run follows monitor.switch_to (a schedule block
//           counting its own steps from 0 there; $switch_lr is the configured schedule's
//           rate at that update and $remaining_steps the updates left), with a
//           "schedule_switch" event. The switch is kept in every later checkpoint, so a
//           resume goes on with it, and the probe plan gains the new schedule's
//           boundaries. A run switches once; later firings are logged only.
//
// The decision is a pure function of the /probe rows, which a resume keeps up to its
// checkpoint, so a killed and resumed run fires, stops and switches exactly where the
// uninterrupted one did. Rank 0 decides (it alone probes) and shares the decision.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>

#include "core/config.h"
#include "quant_probe/divergence_monitor.h"
#include "train/trainer.h"

namespace qf::experiments {

enum class MonitorAction { kOff, kLog, kStop, kSwitch };

// monitor.action and monitor.switch_to, besides the monitor's own keys (which this
// declares too).
void declare_monitor_action_config(ConfigSchema& schema);

struct MonitorPlan {
  quant::MonitorOptions options;
  MonitorAction action = MonitorAction::kOff;
  YAML::Node switch_to;  // unbound: $switch_lr and $remaining_steps still in it
};

// The validated plan, or nullopt when monitor.action is off. ConfigError naming the key
// for a monitor without probes, an unknown action, or a switch_to that is no schedule
// (checked now, with stand-in values for its placeholders, not when it fires).
std::optional<MonitorPlan> monitor_plan(const Config& config, const train::Trainer& trainer);

// `block` with $switch_lr and $remaining_steps replaced for a switch after update
// `after_step` of `trainer`'s run.
YAML::Node bind_switch_block(const YAML::Node& block, const train::Trainer& trainer,
                             int64_t after_step);

// Called on every rank right after the probe at `info.step` wrote its rows. Returns true
// when the schedule switched here.
bool monitor_after_probe(const MonitorPlan& plan, train::Trainer& trainer,
                         const train::StepInfo& info);

}  // namespace qf::experiments
