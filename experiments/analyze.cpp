#include "experiments/analyze.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "core/config_schema.h"
#include "core/errors.h"

namespace qf::experiments {
namespace {

using Key = std::pair<std::int64_t, std::int64_t>;  // (seed, step)

std::string describe(const std::vector<PhaseSelector>& filter) {
  std::vector<std::string> parts;
  for (const auto& s : filter) parts.push_back(s.str());
  return parts.empty() ? "all rows" : "[" + join_names(parts) + "]";
}

// Whether a side's phase filter keeps a probe row. kUnsure: the row is the last probed
// one of its phase occurrence, but the run has no probe at the next step, so whether the
// phase ended there (or its last probe is missing) cannot be told; it is reported.
enum class Kept { kYes, kNo, kUnsure };

// A probe row of one side of a comparison.
struct Cell {
  double value = 0;
  Kept kept = Kept::kYes;
  std::string phase;
};

Kept filter_row(const std::vector<ProbePoint>& probes, std::size_t i,
                const std::vector<PhaseSelector>& filter,
                const std::map<std::pair<std::string, std::int64_t>, std::int64_t>& last) {
  if (filter.empty()) return Kept::kYes;
  const ProbePoint& p = probes[i];
  Kept kept = Kept::kNo;
  for (const auto& sel : filter) {
    if (sel.phase != p.phase) continue;
    if (!sel.last) return Kept::kYes;
    if (last.at({p.phase, p.phase_index}) != p.step) continue;
    // The probe plan holds every phase boundary, so a phase that ended at this step has
    // a probe of the next phase at step + 1; the run's final probe ends its phase too.
    if (i + 1 == probes.size() || probes[i + 1].step == p.step + 1) return Kept::kYes;
    kept = Kept::kUnsure;
  }
  return kept;
}

// Every row of `arm`'s runs by (seed, step), with the arm's filter applied.
std::map<Key, Cell> cells_of(const std::map<std::int64_t, const Run*>& runs,
                             const std::vector<PhaseSelector>& filter) {
  std::map<Key, Cell> out;
  for (const auto& [seed, run] : runs) {
    // The last probed step of each occurrence (phase, phase_index) of a phase.
    std::map<std::pair<std::string, std::int64_t>, std::int64_t> last;
    for (const auto& p : run->probes) last[{p.phase, p.phase_index}] = p.step;
    for (std::size_t i = 0; i < run->probes.size(); ++i) {
      const ProbePoint& p = run->probes[i];
      out[{seed, p.step}] = {p.value, filter_row(run->probes, i, filter, last), p.phase};
    }
  }
  return out;
}

struct Side {
  std::string arm;
  const std::map<std::int64_t, const Run*>& runs;
  std::map<Key, Cell> cells;
};

std::string missing_reason(const Side& side, const Key& key) {
  if (!side.runs.count(key.first)) {
    return "no " + side.arm + " run with seed " + std::to_string(key.first);
  }
  return "no " + side.arm + " probe at step " + std::to_string(key.second);
}

std::vector<double> values_at(const Side& side, std::int64_t step) {
  std::vector<double> out;
  for (const auto& [seed, run] : side.runs) out.push_back(side.cells.at({seed, step}).value);
  return out;
}

// Matches the rows of `arm` and `base` by (seed, step) into `c.pairs` and the values
// into `a` and `b`; every row that finds no partner goes to `c.unpaired` with the reason.
void pair_rows(const Side& arm, const Side& base, const std::string& metric, Comparison& c,
               std::vector<double>& a_values, std::vector<double>& b_values) {
  std::set<Key> keys;
  for (const auto& kv : arm.cells) keys.insert(kv.first);
  for (const auto& kv : base.cells) keys.insert(kv.first);
  for (const Key& key : keys) {
    const auto a = arm.cells.find(key), b = base.cells.find(key);
    const bool has_a = a != arm.cells.end(), has_b = b != base.cells.end();
    // A row a phase filter leaves out needs no partner.
    if ((has_a && a->second.kept == Kept::kNo) || (has_b && b->second.kept == Kept::kNo)) continue;
    const Side* unsure = has_a && a->second.kept == Kept::kUnsure   ? &arm
                         : has_b && b->second.kept == Kept::kUnsure ? &base
                                                                    : nullptr;
    if (unsure) {
      const Cell& cell = (unsure == &arm ? a : b)->second;
      c.unpaired.push_back({unsure->arm, key.first, key.second,
                            "last " + cell.phase + " probe of its phase, but no probe at step " +
                                std::to_string(key.second + 1) + " shows the phase ended there"});
      continue;
    }
    if (!has_a || !has_b) {
      c.unpaired.push_back({has_a ? arm.arm : base.arm, key.first, key.second,
                            has_a ? missing_reason(base, key) : missing_reason(arm, key)});
      continue;
    }
    bool finite = true;
    for (const auto* side : {&arm, &base}) {
      const double v = (side == &arm ? a : b)->second.value;
      if (!std::isfinite(v)) {
        c.unpaired.push_back({side->arm, key.first, key.second, "non-finite " + metric});
        finite = false;
      }
    }
    if (!finite) continue;
    c.pairs.push_back(key);
    a_values.push_back(a->second.value);
    b_values.push_back(b->second.value);
  }
}

// The run-level test over the seeds of `c.pairs` (method.md): absent, with the reason,
// below two seeds.
void test_runs(const std::vector<double>& a_values, const std::vector<double>& b_values,
               Comparison& c, std::vector<std::string>& warnings) {
  std::vector<std::int64_t> seeds;
  for (const auto& key : c.pairs) seeds.push_back(key.first);
  const PairedTTest t = clustered_paired_t_test(a_values, b_values, seeds, &c.seed_means);
  if (c.seed_means.size() >= 2) {
    c.paired_runs = t;
    return;
  }
  c.paired_runs_absent = "only seed " + std::to_string(c.seed_means.front().cluster) +
                         " has matched probe pairs; a test over seeds needs at least 2";
  warnings.push_back("arm '" + c.arm + "' vs '" + c.baseline + "': no run-level test (" +
                     c.paired_runs_absent + ")");
}

// The phase filter of `arm`: its own entry; for a weight average's arm ("<arm>+ema")
// without one, its raw arm's; otherwise every row.
std::vector<PhaseSelector> filter_of(const AnalyzeOptions& o, const std::string& arm) {
  if (auto it = o.phase_filter.find(arm); it != o.phase_filter.end()) return it->second;
  const std::string suffix = kEmaArmSuffix;
  if (arm.size() > suffix.size() &&
      arm.compare(arm.size() - suffix.size(), suffix.size(), suffix) == 0) {
    if (auto it = o.phase_filter.find(arm.substr(0, arm.size() - suffix.size()));
        it != o.phase_filter.end()) {
      return it->second;
    }
  }
  return {};
}

Comparison compare(const Side& arm, const Side& base, const AnalyzeOptions& o,
                   std::vector<std::string>& warnings) {
  Comparison c;
  c.arm = arm.arm;
  c.baseline = base.arm;
  c.phase_filter = filter_of(o, arm.arm);
  std::vector<double> a_values, b_values;
  pair_rows(arm, base, o.metric, c, a_values, b_values);
  if (c.pairs.empty()) {
    throw Error("arm '" + arm.arm + "': none of its probe rows (phase filter " +
                describe(c.phase_filter) + ") pairs with a row of baseline '" + base.arm +
                "' at the same seed and step (" + std::to_string(c.unpaired.size()) +
                " row(s) without a partner)");
  }
  c.paired = paired_t_test(a_values, b_values);
  if (c.pairs.size() < 2) {
    warnings.push_back("arm '" + arm.arm + "' vs '" + base.arm +
                       "': a single pair, so the paired test is undefined");
  }
  test_runs(a_values, b_values, c, warnings);
  if (!c.unpaired.empty()) {
    std::vector<std::string> first;
    for (std::size_t i = 0; i < std::min<std::size_t>(3, c.unpaired.size()); ++i) {
      const auto& u = c.unpaired[i];
      first.push_back(u.arm + " seed " + std::to_string(u.seed) + " step " +
                      std::to_string(u.step) + " (" + u.reason + ")");
    }
    warnings.push_back(
        "arm '" + arm.arm + "' vs '" + base.arm + "': " + std::to_string(c.unpaired.size()) +
        " probe row(s) cannot be paired and are left out of the paired test: " + join_names(first) +
        (c.unpaired.size() > 3 ? ", ..." : ""));
  }
  std::vector<const Run*> both;
  for (const Side* side : {&arm, &base}) {
    for (const auto& kv : side->runs) both.push_back(kv.second);
  }
  c.final_step = common_final_step(both);
  if (c.final_step) {
    const auto fa = values_at(arm, *c.final_step), fb = values_at(base, *c.final_step);
    c.welch_final = welch_t_test(fa, fb);
    c.wins = pairwise_wins(fa, fb);
  } else {
    const double nan = std::nan("");
    c.welch_final = {arm.runs.size(), base.runs.size(), nan, nan, nan, nan, nan, nan};
    warnings.push_back("arm '" + arm.arm + "' vs '" + base.arm +
                       "': no step has a value in every run of both arms, so there is no final "
                       "probe for Welch's test and the pairwise wins");
  }
  return c;
}

// A Block of `key` mapping arm names to an entry or a list of entries (scalars).
std::map<std::string, std::vector<std::string>> per_arm_lists(const Config& cfg,
                                                              const std::string& key,
                                                              const std::string& what,
                                                              const std::string& example,
                                                              const std::string& entries) {
  const YAML::Node block = cfg.node(key);
  if (!block.IsMap() && !block.IsNull()) {
    throw ConfigError("config " + cfg.where(key) + ": expected a map from arm to " + what +
                      ", e.g. " + example);
  }
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& kv : block) {
    const std::string arm = kv.first.Scalar(), arm_key = key + "." + arm;
    const YAML::Node& value = kv.second;
    std::vector<std::string>& list = out[arm];
    if (value.IsScalar()) {
      list.push_back(value.Scalar());
    } else if (value.IsSequence()) {
      for (const auto& e : value) {
        if (!e.IsScalar()) {
          throw ConfigError("config " + cfg.where(arm_key) + ": expected " + what +
                            ", got a block");
        }
        list.push_back(e.Scalar());
      }
    } else {
      throw ConfigError("config " + cfg.where(arm_key) + ": expected an entry or a list (" +
                        entries + ")");
    }
  }
  return out;
}

}  // namespace

