#pragma once
// Run and audit files for the experiments tests, written with the real writers
// (core/run_file.h) so analyze and report read exactly what a training run leaves.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace qf::experiments::testing {

struct Probe {
  std::int64_t step = 0;
  std::string phase;
  std::int32_t phase_index = 0;
  double gap_int4_pct = 0;  // the default metric; the other columns are derived from it
};

// Creates `file` (and its folders) as a quantfork.run file of `arm` and `seed` with
// these probes and, for each (step, lr), a /train row.
void write_run(const std::filesystem::path& file, const std::string& arm, std::int64_t seed,
               const std::vector<Probe>& probes,
               const std::vector<std::pair<std::int64_t, double>>& lrs = {});

// The fork experiment the end-to-end tests analyze, under `root`/fork/<arm>/seed<k>/run.h5,
// built from the scipy fixture's numbers (../shared/fixtures/stats/ttests.json):
// - oli's settled probes (the last step of cool phases 0, 1, 2 at steps 299, 599, 899)
//   minus cosine's are case n9_oli_like (3 seeds x 3 cool-phase ends); oli's other
//   probes would change the result if the phase filter let them through;
// - the final probe (step 900) of oli and cosine is case n3_exact_small (one per seed);
// - sgdr is above cosine at every probe, so it wins 0 of 9 final comparisons.
// `skip` lists (arm, seed, step) rows to leave out; step -1 leaves out the whole run.
struct Skip {
  std::string arm;
  std::int64_t seed = 0, step = -1;
};
void write_fixture_experiment(const std::filesystem::path& root, const nlohmann::json& cases,
                              const std::vector<Skip>& skip = {});

// The control arm cosine_matched of that experiment, seeds 1-3: cosine's value plus
// `offset` at every probe step, so that oli − cosine_matched = (oli − cosine) − offset.
void write_fixture_control(const std::filesystem::path& root, const nlohmann::json& cases,
                           double offset);

// The probe steps of that experiment, in order.
const std::vector<std::int64_t>& fixture_steps();

// Runs quantfork `args` in `cwd`, expecting exit status `code` and each of `needles` in
// its stderr.
void expect_fails(const std::string& args, const std::filesystem::path& cwd, int code,
                  const std::vector<std::string>& needles);
// Runs quantfork `args` in `cwd`, expecting success, and returns the JSON it wrote to
// cwd/`json_file`; `err` receives its stderr.
nlohmann::json run_for_json(const std::string& args, const std::filesystem::path& cwd,
                            const std::string& json_file, std::string* err = nullptr);

// The stats fixture's cases by name.
nlohmann::json stats_case(const nlohmann::json& cases, const std::string& name);
nlohmann::json load_stats_cases();  // cases of ttests.json

}  // namespace qf::experiments::testing
