// `quantfork demo` end to end, shortened (fewer and smaller updates): the corpus, the
// pretraining with Pythia-spaced checkpoints, the audit, twelve forked runs, analysis.json
// and the report, and their consistency: every probe step in every run, the report's
// statistics equal to the JSON's.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/run_file.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using qf::test::read_file;
using qf::test::run_quantfork;

// The output folder's name holds a space and a colon: every stage's config (pretrain.yaml,
// fork.yaml, each run's) must carry such paths through YAML intact.
const char* kShortDemo =
    "demo --set \"demo.out='out dir: 1'\" --set demo.pretrain_steps=260 "
    "--set demo.checkpoint_every=20 --set demo.batch=8 --set demo.seq_len=64 "
    "--set demo.audit_min_step=20 --set demo.eval_sequences=16 --set demo.fork_steps=48 "
    "--set demo.probe_every=16";

bool demo_available() {
  // The sanitizer build has no libtorch, hence no demo command.
  return run_quantfork("demo --help").exit_code == 0;
}

std::string stat(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

TEST(Demo, RunsTheWholeStudyInMiniatureAndItsReportMatchesItsNumbers) {
  if (!demo_available()) GTEST_SKIP() << "quantfork was built without libtorch: no demo";
  if (!fs::is_directory("/usr/share/games/fortunes")) {
    FAIL() << "Debian's fortunes package is missing: scripts/setup.sh installs it";
  }
  qf::test::TempDir dir;
  const auto r = run_quantfork(kShortDemo, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("report: "), std::string::npos) << r.out;
  const fs::path out = dir / "out dir: 1";
  for (const char* f : {"pretrain.yaml", "fork.yaml", "audit.h5", "model/config.json",
                        "pretrain/checkpoints/step1/model.safetensors",
                        "pretrain/checkpoints/step256/model.safetensors"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
  }
  // Twelve runs (three schedules and the matched-rate control), each with the same probe
  // steps.
  std::set<int64_t> steps_of_first;
  int runs = 0;
  for (const char* arm : {"cosine", "sgdr", "oli", "cosine_matched"}) {
    for (int seed = 1; seed <= 3; ++seed) {
      const fs::path file = out / "fork" / arm / ("seed" + std::to_string(seed)) / "run.h5";
      ASSERT_TRUE(fs::exists(file)) << file;
      ++runs;
      const auto probes = qf::RunFile::open_read_only(file.string()).read_probe();
      std::set<int64_t> steps;
      for (const auto& p : probes) {
        steps.insert(p.step);
        EXPECT_TRUE(std::isfinite(p.gap_int4_pct)) << file << " step " << p.step;
      }
      EXPECT_EQ(steps.size(), probes.size()) << file << ": a step probed twice";
      EXPECT_TRUE(steps.count(47)) << file << ": the last update is always probed";
      if (steps_of_first.empty()) steps_of_first = steps;
      EXPECT_EQ(steps, steps_of_first) << file << ": the probe plan is shared by all runs";
    }
  }
  EXPECT_EQ(runs, 12);
  // SGDR restarts at the continuation's rate at the fork: update 0 of both arms has it.
  const auto first_lr = [&](const char* arm) {
    return qf::RunFile::open_read_only((out / "fork" / arm / "seed1/run.h5").string())
        .read_train()
        .front()
        .lr;
  };
  EXPECT_DOUBLE_EQ(first_lr("sgdr"), first_lr("cosine"));
  // analysis.json and the report: the report's statistics are the JSON's numbers.
  const auto json = nlohmann::json::parse(read_file(out / "report/analysis.json"));
  const std::string md = read_file(out / "report/report.md");
  // Three arms against cosine, and OLI against its matched-rate control.
  ASSERT_EQ(json.at("comparisons").size(), 4u);
  bool oli_vs_control = false;
  for (const auto& c : json.at("comparisons")) {
    oli_vs_control |= c.at("arm") == "oli" && c.at("baseline") == "cosine_matched";
  }
  EXPECT_TRUE(oli_vs_control) << json.dump(1);
  EXPECT_NE(md.find("0.46M-parameter"), std::string::npos) << "no scale caveat";
  for (const auto& c : json.at("comparisons")) {
    const auto& paired = c.at("paired");
    ASSERT_GE(paired.at("n").get<int64_t>(), 2) << c.dump();
    EXPECT_NE(md.find(stat(paired.at("t").get<double>(), 4)), std::string::npos)
        << "t of " << c.at("arm") << " not in the report";
    EXPECT_NE(md.find(stat(paired.at("p_two_sided").get<double>(), 3)), std::string::npos)
        << "p of " << c.at("arm") << " not in the report";
  }
  EXPECT_NE(md.find("fork base"), std::string::npos);
  // LAWA beside the raw checkpoints (demo.lawa_k = 3): every probed checkpoint has its
  // average, and the report compares them.
  {
    const auto audit = qf::AuditFile::open_read_only((out / "audit.h5").string());
    EXPECT_EQ(audit.read_lawa().size(), audit.read_audit().size());
    EXPECT_EQ(audit.lawa_k(), std::optional<std::int64_t>(3));
  }
  EXPECT_NE(md.find("Weight averaging (LAWA, k = 3)"), std::string::npos);
  EXPECT_NE(md.find("lower INT4 gap than the checkpoint itself at"), std::string::npos);
  int pngs = 0;
  for (const auto& e : fs::directory_iterator(out / "report")) {
    if (e.path().extension() != ".png") continue;
    ++pngs;
    EXPECT_GT(fs::file_size(e.path()), 2000u) << e.path();
    EXPECT_EQ(read_file(e.path()).substr(1, 3), "PNG") << e.path();
  }
  EXPECT_GE(pngs, 4);
}

TEST(Demo, BadSettingsAreConfigErrors) {
  if (!demo_available()) GTEST_SKIP() << "quantfork was built without libtorch: no demo";
  qf::test::TempDir dir;
  auto r = run_quantfork("demo --set demo.hidden_size=96", dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("demo.hidden_size"), std::string::npos) << r.err;
  r = run_quantfork("demo --set demo.corpus=nowhere --set demo.out=o", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("fortunes"), std::string::npos) << r.err;
}

}  // namespace