void declare_analyze_config(ConfigSchema& s) {
  s.optional("analyze.metric", FieldType::String, "gap_int4_pct",
             "The /probe column compared: any numeric one (gap_int4_pct, gap_int8_pct, "
             "ppl_fp32, kurtosis_mean, ...). Lower is better: a win is arm < baseline.")
      .optional("analyze.baseline", FieldType::String, "cosine",
                "The arm every other arm is compared with; differences are arm - baseline.")
      .optional("analyze.arms", FieldType::StringList, "[]",
                "The arms compared with the baseline, in this order; empty: every other arm "
                "found, sorted by name.")
      .optional("analyze.phase_filter", FieldType::Block, "{oli: settled}",
                "Per arm, the probe rows that enter its paired test: a phase name (every row "
                "in that phase), NAME:last (the probe at the last step of each occurrence of "
                "the phase in a run: its last probe, when the run also probed the next step "
                "or ended there; otherwise it is reported as unpaired), settled (= cool:last, "
                "OLI's settled point: the last step "
                "of each cool phase), or all; one entry or a list. Arms without an entry "
                "keep every row. Blocks merge key by key: set an arm to all to drop its "
                "default filter.")
      .optional("analyze.controls", FieldType::Block, "{oli: cosine_matched}",
                "Per compared arm, further baselines (an arm name or a list) it is also "
                "compared with, by the same tests, when some run has that arm; each "
                "comparison in the JSON names its baseline. The default compares OLI with "
                "cosine_matched (the cosine continuation scaled to OLI's mean rate), which "
                "tells 'OLI is lower' apart from 'a lower learning rate is lower'. A control "
                "no run has, or that is analyze.baseline already, is left out with a note. "
                "Blocks merge key by key: set an arm to [] to drop its default controls.")
      .optional("analyze.weights", FieldType::String, "raw",
                "Whose /probe rows: raw (the trained weights), ema (the train.ema average's "
                "rows) or both (every run also appears as arm '<arm>+ema', so e.g. "
                "analyze.arms: [cosine+ema] compares cosine + EMA with cosine over the same "
                "runs, seed by seed).");
}

