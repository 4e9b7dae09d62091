#include "experiments/fork.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/run_file.h"
#include "core/step_name.h"
#include "data/indexed_dataset.h"
#include "experiments/run_groups.h"
#include "schedules/registry.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace qf::experiments {

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
      .optional("experiment.continuation", FieldType::Block,
                "{name: pythia_cosine, step_offset: $base_step}",
                "The schedule the base was trained with, continued from the base: "
                "$continuation_lr in an arm is its rate at the base step.")
      .optional("experiment.arms", FieldType::Block,
                "[{name: cosine, schedule: {name: pythia_cosine, step_offset: $base_step}}, "
                "{name: sgdr, schedule: {name: sgdr, max_lr: $continuation_lr, min_lr: 6.0e-5, "
                "t0: 200, t_mult: 2}}, {name: oli, schedule: {name: oli, envelope: {name: "
                "pythia_cosine, step_offset: $base_step}}}, {name: cosine_matched, schedule: "
                "{name: matched_mean, schedule: {name: pythia_cosine, step_offset: $base_step}, "
                "match: {name: oli, envelope: {name: pythia_cosine, step_offset: $base_step}}}}]",
                "The arms: a list of {name, schedule: {...}, set: {dotted.key: value}}; `set` "
                "overrides any training key for that arm only. In a schedule, $base_step is "
                "the base's global step and $continuation_lr the continuation's rate there, "
                "so one config serves any base (audit:pre_divergence included); a "
                "pythia_cosine whose step_offset pins another step than the base is refused.")
      .optional("experiment.base_items_per_step", FieldType::Int, "1024",
                "Dataset items the base was trained on per step (Pythia: 1024 sequences of "
                "2049 tokens), so that the fork reads from item base_step x this on: data the "
                "base has not seen.")
      .optional("experiment.data_start_item", FieldType::Int, "-1",
                "First dataset item the fork reads (data.start_item of every run); -1: "
                "base_step x experiment.base_items_per_step.")
      .optional("experiment.parallel", FieldType::Int, "1",
                "Runs at once on this machine (each a process; the cores are split).")
      .optional("experiment.threads_per_run", FieldType::Int, "0",
                "CPU threads per run; 0: the machine's cores / experiment.parallel.");
  declare_run_group_config(s);
}

std::vector<Arm> read_arms(const Config& cfg, const std::string& key, const YAML::Node& arms) {
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
    // The name becomes a folder under experiment.out: one plain path component.
    static const std::regex plain("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
    if (!std::regex_match(arm.name, plain)) {
      throw ConfigError("config " + cfg.where(k + ".name") + ": arm name '" + arm.name +
                        "' must be 1-64 letters, digits, '.', '_' or '-', not starting with "
                        "'.', '_' or '-' (it names the arm's folder)");
    }
    for (const auto& a : out) {
      if (a.name == arm.name) {
        throw ConfigError("config " + cfg.where(k + ".name") + ": arm '" + arm.name +
                          "' appears twice");
      }
    }
    arm.schedule =
        schedules::make_schedule(arms[i]["schedule"], k + ".schedule", schedules::locator_for(cfg));
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
  const train::TrainerState st = train::read_trainer_state_json(all.back().dir);
  // A run the divergence monitor stopped is finished too.
  return st.run_steps >= steps || !st.stop_reason.empty();
}

namespace {

constexpr const char* kBaseStep = "$base_step";
constexpr const char* kContinuationLr = "$continuation_lr";

// Binds a schedule tree to the base actually used: $base_step and $continuation_lr become
// numbers, and a pythia_cosine whose step_offset is another number than the base step is
// refused (method.md: everything that depends on the base follows it).
void bind_to_base(YAML::Node node, const std::string& key, const Config& cfg,
                  const ExperimentPlan& plan, std::optional<double> continuation_lr) {
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      bind_to_base(node[i], key + "." + std::to_string(i), cfg, plan, continuation_lr);
    }
    return;
  }
  if (!node.IsMap()) return;
  const YAML::Node offset = node["step_offset"];
  if (node["name"] && node["name"].Scalar() == "pythia_cosine" && offset && offset.IsScalar() &&
      offset.Scalar() != kBaseStep && offset.Scalar() != std::to_string(plan.base_step)) {
    throw ConfigError("config " + cfg.where(key + ".step_offset") + ": step_offset " +
                      offset.Scalar() + " pins this cosine to step " + offset.Scalar() +
                      ", but the fork's base is step " + std::to_string(plan.base_step) + " (" +
                      plan.base_reason + "); write step_offset: $base_step");
  }
  for (auto kv : node) {
    const std::string child = key + "." + kv.first.Scalar();
    YAML::Node value = kv.second;
    if (value.IsScalar() && value.Scalar() == kBaseStep) {
      node[kv.first.Scalar()] = plan.base_step;
    } else if (value.IsScalar() && value.Scalar() == kContinuationLr) {
      if (!continuation_lr) {
        throw ConfigError("config " + cfg.where(child) +
                          ": $continuation_lr is the "
                          "continuation's rate; it cannot be used inside the continuation");
      }
      node[kv.first.Scalar()] = *continuation_lr;
    } else {
      bind_to_base(value, child, cfg, plan, continuation_lr);
    }
  }
}

