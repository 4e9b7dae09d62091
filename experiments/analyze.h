#pragma once
// `quantfork analyze`: the fork experiment's statistics over run files (method.md,
// "Statistics"). For a metric (a numeric /probe column, default gap_int4_pct), a
// baseline arm (default cosine) and each other arm:
// - paired t-test over probe rows matched by (seed, step), d = arm − baseline, after the
//   arm's phase filter (analyze.phase_filter); n counts probe pairs;
// - the run-level paired test: each seed's matched differences averaged, then a paired
//   t-test over seeds (n counts seeds, df = seeds − 1). Probes within one run are
//   correlated, so the probe-level p is optimistic; both are reported;
// - Welch's t-test on the final probe of each seed, final = the largest step that every
//   run of both arms has a (finite) value at;
// - pairwise wins on those final probes: arm_i < baseline_j, out of seeds × seeds.
// Besides the baseline, an arm may have controls (analyze.controls): further baselines it
// is compared with in the same way when the runs have them, e.g. OLI against
// cosine_matched, the cosine continuation scaled to OLI's mean rate, which tells "OLI is
// lower" apart from "a lower learning rate is lower".
// Rows that cannot be paired (a missing seed, a missing step, a non-finite value) are
// listed in Comparison::unpaired and summarised in Analysis::warnings, never silently
// dropped. Rows the phase filter leaves out are not "unpaired": that is by design.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "experiments/run_set.h"
#include "experiments/statistics.h"

namespace qf::experiments {

// One entry of a phase filter: rows whose phase is `phase`; with `last`, only the row at
// the last step of each occurrence of it (each phase_index) in a run. The shared probe
// plan holds every phase boundary and settled point, so a row ends its occurrence when
// it is the occurrence's last probed row and the run's next probe is at the very next
// step (the next phase's first), or it is the run's final probe (the run ended in that
// phase). `cool:last` is thus OLI's settled point. A last probed row whose next step was
// not probed cannot be told from a missing settled probe: it is reported as unpaired,
// never silently used in its place.
struct PhaseSelector {
  std::string phase;
  bool last = false;
  std::string str() const { return last ? phase + ":last" : phase; }  // as configured
};

struct AnalyzeOptions {
  std::string metric = "gap_int4_pct";
  std::string baseline = "cosine";
  std::vector<std::string> arms;  // compared with the baseline; empty: every other arm
  // Per arm; an arm without an entry (or with an empty list) keeps every row.
  std::map<std::string, std::vector<PhaseSelector>> phase_filter;
  // Per compared arm, the further baselines it is also compared with when some run has
  // them (the configuration's default, also for callers that build options in code).
  std::map<std::string, std::vector<std::string>> controls = {{"oli", {"cosine_matched"}}};
  // Whose /probe rows: the trained weights', the train.ema average's, or both (each run
  // then also appears as arm "<arm>+ema", whose phase filter is <arm>'s unless it has one).
  WeightsSelection weights = WeightsSelection::kRaw;
};

// "raw", "ema", "both", and back; nullopt for another name.
const char* weights_name(WeightsSelection weights);
std::optional<WeightsSelection> weights_from_name(const std::string& name);

// What n counts in each test: the JSON's "n_counts" and the tables' wording.
inline constexpr const char* kPairedCounts = "matched (seed, step) probe pairs";
inline constexpr const char* kPairedRunsCounts =
    "seeds with matched probe pairs, a seed's difference being the mean of its matched "
    "differences";
inline constexpr const char* kWelchCounts = "runs (seeds) of each arm at the final probe";
inline constexpr const char* kWinsCounts = "(arm seed, baseline seed) pairs at the final probe";

// analyze.metric, analyze.baseline, analyze.arms, analyze.phase_filter,
// analyze.controls, documented.
void declare_analyze_config(ConfigSchema& schema);
// ConfigError naming the key and its origin for an unknown metric or a malformed filter.
AnalyzeOptions analyze_options(const Config& cfg);
// One phase_filter entry: "all" (no filter), "settled" (= cool:last), "NAME" or
// "NAME:last". ConfigError prefixed with `where` otherwise.
std::vector<PhaseSelector> parse_phase_filter(const std::vector<std::string>& entries,
                                              const std::string& where);

struct UnpairedRow {
  std::string arm;  // the arm whose row has no partner
  std::int64_t seed = 0, step = 0;
  std::string reason;
};

struct Comparison {
  std::string arm;
  std::string baseline;  // Analysis::baseline, or a control of the arm
  std::vector<PhaseSelector> phase_filter;
  std::vector<std::pair<std::int64_t, std::int64_t>> pairs;  // (seed, step), sorted
  PairedTTest paired;
  // The run-level test over seeds; absent (with the reason) when fewer than two seeds
  // have matched pairs, since a test over one seed has no variance to speak of.
  std::optional<PairedTTest> paired_runs;
  std::string paired_runs_absent;
  std::vector<ClusterMean> seed_means;     // cluster = seed; what paired_runs tests
  std::optional<std::int64_t> final_step;  // absent: no step common to every run
  TwoSampleTTest welch_final;              // NaN when there is no final step
  PairwiseWins wins;
  std::vector<UnpairedRow> unpaired;
};

struct RunSummary {
  std::string file, experiment, arm;
  std::int64_t seed = 0;
  std::size_t probes = 0;
};

struct Analysis {
  std::string metric, baseline;
  std::string weights = "raw";  // analyze.weights
  std::vector<RunSummary> runs;
  // Every compared arm against the baseline, in order, then the arms against their
  // controls (analyze.controls).
  std::vector<Comparison> comparisons;
  std::vector<std::string> warnings;  // also logged
  std::vector<std::string> notes;     // what was left out by design, e.g. an absent control
};

// ConfigError for an unknown metric, an unknown baseline or compared arm (naming the arms
// found), or an arm that is its own control; qf::Error naming the arm when none of its
// rows pairs with the baseline's. A control that no run has, or that is the baseline
// already, is left out with a note.
Analysis analyze(const std::vector<Run>& runs, const AnalyzeOptions& options);
// find_run_files + load_runs + analyze. Warnings are logged with spdlog as they arise.
Analysis analyze_inputs(const std::vector<std::string>& inputs, const AnalyzeOptions& options);

}  // namespace qf::experiments
