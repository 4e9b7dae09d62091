#include "experiments/sweep.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <limits>
#include <sstream>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/run_file.h"
#include "quant_probe/audit.h"
#include "quant_probe/probe_config.h"
#include "schedules/registry.h"
#include "train/checkpoint.h"
#include "train/train_config.h"

namespace fs = std::filesystem;

namespace qf::experiments {

void declare_sweep_config(ConfigSchema& s) {
  declare_run_config(s);
  quant::declare_audit_config(s);
  s.optional("sweep.name", FieldType::String, "sweep",
             "Sweep name: runs go to sweep.out/<name>/<point>/seed<k>/, the table and report "
             "to sweep.out/<name>/.")
      .optional("sweep.out", FieldType::Path, "sweep-out", "Output folder.")
      .optional("sweep.grid", FieldType::Block, "{}",
                "{dotted.key: [value, ...], ...}: every combination of the values is a point "
                "(a cartesian product, keys in the order written). Any training key, schedule "
                "parameters included (schedule.max_lr).")
      .optional("sweep.list", FieldType::Block, "[]",
                "[{dotted.key: value, ...}, ...]: points given one by one (for keys that must "
                "change together); with a grid, every entry is combined with every grid point.")
      .optional("sweep.seeds", FieldType::IntList, "[1]",
                "Seeds of every point (train.seed: the initialization and the data order).")
      .optional("sweep.checkpoint_every", FieldType::Int, "0",
                "N > 0: every run checkpoints at 1, 2, 4, ..., 512 like Pythia, then every N "
                "updates and at the end (checkpoint.at_steps); 0: as checkpoint.* says. The "
                "audit reads these checkpoints.")
      .at_least(0)
      .optional("sweep.int8_small_pct", FieldType::Float, "1.0",
                "A run shows the study's three phases when FP32 converges inside it, the INT4 "
                "gap has a divergence onset after that, and the INT8 gap stays below this "
                "(percent) from convergence on.")
      .above(0)
      .optional("sweep.fp32_flat_pct", FieldType::Float, "10.0",
                "... and FP32 perplexity at the end stays within this many percent of its "
                "value at convergence (the study's FP32 barely moves; a model that overfits "
                "its corpus does not count).")
      .above(0)
      .optional("sweep.parallel", FieldType::Int, "1",
                "Runs at once on this machine (each a process; the cores are split).")
      .optional("sweep.threads_per_run", FieldType::Int, "0",
                "CPU threads per run; 0: the machine's cores / sweep.parallel.");
}

std::vector<int64_t> pythia_like_checkpoints(int64_t steps, int64_t every) {
  std::vector<int64_t> at;
  for (int64_t s = 1; s <= 512 && s <= steps; s *= 2) at.push_back(s);
  for (int64_t s = every; every > 0 && s <= steps; s += every) {
    if (s > 512) at.push_back(s);
  }
  if (at.empty() || at.back() != steps) at.push_back(steps);
  return at;
}

std::string SweepPoint::label() const {
  if (keys.empty()) return "base";
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) {
    // The last part of a dotted key says what it is (weight_decay, max_lr); a key whose
    // last part is ambiguous on its own (dataset, config) keeps its section.
    const auto dot = keys[i].rfind('.');
    std::string shown = dot == std::string::npos ? keys[i] : keys[i].substr(dot + 1);
    for (size_t j = 0; j < keys.size(); ++j) {
      if (j != i && keys[j].size() > shown.size() &&
          keys[j].compare(keys[j].size() - shown.size(), shown.size(), shown) == 0) {
        shown = keys[i];
      }
    }
    out += (i ? ", " : "") + shown + "=" + values[i];
  }
  return out;
}

namespace {

std::string flow(const YAML::Node& node) {
  YAML::Emitter e;
  e << YAML::Flow << node;
  return e.c_str();
}

}  // namespace

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