std::optional<WeightsSelection> weights_from_name(const std::string& name) {
  for (WeightsSelection w :
       {WeightsSelection::kRaw, WeightsSelection::kEma, WeightsSelection::kBoth}) {
    if (name == weights_name(w)) return w;
  }
  return std::nullopt;
}

const char* weights_name(WeightsSelection w) {
  switch (w) {
    case WeightsSelection::kEma:
      return "ema";
    case WeightsSelection::kBoth:
      return "both";
    default:
      return "raw";
  }
}

std::vector<PhaseSelector> parse_phase_filter(const std::vector<std::string>& entries,
                                              const std::string& where) {
  std::vector<PhaseSelector> out;
  for (const auto& e : entries) {
    if (e == "all") {
      if (entries.size() > 1) throw ConfigError(where + ": 'all' cannot be combined with phases");
      return {};
    }
    if (e == "settled") {
      out.push_back({"cool", true});
      continue;
    }
    const auto colon = e.find(':');
    PhaseSelector sel{e.substr(0, colon), colon != std::string::npos};
    if (sel.phase.empty() || (sel.last && e.substr(colon + 1) != "last")) {
      throw ConfigError(where + ": '" + e +
                        "' is not a phase filter entry; expected all, settled, NAME or NAME:last");
    }
    out.push_back(sel);
  }
  return out;
}

