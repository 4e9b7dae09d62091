#include "run_builder.h"

#include <algorithm>
#include <cmath>

#include "core/run_file.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace qf::experiments::testing {

void write_run(const fs::path& file, const std::string& arm, std::int64_t seed,
               const std::vector<Probe>& probes,
               const std::vector<std::pair<std::int64_t, double>>& lrs) {
  fs::create_directories(file.parent_path());
  RunAttributes a;
  a.experiment = "fork";
  a.arm = arm;
  a.seed = seed;
  a.schedule = arm;
  a.base_checkpoint = "tiny/step3000";
  RunFile run = RunFile::create(file.string(), a, "train: {}\n");
  for (const auto& [step, lr] : lrs) {
    TrainRow t;
    t.step = step;
    t.tokens = (step + 1) * 8192;
    t.loss = 3.5f;
    t.lr = lr;
    run.append_train(t);
  }
  for (const auto& p : probes) {
    ProbeRow r;
    r.step = p.step;
    r.phase = p.phase;
    r.phase_index = p.phase_index;
    r.ppl_fp32 = 20.0 + 0.001 * static_cast<double>(p.step);
    r.loss_fp32 = std::log(r.ppl_fp32);
    r.gap_int4_pct = p.gap_int4_pct;
    r.ppl_int4 = r.ppl_fp32 * (1 + p.gap_int4_pct / 100);
    r.gap_int8_pct = p.gap_int4_pct / 50;
    r.ppl_int8 = r.ppl_fp32 * (1 + r.gap_int8_pct / 100);
    r.kurtosis_mean = 1.5;
    r.grid_residual_mean = 0.24;
    r.tokens_evaluated = 4096;
    run.append_probe(r);
  }
}

const std::vector<std::int64_t>& fixture_steps() {
  static const std::vector<std::int64_t> steps = {0, 100, 299, 300, 400, 599, 600, 700, 899, 900};
  return steps;
}

void expect_fails(const std::string& args, const fs::path& cwd, int code,
                  const std::vector<std::string>& needles) {
  const auto r = qf::test::run_quantfork(args, cwd);
  EXPECT_EQ(r.exit_code, code) << args << "\n" << r.err;
  for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << n << "\n" << r.err;
}

nlohmann::json run_for_json(const std::string& args, const fs::path& cwd,
                            const std::string& json_file, std::string* err) {
  const auto r = qf::test::run_quantfork(args, cwd);
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
  if (err) *err = r.err;
  if (r.exit_code != 0) return nlohmann::json::object();
  return nlohmann::json::parse(qf::test::read_file(cwd / json_file));
}

nlohmann::json load_stats_cases() {
  return nlohmann::json::parse(
      qf::test::read_file(qf::test::fixtures_dir() / "stats" / "ttests.json"))["cases"];
}

nlohmann::json stats_case(const nlohmann::json& cases, const std::string& name) {
  for (const auto& c : cases) {
    if (c.at("name") == name) return c;
  }
  ADD_FAILURE() << "no stats fixture case " << name;
  return {};
}

namespace {

// OLI's phase at a fixture step: cycles of 300 steps, a bump of 60 then cool.
std::pair<std::string, std::int32_t> oli_phase(std::int64_t step) {
  const auto cycle = static_cast<std::int32_t>(step / 300);
  return {step % 300 < 60 ? "bump" : "cool", cycle};
}

// Cosine's value at a fixture step: off the fixture's points, values a phase filter must
// keep out of oli's test; on them (oli's settled points, the final probe), the cases'.
double cosine_value(const nlohmann::json& n9, const nlohmann::json& n3, std::int64_t seed,
                    std::int64_t step) {
  const auto si = static_cast<std::size_t>(seed - 1);
  if (step == 900) return n3["baseline"][si].get<double>();
  if (step % 300 == 299)
    return n9["baseline"][si * 3 + static_cast<std::size_t>(step / 300)].get<double>();
  return 30 + static_cast<double>(step) / 100 + static_cast<double>(seed);
}

bool skipped(const std::vector<Skip>& skip, const std::string& arm, std::int64_t seed,
             std::int64_t step) {
  return std::any_of(skip.begin(), skip.end(), [&](const Skip& s) {
    return s.arm == arm && s.seed == seed && (s.step == -1 || s.step == step);
  });
}

}  // namespace

void write_fixture_experiment(const fs::path& root, const nlohmann::json& cases,
                              const std::vector<Skip>& skip) {
  const auto n9 = stats_case(cases, "n9_oli_like"), n3 = stats_case(cases, "n3_exact_small");
  for (const std::string arm : {"cosine", "oli", "sgdr"}) {
    for (std::int64_t seed = 1; seed <= 3; ++seed) {
      if (skipped(skip, arm, seed, -1)) continue;
      const auto si = static_cast<std::size_t>(seed - 1);
      std::vector<Probe> probes;
      std::vector<std::pair<std::int64_t, double>> lrs;
      for (std::int64_t step : fixture_steps()) {
        const double t = static_cast<double>(step);
        const double s = static_cast<double>(seed);
        const double cosine = cosine_value(n9, n3, seed, step);
        double value = 0;
        const bool settled = step % 300 == 299;
        const auto k = static_cast<std::size_t>(step / 300);
        auto [phase, index] = oli_phase(step);
        if (arm == "cosine") {
          value = cosine;
          phase = "decay";
          index = 0;
        } else if (arm == "oli") {
          value = settled ? n9["arm"][si * 3 + k].get<double>() : 40 + t / 10;
          if (step == 900) value = n3["arm"][si].get<double>();
        } else {
          value = step == 900 ? 10 + s : cosine + 1 + 0.01 * s * t / 100;
          phase = "cycle";
          index = static_cast<std::int32_t>(step / 200);
        }
        if (!skipped(skip, arm, seed, step)) probes.push_back({step, phase, index, value});
        const double base_lr = 1e-3 * (1 - t / 2000);
        lrs.emplace_back(step, arm == "oli" && phase == "cool" ? base_lr / 2 : base_lr);
      }
      write_run(root / "fork" / arm / ("seed" + std::to_string(seed)) / "run.h5", arm, seed, probes,
                lrs);
    }
  }
}

void write_fixture_control(const fs::path& root, const nlohmann::json& cases, double offset) {
  const auto n9 = stats_case(cases, "n9_oli_like"), n3 = stats_case(cases, "n3_exact_small");
  for (std::int64_t seed = 1; seed <= 3; ++seed) {
    std::vector<Probe> probes;
    for (std::int64_t step : fixture_steps()) {
      probes.push_back({step, "decay", 0, cosine_value(n9, n3, seed, step) + offset});
    }
    write_run(root / "fork" / "cosine_matched" / ("seed" + std::to_string(seed)) / "run.h5",
              "cosine_matched", seed, probes);
  }
}

}  // namespace qf::experiments::testing
