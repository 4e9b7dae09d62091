#include "experiments/fork.h"

#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/progress.h"
#include "core/run_file.h"
#include "experiments/probe_hook.h"
#include "experiments/subprocess.h"
#include "quant_probe/probe_config.h"
#include "schedules/registry.h"
#include "train/checkpoint.h"
#include "train/train_config.h"

namespace fs = std::filesystem;

namespace qf::experiments {

void declare_run_config(ConfigSchema& s) {
  train::declare_train_config(s);
  quant::declare_probe_config(s);
  declare_probe_hook_config(s);
}

void declare_experiment_config(ConfigSchema& s) {
  declare_run_config(s);
  s.optional("experiment.name", FieldType::String, "fork",
             "Experiment name: runs go to experiment.out/<name>/<arm>/seed<k>/.")
      .optional("experiment.out", FieldType::Path, "experiments-out", "Output folder.")
      .required("experiment.base", FieldType::String,
                "The checkpoint the arms fork from: a Hugging Face directory (a Pythia stepN "
                "revision), or audit:pre_divergence (the last checkpoint before the divergence "
                "that experiment.audit found; see experiment.base_pattern).")
      .optional("experiment.base_step", FieldType::Int, "-1",
                "Global step of the base; -1: from its name (stepN) or the audit.")
      .optional("experiment.audit", FieldType::Path, "null",
                "Audit file (quantfork audit) for base: audit:pre_divergence.")
      .optional("experiment.base_pattern", FieldType::Path, "null",
                "Where the audited checkpoints live, with {step} for the step, e.g. "
                "pythia-160m/step{step}: turns the audit's pre-divergence step into a path.")
      .optional("experiment.seeds", FieldType::IntList, "[1, 2, 3]",
                "Seeds: each fixes a run's data sample and order (same seed, same data in "
                "every arm).")
      .optional("experiment.arms", FieldType::Block,
                "[{name: cosine, schedule: {name: pythia_cosine, step_offset: 77000}}, "
                "{name: sgdr, schedule: {name: sgdr, max_lr: 2.7321e-4, min_lr: 6.0e-5, t0: 200, "
                "t_mult: 2}}, {name: oli, schedule: {name: oli, envelope: {name: pythia_cosine, "
                "step_offset: 77000}}}]",
                "The arms: a list of {name, schedule: {...}, set: {dotted.key: value}}; `set` "
                "overrides any training key for that arm only.")
      .optional("experiment.parallel", FieldType::Int, "1",
                "Runs at once on this machine (each a process; the cores are split).")
      .optional("experiment.threads_per_run", FieldType::Int, "0",
                "CPU threads per run; 0: the machine's cores / experiment.parallel.");
}

std::vector<Arm> read_arms(const Config& cfg, const std::string& key) {
  const YAML::Node arms = cfg.node(key);
  if (!arms.IsSequence() || arms.size() == 0) {
    throw ConfigError("config " + cfg.where(key) +
                      ": expected a non-empty list of {name, schedule, set}");
  }
  std::vector<Arm> out;
  for (size_t i = 0; i < arms.size(); ++i) {
    const std::string k = key + "." + std::to_string(i);
    if (!arms[i].IsMap() || !arms[i]["name"] || !arms[i]["schedule"]) {
      throw ConfigError("config " + cfg.where(k) + ": expected {name: ARM, schedule: {...}}");
    }
    for (const auto& kv : arms[i]) {
      const std::string field = kv.first.Scalar();
      if (field != "name" && field != "schedule" && field != "set") {
        throw ConfigError("unknown config key '" + k + "." + field + "' (" +
                          cfg.origin(k + "." + field).str() +
                          "); an arm has name, schedule and set");
      }
    }
    Arm arm;
    arm.name = arms[i]["name"].Scalar();
    for (const auto& a : out) {
      if (a.name == arm.name) {
        throw ConfigError("config " + cfg.where(k + ".name") + ": arm '" + arm.name +
                          "' appears twice");
      }
    }
    arm.schedule = schedules::make_schedule(cfg, k + ".schedule");
    arm.schedule_block = YAML::Clone(arms[i]["schedule"]);
    arm.overrides = arms[i]["set"] ? YAML::Clone(arms[i]["set"]) : YAML::Node(YAML::NodeType::Map);
    if (!arm.overrides.IsMap()) {
      throw ConfigError("config " + cfg.where(k + ".set") + ": expected {dotted.key: value}");
    }
    out.push_back(std::move(arm));
  }
  return out;
}

bool run_finished(const fs::path& run_dir, int64_t steps) {
  const auto all = train::list_checkpoints(run_dir / "checkpoints");
  if (all.empty()) return false;
  return train::read_trainer_state_json(all.back().dir).run_steps >= steps;
}

namespace {

// Sets `dotted.key` in a YAML tree, creating the maps on the way.
void set_dotted(YAML::Node root, const std::string& key, const YAML::Node& value) {
  YAML::Node node = root;
  std::stringstream parts(key);
  std::string part;
  std::vector<std::string> path;
  while (std::getline(parts, part, '.')) path.push_back(part);
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    if (!node[path[i]] || !node[path[i]].IsMap()) node[path[i]] = YAML::Node(YAML::NodeType::Map);
    node.reset(node[path[i]]);
  }
  node[path.back()] = value;
}

void resolve_base(const Config& cfg, ExperimentPlan& plan) {
  const std::string base = cfg.get_string("experiment.base");
  const int64_t given_step = cfg.get_int("experiment.base_step");
  if (base.rfind("audit:", 0) != 0) {
    fs::path p(base);
    if (p.is_relative()) p = cfg.origin("experiment.base").base_dir / p;
    plan.base = p.lexically_normal();
    const auto named = train::step_from_name(plan.base);
    plan.base_step = given_step >= 0 ? given_step : named.value_or(0);
    plan.base_reason = "the configured checkpoint";
    return;
  }
  if (base != "audit:pre_divergence") {
    throw ConfigError("config " + cfg.where("experiment.base") + ": '" + base +
                      "' is not a checkpoint directory or audit:pre_divergence");
  }
  if (cfg.is_null("experiment.audit") || cfg.is_null("experiment.base_pattern")) {
    throw ConfigError("config " + cfg.where("experiment.base") +
                      ": audit:pre_divergence needs experiment.audit and experiment.base_pattern");
  }
  const fs::path audit_path = cfg.get_path("experiment.audit");
  const AuditFile audit = AuditFile::open_read_only(audit_path.string());
  const auto landmarks = audit.landmarks();
  if (!landmarks || !landmarks->pre_divergence_step) {
    throw Error(audit_path.string() +
                ": the audit found no pre-divergence checkpoint (no divergence phase in this "
                "trajectory), so audit:pre_divergence names nothing; fork from a checkpoint "
                "given by path instead");
  }
  plan.base_step = *landmarks->pre_divergence_step;
  std::string pattern = cfg.get_path("experiment.base_pattern").string();
  const auto at = pattern.find("{step}");
  if (at == std::string::npos) {
    throw ConfigError("config " + cfg.where("experiment.base_pattern") + ": needs {step}");
  }
  pattern.replace(at, 6, std::to_string(plan.base_step));
  plan.base = pattern;
  plan.base_reason = "the audit's pre-divergence checkpoint (" + audit_path.string() + ")";
}

}  // namespace