AnalyzeOptions analyze_options(const Config& cfg) {
  AnalyzeOptions o;
  o.metric = cfg.get_string("analyze.metric");
  if (!is_numeric_probe_column(o.metric)) {
    std::vector<std::string> cols = numeric_probe_columns();
    throw ConfigError("config " + cfg.where("analyze.metric") + ": '" + o.metric +
                      "' is not a numeric /probe column; expected one of: " + join_names(cols));
  }
  const std::string weights = cfg.get_string("analyze.weights");
  const auto selection = weights_from_name(weights);
  if (!selection) {
    throw ConfigError("config " + cfg.where("analyze.weights") +
                      ": expected raw, ema or both, not '" + weights + "'");
  }
  o.weights = *selection;
  o.baseline = cfg.get_string("analyze.baseline");
  o.arms = cfg.get_string_list("analyze.arms");
  for (auto& [arm, entries] : per_arm_lists(cfg, "analyze.phase_filter", "phase filter entries",
                                            "{oli: settled}", "all, settled, NAME, NAME:last")) {
    o.phase_filter[arm] =
        parse_phase_filter(entries, "config " + cfg.where("analyze.phase_filter." + arm));
  }
  o.controls.clear();
  for (auto& [arm, controls] :
       per_arm_lists(cfg, "analyze.controls", "arm names", "{oli: cosine_matched}", "arm names")) {
    for (const auto& c : controls) {
      if (c == arm) {
        throw ConfigError("config " + cfg.where("analyze.controls." + arm) + ": arm '" + arm +
                          "' cannot be its own control");
      }
    }
    if (!controls.empty()) o.controls[arm] = std::move(controls);
  }
  return o;
}