void resolve_base(const Config& cfg, ExperimentPlan& plan) {
  const std::string base = cfg.get_string("experiment.base");
  const int64_t given_step = cfg.get_int("experiment.base_step");
  if (base.rfind("audit:", 0) != 0) {
    fs::path p(base);
    if (p.is_relative()) p = cfg.origin("experiment.base").base_dir / p;
    plan.base = p.lexically_normal();
    const auto named = checkpoint_dir_step(plan.base);
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

// Every run's config: the experiment's resolved config without its own section and
// schedule, then the arm's schedule, the seed, the base and the shared plan, then the
// arm's `set`, each a layer of the run's ConfigLoader. Each is resolved against the run's
// schema here, before any run starts or any folder is made, so a bad key under an arm's
// `set` is a configuration error naming it.
std::vector<std::pair<RunSpec, std::string>> run_configs(const Config& cfg,
                                                         const ExperimentPlan& plan) {
  const ChildConfigs common(cfg, {"experiment", "schedule"}, "the experiment's config");
  ConfigSchema run_schema;
  declare_run_config(run_schema);
  YAML::Node at_steps(YAML::NodeType::Sequence);
  for (const auto& p : plan.probe_plan) at_steps.push_back(p.step);
  std::vector<std::pair<RunSpec, std::string>> planned;
  for (size_t a = 0; a < plan.arms.size(); ++a) {
    const Arm& arm = plan.arms[a];
    for (const int64_t seed : plan.seeds) {
      RunSpec run = planned_run(plan.out, arm.name, seed);
      ConfigLoader loader = common.loader(run_schema);
      const Origin by_plan{
          "the experiment's plan (arm " + arm.name + ", seed " + std::to_string(seed) + ")", 0,
          fs::current_path()};
      const std::vector<std::pair<const char*, YAML::Node>> planned_values = {
          {"run.dir", YAML::Node(run.dir.string())},
          {"run.experiment", YAML::Node(plan.name)},
          {"run.arm", YAML::Node(arm.name)},
          {"train.seed", YAML::Node(seed)},
          {"train.threads", YAML::Node(plan.threads_per_run)},
          {"model.init", YAML::Node(plan.base.string())},
          {"model.base_step", YAML::Node(plan.base_step)},
          {"data.start_item", YAML::Node(plan.data_start_item)},
          {"model.preset", YAML::Node("")},
          {"model.config", YAML::Node(YAML::NodeType::Null)},
          {"schedule", arm.schedule_block},
          {"probe.at_steps", at_steps},
          {"probe.every", YAML::Node(0)},
          {"probe.at_phase_boundaries", YAML::Node(false)}};
      for (const auto& [key, value] : planned_values) loader.add_value(key, value, by_plan);
      const std::string set_key = "experiment.arms." + std::to_string(a) + ".set";
      const Origin by_arm{
          "arm '" + arm.name + "' " + set_key + " (" + cfg.origin(set_key).str() + ")", 0,
          cfg.origin(set_key).base_dir};
      for (const auto& kv : arm.overrides) loader.add_value(kv.first.Scalar(), kv.second, by_arm);
      planned.emplace_back(run, loader.resolve().dump());
    }
  }
  return planned;
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
  YAML::Node continuation = cfg.node("experiment.continuation");
  bind_to_base(continuation, "experiment.continuation", cfg, plan, std::nullopt);
  plan.continuation_lr =
      schedules::make_schedule(continuation, "experiment.continuation", schedules::locator_for(cfg))
          ->lr(0);
  YAML::Node arms = cfg.node("experiment.arms");
  bind_to_base(arms, "experiment.arms", cfg, plan, plan.continuation_lr);
  plan.arms = read_arms(cfg, "experiment.arms", arms);
  const int64_t data_start = cfg.get_int("experiment.data_start_item");
  if (data_start < -1) {
    throw ConfigError("config " + cfg.where("experiment.data_start_item") +
                      ": an item index, or -1 for base_step x experiment.base_items_per_step");
  }
  if (cfg.get_int("data.start_item") != 0) {
    throw ConfigError("config " + cfg.where("data.start_item") +
                      ": a fork sets every run's data.start_item itself; set "
                      "experiment.data_start_item instead");
  }
  plan.data_start_item =
      data_start >= 0 ? data_start : plan.base_step * cfg.get_int("experiment.base_items_per_step");
  const fs::path dataset = cfg.get_path("data.dataset");
  const int64_t items = data::IndexedDataset::open(dataset).num_items();
  if (plan.data_start_item >= items) {
    throw ConfigError("the fork would read from item " + std::to_string(plan.data_start_item) +
                      " of " + dataset.string() + ", which holds " + std::to_string(items) +
                      " items" +
                      (data_start >= 0 ? " (" + cfg.where("experiment.data_start_item") + ")"
                                       : " (base step " + std::to_string(plan.base_step) + " x " +
                                             cfg.where("experiment.base_items_per_step") +
                                             ": the items the base has not seen)") +
                      "; for a base trained on other data, set experiment.data_start_item");
  }
  plan.seeds = cfg.get_int_list("experiment.seeds");
  if (plan.seeds.empty()) throw ConfigError("config " + cfg.where("experiment.seeds") + ": empty");
  plan.set_slots(cfg.get_int("experiment.parallel"), cfg.get_int("experiment.threads_per_run"));
  const int64_t steps = cfg.get_int("train.steps");
  std::vector<NamedSchedule> named;
  for (const auto& a : plan.arms) named.push_back({a.name, a.schedule});
  plan.probe_plan = probe_plan(named, 0, steps, cfg.get_int("probe.every"));

  std::vector<std::pair<RunSpec, std::string>> planned = run_configs(cfg, plan);
  fs::create_directories(plan.out);
  for (auto& [run, config_yaml] : planned) {
    fs::create_directories(run.dir);
    run.config_path = run.dir / "run_config.yaml";
    write_text_atomically(run.config_path, "# written by quantfork experiment: arm " + run.arm +
                                               ", seed " + std::to_string(run.seed) + "\n" +
                                               config_yaml);
    run.finished = run_finished(run.dir, steps);
    plan.runs.push_back(run);
  }
  std::ostringstream plan_csv;
  plan_csv << "step,reasons\n";
  for (const auto& p : plan.probe_plan) {
    plan_csv << p.step << ",";
    for (size_t i = 0; i < p.reasons.size(); ++i) plan_csv << (i ? ";" : "") << p.reasons[i];
    plan_csv << "\n";
  }
  write_text_atomically(plan.out / "probe_plan.csv", plan_csv.str());
  const char* array_task = std::getenv("SLURM_ARRAY_TASK_ID");
  configure_run_groups(cfg, plan,
                       array_task ? std::optional<std::string>(array_task) : std::nullopt);
  return plan;
}

RunSpec planned_run(const fs::path& out, const std::string& group, int64_t seed) {
  RunSpec run;
  run.arm = group;
  run.seed = seed;
  run.dir = out / group / ("seed" + std::to_string(seed));
  return run;
}

ChildConfigs::ChildConfigs(const Config& parent, const std::vector<std::string>& parent_only,
                           std::string source)
    : source_(std::move(source)) {
  YAML::Node common = YAML::Load(parent.dump());
  for (const auto& section : parent_only) common.remove(section);
  YAML::Emitter text;
  text << common;
  text_ = text.c_str();
}

ConfigLoader ChildConfigs::loader(const ConfigSchema& run_schema) const {
  ConfigLoader loader(run_schema);
  loader.add_text(text_, source_);
  return loader;
}

void ExperimentPlan::set_slots(int64_t runs_at_once, int64_t threads) {
  parallel = static_cast<int>(std::max<int64_t>(1, runs_at_once));
  threads_per_run =
      threads > 0 ? static_cast<int>(threads)
                  : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / parallel);
}

}  // namespace qf::experiments