ExperimentPlan plan_experiment(const Config& cfg) {
  ExperimentPlan plan;
  plan.name = cfg.get_string("experiment.name");
  plan.out = cfg.get_path("experiment.out") / plan.name;
  resolve_base(cfg, plan);
  if (!fs::is_directory(plan.base)) {
    throw Error("the experiment's base checkpoint '" + plan.base.string() + "' does not exist");
  }
  plan.arms = read_arms(cfg, "experiment.arms");
  plan.seeds = cfg.get_int_list("experiment.seeds");
  if (plan.seeds.empty()) throw ConfigError("config " + cfg.where("experiment.seeds") + ": empty");
  plan.parallel = static_cast<int>(std::max<int64_t>(1, cfg.get_int("experiment.parallel")));
  plan.threads_per_run = static_cast<int>(cfg.get_int("experiment.threads_per_run"));
  if (plan.threads_per_run <= 0) {
    plan.threads_per_run =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / plan.parallel);
  }
  const int64_t steps = cfg.get_int("train.steps");
  std::vector<schedules::NamedSchedule> named;
  for (const auto& a : plan.arms) named.push_back({a.name, a.schedule});
  plan.probe_plan = schedules::probe_plan(named, 0, steps, cfg.get_int("probe.every"));
  std::vector<int64_t> plan_steps;
  for (const auto& p : plan.probe_plan) plan_steps.push_back(p.step);

  // Every run's config: the experiment's resolved config without its own section, the
  // arm's schedule and overrides, the seed, the base, and the shared plan.
  YAML::Node common = YAML::Load(cfg.dump());
  common.remove("experiment");
  fs::create_directories(plan.out);
  for (const auto& arm : plan.arms) {
    for (const int64_t seed : plan.seeds) {
      RunSpec run;
      run.arm = arm.name;
      run.seed = seed;
      run.dir = plan.out / arm.name / ("seed" + std::to_string(seed));
      YAML::Node c = YAML::Clone(common);
      set_dotted(c, "run.dir", YAML::Node(run.dir.string()));
      set_dotted(c, "run.experiment", YAML::Node(plan.name));
      set_dotted(c, "run.arm", YAML::Node(arm.name));
      set_dotted(c, "train.seed", YAML::Node(seed));
      set_dotted(c, "train.threads", YAML::Node(plan.threads_per_run));
      set_dotted(c, "model.init", YAML::Node(plan.base.string()));
      set_dotted(c, "model.base_step", YAML::Node(plan.base_step));
      set_dotted(c, "model.preset", YAML::Node(""));
      set_dotted(c, "model.config", YAML::Node(YAML::NodeType::Null));
      c["schedule"] = YAML::Clone(arm.schedule_block);
      YAML::Node at_steps(YAML::NodeType::Sequence);
      for (int64_t s : plan_steps) at_steps.push_back(s);
      set_dotted(c, "probe.at_steps", at_steps);
      set_dotted(c, "probe.every", YAML::Node(0));
      set_dotted(c, "probe.at_phase_boundaries", YAML::Node(false));
      for (const auto& kv : arm.overrides) set_dotted(c, kv.first.Scalar(), kv.second);
      fs::create_directories(run.dir);
      run.config_path = run.dir / "run_config.yaml";
      YAML::Emitter e;
      e << c;
      write_text_atomically(run.config_path, "# written by quantfork experiment: arm " + arm.name +
                                                 ", seed " + std::to_string(seed) + "\n" +
                                                 e.c_str() + "\n");
      run.finished = run_finished(run.dir, steps);
      plan.runs.push_back(run);
    }
  }
  std::ostringstream plan_csv;
  plan_csv << "step,reasons\n";
  for (const auto& p : plan.probe_plan) {
    plan_csv << p.step << ",";
    for (size_t i = 0; i < p.reasons.size(); ++i) plan_csv << (i ? ";" : "") << p.reasons[i];
    plan_csv << "\n";
  }
  write_text_atomically(plan.out / "probe_plan.csv", plan_csv.str());
  return plan;
}


