// audit.lawa.k end to end on the recorded trajectory (fixtures/trajectory): /audit_lawa
// holds, for each checkpoint, the probe of the average of it and the k − 1 before it — the
// same numbers `quantfork probe` gives for the checkpoint `quantfork average` writes — a
// window of one is the raw row, and a rerun resumes (or rebuilds for another k).
#include "quant_probe/audit_lawa.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/run_file.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace qf::test {
namespace {

fs::path trajectory() {
  return fixtures_dir() / "trajectory";
}

const char* const kSteps[] = {"step4000", "step4500", "step5000", "step5500"};

std::string eval_args() {
  return " --eval '" + (trajectory() / "eval").string() +
         "' --set probe.eval.sequences=16 --set probe.eval.seq_len=128";
}

std::string audit_args(const std::string& k) {
  std::string args = "audit --out audit.h5 --set audit.lawa.k=" + k + eval_args();
  for (const char* s : kSteps) args += " '" + (trajectory() / s).string() + "'";
  return args;
}

hdf5::RowSet lawa_rows(const fs::path& file) {
  AuditFile audit = AuditFile::open_read_only(file.string());
  return hdf5::Table::open(audit.file(), qf::kAuditLawaTable, quant::audit_lawa_schema()).read();
}

TEST(AuditLawa, ProbesTheAverageOfTheLastKCheckpoints) {
  QF_REQUIRE_FIXTURE("trajectory");
  TempDir dir;
  const auto r = run_quantfork(audit_args("3"), dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const hdf5::RowSet lawa = lawa_rows(dir / "audit.h5");
  ASSERT_EQ(lawa.size(), 4u);
  EXPECT_EQ(lawa.ints("step"), (std::vector<std::int64_t>{4000, 4500, 5000, 5500}));
  EXPECT_EQ(lawa.ints("first_step"), (std::vector<std::int64_t>{4000, 4000, 4000, 4500}));
  EXPECT_EQ(lawa.ints("checkpoints"), (std::vector<std::int64_t>{1, 2, 3, 3}));

  // A window of one checkpoint is that checkpoint: the raw row's numbers exactly.
  const auto raw = AuditFile::open_read_only((dir / "audit.h5").string()).read_audit();
  ASSERT_EQ(raw.size(), 4u);
  EXPECT_EQ(lawa.double_at(0, "ppl_fp32"), raw[0].ppl_fp32);
  EXPECT_EQ(lawa.double_at(0, "gap_int4_pct"), raw[0].gap_int4_pct);

  // The last row is the probe of the float32 checkpoint `quantfork average` writes of
  // steps 4500-5500 (the same float64 mean, rounded once).
  const auto avg = run_quantfork("average --out avg '" + (trajectory() / "step4500").string() +
                                     "' '" + (trajectory() / "step5000").string() + "' '" +
                                     (trajectory() / "step5500").string() + "'",
                                 dir.path());
  ASSERT_EQ(avg.exit_code, 0) << avg.err;
  const auto probe = run_quantfork("probe --model avg --json p.json" + eval_args(), dir.path());
  ASSERT_EQ(probe.exit_code, 0) << probe.err;
  const auto want = nlohmann::json::parse(read_file(dir / "p.json"));
  EXPECT_EQ(lawa.double_at(3, "ppl_fp32"), want["ppl_fp32"].get<double>());
  EXPECT_EQ(lawa.double_at(3, "ppl_int4"), want["ppl_int4"].get<double>());
  EXPECT_EQ(lawa.double_at(3, "gap_int8_pct"), want["gap_int8_pct"].get<double>());
  // And it is not the raw checkpoint's.
  EXPECT_NE(lawa.double_at(3, "ppl_fp32"), raw[3].ppl_fp32);
  std::printf("LAWA k=3 on the fixture trajectory: step %lld raw gap int4 %.3f%%, LAWA %.3f%%\n",
              static_cast<long long>(raw[3].step), raw[3].gap_int4_pct,
              lawa.double_at(3, "gap_int4_pct"));

  // A rerun finds everything done; another k rebuilds the table.
  const auto again = run_quantfork(audit_args("3"), dir.path());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(lawa_rows(dir / "audit.h5").size(), 4u);
  const auto k2 = run_quantfork(audit_args("2"), dir.path());
  ASSERT_EQ(k2.exit_code, 0) << k2.err;
  EXPECT_EQ(lawa_rows(dir / "audit.h5").ints("checkpoints"),
            (std::vector<std::int64_t>{1, 2, 2, 2}));
  EXPECT_EQ(*AuditFile::open_read_only((dir / "audit.h5").string()).file().int_attribute("lawa_k"),
            2);
}

TEST(AuditLawa, KOfOneIsAConfigError) {
  QF_REQUIRE_FIXTURE("trajectory");
  TempDir dir;
  const auto r = run_quantfork(audit_args("1"), dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("audit.lawa.k"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qf::test
