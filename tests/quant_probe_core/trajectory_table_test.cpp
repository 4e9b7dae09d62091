// Reading a trajectory table: CSVs from other tools (columns in any order, extra columns,
// empty lines, missing values) and audit files; malformed CSVs name file, line and column.
#include "quant_probe/trajectory_table.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.h"
#include "test_support.h"

namespace qf::test {
namespace {

using quant::parse_trajectory_csv;

TEST(TrajectoryCsv, ColumnsInAnyOrderOtherColumnsIgnored) {
  const auto rows = parse_trajectory_csv(
      "\n , gap_int4_pct,step ,ppl_fp32,lr,gap_int8_pct\r\n"
      "0,11.5,1000,30.25,0.0006,0.5\r\n"
      "\r\n"
      "1, 12 ,2000,29,0.0006,0.25\n",
      "t.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].step, 1000);
  EXPECT_EQ(rows[0].ppl_fp32, 30.25);
  EXPECT_EQ(rows[0].gap_int4_pct, 11.5);
  EXPECT_EQ(rows[0].gap_int8_pct, 0.5);
  EXPECT_EQ(rows[1].step, 2000);
  EXPECT_EQ(rows[1].gap_int4_pct, 12.0);
  // What the CSV does not hold is NaN (the learning rate too: lr is not read).
  for (double v : {rows[0].loss_fp32, rows[0].ppl_int4, rows[0].ppl_int8, rows[0].kurtosis_mean,
                   rows[0].grid_residual_mean, rows[0].lr}) {
    EXPECT_TRUE(std::isnan(v));
  }
  EXPECT_EQ(rows[0].phase, "");
}

TEST(TrajectoryCsv, MissingValuesAreNanAndStepsMayBeWrittenAsFloats) {
  const auto rows =
      parse_trajectory_csv("step,ppl_fp32,gap_int4_pct\n1000.0,,nan\n1e3,inf,-0.5\n", "t.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].step, 1000);
  EXPECT_TRUE(std::isnan(rows[0].ppl_fp32));
  EXPECT_TRUE(std::isnan(rows[0].gap_int4_pct));
  EXPECT_TRUE(std::isnan(rows[0].gap_int8_pct));  // no such column
  EXPECT_EQ(rows[1].step, 1000);
  EXPECT_TRUE(std::isinf(rows[1].ppl_fp32));
  EXPECT_EQ(rows[1].gap_int4_pct, -0.5);
  EXPECT_TRUE(parse_trajectory_csv("step,ppl_fp32,gap_int4_pct\n\n", "t.csv").empty());
}

TEST(TrajectoryCsv, ErrorsNameFileLineAndColumn) {
  const auto error = [](const std::string& text) {
    return message_of<FormatError>([&] { parse_trajectory_csv(text, "run.csv"); });
  };
  EXPECT_EQ(error("step,ppl_fp32,gap_int4_pct\n1000,12.5,11\n2000,twelve,11\n"),
            "run.csv:3: column 2 (ppl_fp32): 'twelve' is not a number");
  EXPECT_EQ(error("gap_int4_pct,ppl_fp32,step\n11,12,1000.5\n"),
            "run.csv:2: column 3 (step): '1000.5' is not an integer step");
  EXPECT_EQ(error("step,ppl_fp32,gap_int4_pct\n,12,11\n"),
            "run.csv:2: column 1 (step): '' is not an integer step");
  EXPECT_EQ(error("step,ppl_fp32,gap_int4_pct\n1000,12,11,5\n"),
            "run.csv:2: 4 fields, but the header (line 1) has 3");
  EXPECT_EQ(error("\nstep,ppl_fp32\n1000,12\n"),
            "run.csv:2: the header has no column 'gap_int4_pct' (it needs step, ppl_fp32 and "
            "gap_int4_pct; it names 'step', 'ppl_fp32')");
  EXPECT_EQ(error("step,ppl_fp32,gap_int4_pct,step\n"),
            "run.csv:1: column 4 (step): the column 'step' is named twice");
  EXPECT_EQ(error("step,ppl_fp32,gap_int4_pct\n1000,12,1e999\n"),
            "run.csv:2: column 3 (gap_int4_pct): '1e999' is not a number");
  EXPECT_NE(error(" \n\n").find("run.csv: no header row"), std::string::npos);
}

TEST(TrajectoryTable, ReadsCsvFilesAndAuditFilesAlike) {
  TempDir dir;
  write_file(dir / "t.csv", "step,ppl_fp32,gap_int4_pct\n1000,30,11\n2000,29,12\n");
  const auto from_csv = quant::read_trajectory_table(dir / "t.csv");
  ASSERT_EQ(from_csv.size(), 2u);

  AuditFile audit = AuditFile::create((dir / "a.h5").string(), {}, "{}\n");
  for (const auto& row : from_csv) audit.append_audit(row);
  AuditRow failed = from_csv[1];
  failed.phase = "failed";
  audit.append_audit(failed);
  audit.close();
  const auto from_audit = quant::read_trajectory_table(dir / "a.h5");
  ASSERT_EQ(from_audit.size(), 3u);  // every row, failed ones too: readers skip those
  EXPECT_EQ(from_audit[1].step, 2000);
  EXPECT_EQ(from_audit[1].ppl_fp32, 29.0);
  EXPECT_EQ(from_audit[2].phase, "failed");
}

TEST(TrajectoryTable, UnreadableFilesAreIoErrorsAndOtherHdf5FilesFormatErrors) {
  TempDir dir;
  EXPECT_NE(
      message_of<IoError>([&] { quant::read_trajectory_table(dir / "none.csv"); }).find("none.csv"),
      std::string::npos);
  EXPECT_NE(
      message_of<IoError>([&] { quant::read_trajectory_table(dir.path()); }).find("is a directory"),
      std::string::npos);
  RunFile::create((dir / "run.h5").string(), {}, "{}\n").close();
  EXPECT_NE(message_of<FormatError>([&] {
              quant::read_trajectory_table(dir / "run.h5");
            }).find("quantfork.audit/3"),
            std::string::npos);
}

}  // namespace
}  // namespace qf::test
