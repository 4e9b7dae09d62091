#include "experiments/probe_hook.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "core/errors.h"
#include "core/run_events.h"
#include "experiments/monitor_hook.h"
#include "experiments/probe_plan.h"
#include "quant_probe/gptq_config.h"
#include "quant_probe/probe.h"
#include "quant_probe/probe_config.h"
#include "quant_probe/probe_report.h"
#include "train/distributed.h"

namespace qf::experiments {

void declare_probe_hook_config(ConfigSchema& s) {
  s.optional("probe.enabled", FieldType::Bool, "false",
             "Probe the model during training (needs probe.eval.*).")
      .optional("probe.every", FieldType::Int, "0",
                "Probe after the updates whose index is a multiple of N (counted from the "
                "run's update 0, so the plans of all arms line up); 0: off.")
      .at_least(0)
      .optional("probe.at_phase_boundaries", FieldType::Bool, "true",
                "Probe after the first update of every schedule phase, at the schedule's "
                "settled points (OLI: the last update of each cool phase) and at its "
                "perturbation extremes (OLI's bump peaks, SGDR's last update before each "
                "restart).")
      .optional("probe.at_steps", FieldType::IntList, "[]",
                "Further update indices to probe after (a fork experiment's shared plan).");
  declare_monitor_action_config(s);
}

std::vector<int64_t> probe_steps(const Config& c, const schedules::LrSchedule& schedule,
                                 int64_t steps) {
  if (!c.get_bool("probe.enabled") || steps <= 0) return {};
  const std::vector<int64_t> at_steps = c.get_int_list("probe.at_steps");
  for (const int64_t s : at_steps) {
    if (s < 0 || s >= steps) {
      throw ConfigError("config " + c.where("probe.at_steps") + ": step " + std::to_string(s) +
                        " is outside this run's updates 0.." + std::to_string(steps - 1));
    }
  }
  // The experiment's plan with this run's schedule as its one arm (a non-owning pointer).
  std::vector<NamedSchedule> arms;
  if (c.get_bool("probe.at_phase_boundaries")) {
    arms.push_back({"run", schedules::SchedulePtr(schedules::SchedulePtr(), &schedule)});
  }
  std::vector<int64_t> out;
  for (const auto& p : probe_plan(arms, 0, steps, c.get_int("probe.every"), at_steps)) {
    out.push_back(p.step);
  }
  return out;
}

namespace {

// The probes a switched schedule adds after update `after`: the new schedule's
// boundaries, settled points and perturbation extremes (whatever
// probe.at_phase_boundaries says: the switch is this run's own).
std::vector<int64_t> switched_probe_steps(const train::Trainer& t, int64_t after) {
  std::vector<NamedSchedule> arms;
  arms.push_back({"switched", schedules::SchedulePtr(schedules::SchedulePtr(), &t.schedule())});
  std::vector<int64_t> out;
  for (const auto& p : probe_plan(arms, after + 1, t.options().steps, 0)) {
    out.push_back(p.step);
  }
  return out;
}

class ProbeHook : public train::TrainerHooks {
 public:
  ProbeHook(std::vector<int64_t> steps, at::Tensor windows, at::Tensor calibration,
            quant::ProbeOptions options, std::optional<MonitorPlan> monitor)
      : steps_(steps.begin(), steps.end()),
        windows_(std::move(windows)),
        calibration_(std::move(calibration)),
        options_(options),
        monitor_(std::move(monitor)) {}

  void on_step(train::Trainer& t, const train::StepInfo& info) override {
    if (!steps_.count(info.step)) return;
    if (t.is_root()) {
      probe(t, info, t.model(), kRawWeights);
      // The weight average beside the raw weights (train.ema), in float32.
      if (t.ema()) {
        model::GptNeoXForCausalLM averaged = t.ema()->averaged_model(t.model());
        probe(t, info, averaged, kEmaWeights);
      }
    }
    t.data_parallel().barrier();
    if (monitor_ && monitor_after_probe(*monitor_, t, info)) {
      for (int64_t s : switched_probe_steps(t, info.step)) steps_.insert(s);
    }
  }

 private:
  void probe(train::Trainer& t, const train::StepInfo& info, model::GptNeoXForCausalLM& model,
             const char* weights) {
    const quant::ProbeResult r = quant::probe_model(model, windows_, options_, calibration_);
    ProbeRow row = quant::to_probe_row(r, info.step);
    row.phase = info.phase.name;
    row.phase_index = static_cast<int32_t>(info.phase.index);
    row.weights = weights;
    if (t.run_file()) {
      t.run_file()->append_probe(row);
      // Per-tensor rows are the raw weights' only.
      if (row.weights == kRawWeights) {
        t.run_file()->append_probe_tensors(quant::to_tensor_rows(r, info.step));
      }
    }
    if (t.events()) log_probe_row(*t.events(), row);
    spdlog::info(
        "probe{} after update {} ({}): ppl fp32 {:.4f}, int4 {:.4f} ({:+.2f}%), int8 {:.4f} "
        "({:+.2f}%), {:.1f} s",
        row.weights == kRawWeights ? "" : " of the " + row.weights + " weights", info.step,
        info.phase.label(), r.fp32.ppl, r.int4.ppl, r.gap_int4_pct, r.int8.ppl, r.gap_int8_pct,
        r.seconds);
  }

  std::set<int64_t> steps_;
  at::Tensor windows_;
  at::Tensor calibration_;  // GPTQ's, when probe.gptq is on
  quant::ProbeOptions options_;
  std::optional<MonitorPlan> monitor_;
};

}  // namespace

std::shared_ptr<train::TrainerHooks> make_probe_hook(const Config& config,
                                                     const train::Trainer& trainer) {
  auto steps = probe_steps(config, trainer.schedule(), trainer.options().steps);
  auto monitor = monitor_plan(config, trainer);
  if (steps.empty()) return nullptr;
  // A resumed run that had switched probes the switched schedule's points as it did.
  if (trainer.switched_after() >= 0) {
    for (int64_t s : switched_probe_steps(trainer, trainer.switched_after())) steps.push_back(s);
  }
  if (quant::probe_options(config).attribution != quant::AttributionUnits::none) {
    throw ConfigError("config " + config.where("probe.attribution") +
                      ": attribution is measured by `quantfork audit` and `quantfork probe` "
                      "over saved checkpoints, not during training; set it to none here");
  }
  at::Tensor windows, calibration;
  if (trainer.is_root()) {
    windows = quant::windows_tensor(quant::load_eval_set(quant::eval_set_options(config)));
    calibration = quant::load_probe_calibration(config);
  }
  // The probe runs where the model is (probe.device only picks where `quantfork probe`
  // loads a checkpoint).
  return std::make_shared<ProbeHook>(steps, windows, calibration, quant::probe_options(config),
                                     std::move(monitor));
}

}  // namespace qf::experiments