void run_experiment(const ExperimentPlan& plan, const fs::path& program) {
  std::vector<const RunSpec*> todo;
  for (const auto& r : plan.runs) {
    if (r.finished) {
      spdlog::info("{}/seed{}: finished already, skipped", r.arm, r.seed);
    } else {
      todo.push_back(&r);
    }
  }
  spdlog::info(
      "experiment {}: {} run(s) to do of {}, {} at a time, {} thread(s) each; base {} "
      "(step {}, {})",
      plan.name, todo.size(), plan.runs.size(), plan.parallel, plan.threads_per_run,
      plan.base.string(), plan.base_step, plan.base_reason);
  Progress progress("experiment", static_cast<int64_t>(todo.size()), "run", stderr, 0.0);
  std::map<pid_t, const RunSpec*> running;
  std::vector<std::string> failed;
  size_t next = 0, done = 0;
  while (next < todo.size() || !running.empty()) {
    while (next < todo.size() && static_cast<int>(running.size()) < plan.parallel) {
      const RunSpec& r = *todo[next];
      running[spawn(program, {"train", "--config", r.config_path.string()},
                    r.dir / "stdout.txt")] = &r;
      ++next;
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) break;
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const RunSpec& r = *it->second;
    running.erase(it);
    ++done;
    const bool ok = exit_code_of(status) == 0;
    if (!ok) {
      failed.push_back(r.arm + "/seed" + std::to_string(r.seed) + " (see " +
                       (r.dir / "stdout.txt").string() + ")");
    }
    progress.update(static_cast<int64_t>(done), {{"last", r.arm + "/seed" + std::to_string(r.seed) +
                                                              (ok ? " ok" : " FAILED")}});
  }
  progress.finish();
  if (!failed.empty()) {
    std::string list;
    for (const auto& f : failed) list += "\n  " + f;
    throw Error(std::to_string(failed.size()) + " run(s) of experiment " + plan.name +
                " failed:" + list + "\nrun the same command again to resume them");
  }
}

}  // namespace qf::experiments