namespace {

// 8 hex digits of FNV-1a over the text.
std::string short_hash(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08llx", static_cast<unsigned long long>(h & 0xffffffffull));
  return buf;
}

struct Assignment {
  std::string key;
  YAML::Node value;
  std::string from;  // "sweep.grid" or "sweep.list.3"
};

void check_swept_key(const Config& cfg, const std::string& where, const std::string& key) {
  static const std::vector<std::pair<std::string, std::string>> kept = {
      {"sweep.", "the sweep's own keys cannot be swept"},
      {"audit.", "the audit is the same for every run"},
      {"run.", "the sweep names every run's folder itself"},
      {"train.seed", "seeds come from sweep.seeds"},
      {"train.threads", "threads come from sweep.threads_per_run"},
  };
  for (const auto& [prefix, why] : kept) {
    if (key.rfind(prefix, 0) == 0) {
      throw ConfigError("config " + cfg.where(where) + ": key '" + key +
                        "' cannot be swept: " + why);
    }
  }
  if (key.empty() || key.front() == '.' || key.back() == '.' ||
      key.find("..") != std::string::npos) {
    throw ConfigError("config " + cfg.where(where) + ": '" + key + "' is not a dotted key");
  }
}

// The grid's points (its cartesian product), each a list of assignments.
std::vector<std::vector<Assignment>> grid_points(const Config& cfg) {
  const YAML::Node grid = cfg.node("sweep.grid");
  std::vector<std::vector<Assignment>> points{{}};
  if (grid.IsNull()) return points;
  if (!grid.IsMap()) {
    throw ConfigError("config " + cfg.where("sweep.grid") +
                      ": expected a mapping {dotted.key: [value, ...]}");
  }
  for (const auto& kv : grid) {
    const std::string key = kv.first.Scalar();
    check_swept_key(cfg, "sweep.grid", key);
    if (!kv.second.IsSequence() || kv.second.size() == 0) {
      throw ConfigError("config " + cfg.where("sweep.grid") + ": key '" + key +
                        "' needs a non-empty list of values, e.g. " + key + ": [a, b]");
    }
    std::vector<std::vector<Assignment>> next;
    for (const auto& p : points) {
      for (const auto& v : kv.second) {
        auto q = p;
        q.push_back({key, YAML::Clone(v), "sweep.grid"});
        next.push_back(std::move(q));
      }
    }
    points = std::move(next);
  }
  return points;
}

std::vector<std::vector<Assignment>> list_points(const Config& cfg) {
  const YAML::Node list = cfg.node("sweep.list");
  std::vector<std::vector<Assignment>> points;
  if (list.IsNull()) return points;
  if (!list.IsSequence()) {
    throw ConfigError("config " + cfg.where("sweep.list") +
                      ": expected a list [{dotted.key: value, ...}, ...]");
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = "sweep.list." + std::to_string(i);
    if (!list[i].IsMap() || list[i].size() == 0) {
      throw ConfigError("config " + cfg.where("sweep.list") + ": entry " + std::to_string(i) +
                        " must be a non-empty mapping {dotted.key: value, ...}");
    }
    std::vector<Assignment> p;
    for (const auto& kv : list[i]) {
      check_swept_key(cfg, "sweep.list", kv.first.Scalar());
      p.push_back({kv.first.Scalar(), YAML::Clone(kv.second), where});
    }
    points.push_back(std::move(p));
  }
  return points;
}

// Every point: the list's entries × the grid's points (either alone when the other is
// empty; the base config alone when both are).
std::vector<std::vector<Assignment>> all_points(const Config& cfg) {
  const auto grid = grid_points(cfg);
  const auto list = list_points(cfg);
  if (list.empty()) return grid;
  std::vector<std::vector<Assignment>> out;
  for (const auto& l : list) {
    for (const auto& g : grid) {
      auto p = l;
      for (const auto& a : g) {
        for (const auto& b : l) {
          if (a.key == b.key) {
            throw ConfigError("config " + cfg.where("sweep.grid") + ": key '" + a.key +
                              "' is in both sweep.grid and " + b.from +
                              "; a point cannot set it twice");
          }
        }
        p.push_back(a);
      }
      out.push_back(std::move(p));
    }
  }
  return out;
}

// The keys of `tree` (a dumped config section) that `schema` declares, as a YAML tree
// (Blocks whole): what the audit of a run is configured with.
void keep_declared(const YAML::Node& tree, const std::string& prefix, const ConfigSchema& schema,
                   YAML::Node out) {
  for (const auto& kv : tree) {
    const std::string key = prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
    const FieldSpec* spec = schema.find(key);
    if (spec) {
      out[kv.first.Scalar()] = YAML::Clone(kv.second);
    } else if (kv.second.IsMap()) {
      YAML::Node child(YAML::NodeType::Map);
      keep_declared(kv.second, key, schema, child);
      if (child.size() > 0) out[kv.first.Scalar()] = child;
    }
  }
}

// The audit of one run: the probe keys of the run's config (a point may sweep them) and
// the sweep's audit.* keys, without audit.checkpoints (the sweep names the run's).
std::string audit_config_yaml(const Config& run_cfg, const Config& sweep_cfg) {
  ConfigSchema audit_schema;
  quant::declare_probe_config(audit_schema);
  quant::declare_audit_config(audit_schema);
  const YAML::Node all = YAML::Load(run_cfg.dump());
  YAML::Node kept(YAML::NodeType::Map);
  keep_declared(all, "", audit_schema, kept);
  const YAML::Node audit = YAML::Load(sweep_cfg.dump())["audit"];
  YAML::Node a(YAML::NodeType::Map);
  for (const auto& kv : audit) {
    if (kv.first.Scalar() != "checkpoints") a[kv.first.Scalar()] = YAML::Clone(kv.second);
  }
  kept["audit"] = a;
  YAML::Emitter e;
  e << kept;
  return std::string("# written by quantfork sweep: the audit of this run's checkpoints\n") +
         e.c_str() + "\n";
}

// The audit of `run_dir` holds its phases and a row for every checkpoint it has.
bool audit_complete(const fs::path& run_dir) {
  const fs::path file = run_dir / "audit.h5";
  if (!fs::exists(file)) return false;
  try {
    const AuditFile audit = AuditFile::open_read_only(file.string());
    if (!audit.landmarks()) return false;
    const auto rows = audit.read_audit();
    for (const auto& c : train::list_checkpoints(run_dir / "checkpoints")) {
      const bool there = std::any_of(rows.begin(), rows.end(), [&](const AuditRow& r) {
        return r.step == c.step && r.phase != "failed";
      });
      if (!there) return false;
    }
    return true;
  } catch (const Error&) {
    return false;  // unreadable (e.g. killed while created): the audit redoes it
  }
}

}  // namespace