Analysis analyze(const std::vector<Run>& runs, const AnalyzeOptions& o) {
  if (!is_numeric_probe_column(o.metric)) {
    throw ConfigError("analyze.metric '" + o.metric +
                      "' is not a numeric /probe column; "
                      "expected one of: " +
                      join_names(numeric_probe_columns()));
  }
  const std::vector<std::string> arms = arms_of(runs);
  if (std::find(arms.begin(), arms.end(), o.baseline) == arms.end()) {
    throw ConfigError("analyze.baseline: no run has arm '" + o.baseline +
                      "'; the arms found are: " + join_names(arms));
  }
  std::vector<std::string> compared = o.arms;
  if (compared.empty()) {
    for (const auto& a : arms) {
      if (a != o.baseline) compared.push_back(a);
    }
  }
  if (compared.empty()) {
    throw ConfigError("analyze: the runs have only the baseline arm '" + o.baseline +
                      "'; nothing to compare it with");
  }
  for (const auto& a : compared) {
    if (a == o.baseline || std::find(arms.begin(), arms.end(), a) == arms.end()) {
      throw ConfigError("analyze.arms: '" + a + "' is " +
                        (a == o.baseline ? "the baseline" : "not an arm of any run") +
                        "; the arms found are: " + join_names(arms));
    }
  }
  Analysis out;
  out.metric = o.metric;
  out.baseline = o.baseline;
  out.weights = weights_name(o.weights);
  std::map<std::string, std::map<std::int64_t, const Run*>> by_arm;
  for (const auto& r : runs) {
    by_arm[r.arm][r.seed] = &r;
    out.runs.push_back({r.file.string(), r.experiment, r.arm, r.seed, r.probes.size()});
  }
  for (const auto& [arm, filter] : o.phase_filter) {
    if (!filter.empty() && !by_arm.count(arm)) {
      out.warnings.push_back("analyze.phase_filter names arm '" + arm + "', which no run has");
    }
  }
  const auto side = [&](const std::string& arm) {
    return Side{arm, by_arm.at(arm), cells_of(by_arm.at(arm), filter_of(o, arm))};
  };
  const Side base = side(o.baseline);
  for (const auto& a : compared) out.comparisons.push_back(compare(side(a), base, o, out.warnings));
  for (const auto& a : compared) {
    const auto it = o.controls.find(a);
    if (it == o.controls.end()) continue;
    for (const auto& control : it->second) {
      if (control == a) throw ConfigError("analyze.controls: arm '" + a + "' is its own control");
      const std::string what = "'" + a + "' vs control '" + control + "' (analyze.controls)";
      if (control == o.baseline) {
        out.notes.push_back(what + ": '" + control + "' is the baseline, compared above");
      } else if (!by_arm.count(control)) {
        out.notes.push_back(what + " not computed: no run has arm '" + control + "'");
      } else {
        out.comparisons.push_back(compare(side(a), side(control), o, out.warnings));
      }
    }
  }
  return out;
}

Analysis analyze_inputs(const std::vector<std::string>& inputs, const AnalyzeOptions& options) {
  std::vector<std::string> warnings;
  const auto runs =
      load_runs(find_run_files(inputs), options.metric, false, warnings, options.weights);
  Analysis a = analyze(runs, options);
  a.warnings.insert(a.warnings.begin(), warnings.begin(), warnings.end());
  for (const auto& w : a.warnings) spdlog::warn("analyze: {}", w);
  for (const auto& n : a.notes) spdlog::info("analyze: {}", n);
  return a;
}

}  // namespace qf::experiments
