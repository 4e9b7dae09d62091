#include "experiments/probe_hook.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "core/errors.h"
#include "core/run_events.h"
#include "quant_probe/gptq_config.h"
#include "quant_probe/probe.h"
#include "quant_probe/probe_config.h"
#include "quant_probe/probe_report.h"
#include "schedules/probe_plan.h"
#include "train/distributed.h"

namespace qf::experiments {

void declare_probe_hook_config(ConfigSchema& s) {
  s.optional("probe.enabled", FieldType::Bool, "false",
             "Probe the model during training (needs probe.eval.*).")
      .optional("probe.every", FieldType::Int, "0",
                "Probe after the updates whose index is a multiple of N (counted from the "
                "run's update 0, so the plans of all arms line up); 0: off.")
      .optional("probe.at_phase_boundaries", FieldType::Bool, "true",
                "Probe after the first update of every schedule phase, at the schedule's "
                "settled points (OLI: the last update of each cool phase) and at its "
                "perturbation extremes (OLI's bump peaks, SGDR's last update before each "
                "restart).")
      .optional("probe.at_steps", FieldType::IntList, "[]",
                "Further update indices to probe after (a fork experiment's shared plan).");
}

std::vector<int64_t> probe_steps(const Config& c, const schedules::LrSchedule& schedule,
                                 int64_t steps) {
  if (!c.get_bool("probe.enabled") || steps <= 0) return {};
  std::set<int64_t> out;
  const int64_t every = c.get_int("probe.every");
  if (every < 0) throw ConfigError("config " + c.where("probe.every") + ": must be at least 0");
  // The experiment's plan with this run's schedule as its one arm (a non-owning pointer).
  std::vector<schedules::NamedSchedule> arms;
  if (c.get_bool("probe.at_phase_boundaries")) {
    arms.push_back({"run", schedules::SchedulePtr(schedules::SchedulePtr(), &schedule)});
  }
  for (const auto& p : schedules::probe_plan(arms, 0, steps, every)) out.insert(p.step);
  for (int64_t s : c.get_int_list("probe.at_steps")) {
    if (s < 0 || s >= steps) {
      throw ConfigError("config " + c.where("probe.at_steps") + ": step " + std::to_string(s) +
                        " is outside this run's updates 0.." + std::to_string(steps - 1));
    }
    out.insert(s);
  }
  out.insert(steps - 1);
  return {out.begin(), out.end()};
}

namespace {

class ProbeHook : public train::TrainerHooks {
 public:
  ProbeHook(std::vector<int64_t> steps, at::Tensor windows, at::Tensor calibration,
            quant::ProbeOptions options)
      : steps_(steps.begin(), steps.end()),
        windows_(std::move(windows)),
        calibration_(std::move(calibration)),
        options_(options) {}

  void on_step(train::Trainer& t, const train::StepInfo& info) override {
    if (!steps_.count(info.step)) return;
    if (t.is_root()) {
      const quant::ProbeResult r = quant::probe_model(t.model(), windows_, options_, calibration_);
      ProbeRow row = quant::to_probe_row(r, info.step);
      row.phase = info.phase.name;
      row.phase_index = static_cast<int32_t>(info.phase.index);
      if (t.run_file()) {
        t.run_file()->append_probe(row);
        t.run_file()->append_probe_tensors(quant::to_tensor_rows(r, info.step));
      }
      if (t.events()) log_probe_row(*t.events(), row);
      spdlog::info(
          "probe after update {} ({}): ppl fp32 {:.4f}, int4 {:.4f} ({:+.2f}%), int8 {:.4f} "
          "({:+.2f}%), {:.1f} s",
          info.step, info.phase.label(), r.fp32.ppl, r.int4.ppl, r.gap_int4_pct, r.int8.ppl,
          r.gap_int8_pct, r.seconds);
    }
    t.data_parallel().barrier();
  }

 private:
  std::set<int64_t> steps_;
  at::Tensor windows_;
  at::Tensor calibration_;  // GPTQ's, when probe.gptq is on
  quant::ProbeOptions options_;
};

}  // namespace

std::shared_ptr<train::TrainerHooks> make_probe_hook(const Config& config,
                                                     const train::Trainer& trainer) {
  const auto steps = probe_steps(config, trainer.schedule(), trainer.options().steps);
  if (steps.empty()) return nullptr;
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
  return std::make_shared<ProbeHook>(steps, windows, calibration, quant::probe_options(config));
}

}  // namespace qf::experiments