namespace {

// Point p of the sweep: its assignments in flow YAML and an id from its index and a hash
// of them; the keys it sets join plan.keys. ConfigError when an earlier point is the same.
SweepPoint make_point(const Config& cfg, const std::vector<Assignment>& assignments, size_t p,
                      SweepPlan& plan) {
  SweepPoint point;
  std::vector<std::string> canonical;
  for (const auto& a : assignments) {
    point.keys.push_back(a.key);
    point.values.push_back(flow(a.value));
    canonical.push_back(a.key + "=" + point.values.back());
    if (std::find(plan.keys.begin(), plan.keys.end(), a.key) == plan.keys.end()) {
      plan.keys.push_back(a.key);
    }
  }
  std::sort(canonical.begin(), canonical.end());
  std::string joined;
  for (const auto& c : canonical) joined += c + "\n";
  point.id = std::string(p < 10 ? "p0" : "p") + std::to_string(p) + "-" + short_hash(joined);
  for (const auto& q : plan.points) {
    if (q.label() == point.label()) {
      throw ConfigError("config " + cfg.where("sweep.grid") + ": point " + point.label() +
                        " appears twice (" + q.id + " and " + point.id + ")");
    }
  }
  return point;
}

// points.csv: a row per point, a column per swept key.
std::string points_csv(const SweepPlan& plan) {
  std::ostringstream out;
  out << "point";
  for (const auto& k : plan.keys) out << "," << k;
  out << "\n";
  for (const auto& p : plan.points) {
    out << p.id;
    for (const auto& k : plan.keys) {
      const auto at = std::find(p.keys.begin(), p.keys.end(), k);
      out << "," << (at == p.keys.end() ? "" : csv_field(p.values[at - p.keys.begin()]));
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace

SweepPlan plan_sweep(const Config& cfg) {
  SweepPlan plan;
  plan.name = cfg.get_string("sweep.name");
  plan.out = fs::absolute(cfg.get_path("sweep.out") / plan.name);
  plan.seeds = cfg.get_int_list("sweep.seeds");
  if (plan.seeds.empty()) throw ConfigError("config " + cfg.where("sweep.seeds") + ": empty");
  plan.int8_small_pct = cfg.get_float("sweep.int8_small_pct");
  plan.fp32_flat_pct = cfg.get_float("sweep.fp32_flat_pct");
  const int64_t checkpoint_every = cfg.get_int("sweep.checkpoint_every");
  if (cfg.is_null("probe.eval.dataset") && cfg.is_null("probe.eval.text")) {
    throw ConfigError("config " + cfg.where("probe.eval.dataset") +
                      ": the sweep audits every run on a validation set; set probe.eval.dataset "
                      "(or probe.eval.text)");
  }
  ExperimentPlan& runs = plan.runs;
  runs.kind = "sweep";
  runs.name = plan.name;
  runs.out = plan.out;
  runs.set_slots(cfg.get_int("sweep.parallel"), cfg.get_int("sweep.threads_per_run"));
  runs.timeout_s = cfg.get_float("dist.timeout_s");

  // Every run's config: the sweep's resolved config without sweep.* and audit.*, the
  // point's assignments (each a layer naming where it came from), the seed and folder.
  const ChildConfigs common(cfg, {"sweep", "audit"}, "the sweep's config");
  ConfigSchema run_schema;
  declare_run_config(run_schema);
  const fs::path grid_dir = cfg.origin("sweep.grid").base_dir;
  const fs::path list_dir = cfg.origin("sweep.list").base_dir;

  struct Planned {
    RunSpec run;
    std::string config_yaml, audit_yaml;
  };
  std::vector<Planned> planned;
  const auto points = all_points(cfg);
  for (size_t p = 0; p < points.size(); ++p) {
    SweepPoint point = make_point(cfg, points[p], p, plan);
    const std::string context = "sweep point " + point.id + " (" + point.label() + ")";
    for (const int64_t seed : plan.seeds) {
      RunSpec run = planned_run(plan.out, point.id, seed);
      ConfigLoader loader = common.loader(run_schema);
      for (const auto& a : points[p]) {
        const std::string where = a.from == "sweep.grid" ? "sweep.grid" : "sweep.list";
        loader.add_value(a.key, a.value,
                         Origin{a.from + "." + a.key + " (" + cfg.origin(where).str() + ")", 0,
                                a.from == "sweep.grid" ? grid_dir : list_dir});
      }
      loader.add_value("run.dir", YAML::Node(run.dir.string()), Origin{"the sweep", 0, {}});
      loader.add_value("run.experiment", YAML::Node(plan.name), Origin{"the sweep", 0, {}});
      loader.add_value("run.arm", YAML::Node(point.id), Origin{"the sweep", 0, {}});
      loader.add_value("train.seed", YAML::Node(seed), Origin{"sweep.seeds", 0, {}});
      loader.add_value("train.threads", YAML::Node(runs.threads_per_run),
                       Origin{"sweep.threads_per_run", 0, {}});
      Config run_cfg;
      try {
        run_cfg = loader.resolve();
        if (checkpoint_every > 0) {
          YAML::Node at(YAML::NodeType::Sequence);
          for (int64_t s :
               pythia_like_checkpoints(run_cfg.get_int("train.steps"), checkpoint_every)) {
            at.push_back(s);
          }
          loader.add_value("checkpoint.at_steps", at, Origin{"sweep.checkpoint_every", 0, {}});
          run_cfg = loader.resolve();
        }
        // Everything a run checks when it starts, checked now for every point.
        train::train_options(run_cfg);
        schedules::make_schedule(run_cfg, "schedule");
      } catch (const ConfigError& e) {
        throw ConfigError(context + ": " + e.what());
      }
      run.followup = {"audit",
                      "--config",
                      (run.dir / "audit_config.yaml").string(),
                      "--out",
                      (run.dir / "audit.h5").string(),
                      (run.dir / "checkpoints" / "step*").string()};
      planned.push_back({run, run_cfg.dump(), audit_config_yaml(run_cfg, cfg)});
      plan.point_of.push_back(plan.points.size());
    }
    plan.points.push_back(std::move(point));
  }

  fs::create_directories(plan.out);
  for (auto& [run, config_yaml, audit_yaml] : planned) {
    fs::create_directories(run.dir);
    run.config_path = run.dir / "run_config.yaml";
    write_text_atomically(run.config_path, "# written by quantfork sweep: point " + run.arm +
                                               ", seed " + std::to_string(run.seed) + "\n" +
                                               config_yaml);
    write_text_atomically(run.dir / "audit_config.yaml", audit_yaml);
    run.finished = run_finished(run.dir, YAML::Load(config_yaml)["train"]["steps"].as<int64_t>());
    run.followup_done = run.finished && audit_complete(run.dir);
    runs.runs.push_back(run);
  }
  write_text_atomically(plan.out / "points.csv", points_csv(plan));
  return plan;
}

}  // namespace qf::experiments
