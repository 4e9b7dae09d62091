#include <gtest/gtest.h>

#include <cstdio>

#include "core/blas_check.h"
#include "core/progress.h"
#include "test_support.h"

TEST(Progress, FormatsDurationAndRate) {
  EXPECT_EQ(qf::format_duration(0), "0s");
  EXPECT_EQ(qf::format_duration(59.4), "59s");
  EXPECT_EQ(qf::format_duration(258), "4m18s");
  EXPECT_EQ(qf::format_duration(11040), "3h04m");
  EXPECT_EQ(qf::format_duration(-1), "--");
  EXPECT_EQ(qf::format_rate(3.4), "3.40");
  EXPECT_EQ(qf::format_rate(45.61), "45.6");
  EXPECT_EQ(qf::format_rate(1234), "1.23k");
  EXPECT_EQ(qf::format_rate(2.1e6), "2.10M");
}

TEST(Progress, LineHasRateEtaAndFields) {
  qf::ProgressSnapshot s{"train", 120, 1000, "step", 35.3, 3.4, {{"loss", "3.21"}}};
  EXPECT_EQ(qf::format_progress(s),
            "train 120/1000 (12.0%) | 3.40 step/s | ETA 4m19s | elapsed 35s | loss 3.21");
  qf::ProgressSnapshot unknown{"prepare", 5, 0, "doc", 1, 0, {}};
  EXPECT_EQ(qf::format_progress(unknown), "prepare 5 | -- doc/s | elapsed 1s");
}

TEST(Progress, RateIsTheSteadyPace) {
  qf::RateMeter m(30.0);
  double rate = 0;
  for (int i = 1; i <= 100; ++i) rate = m.update(2.0 * i, i);  // one unit every 2 s
  EXPECT_DOUBLE_EQ(rate, 0.5);
  EXPECT_EQ(qf::RateMeter().update(5.0, 0), 0.0) << "nothing done: unknown, not 0/s";
}

// The demo's fork experiment: 26 s runs, two at a time, so two finish about 1 s apart.
// A window restarted at one of a pair measured the other over 1 s: "3.56 run/s, ETA 1s".
TEST(Progress, RateOfUnitsFinishingInPairsHasNoSpikes) {
  qf::RateMeter m(30.0);
  int done = 0;
  for (int pair = 1; pair <= 8; ++pair) {
    for (double lag : {0.0, 1.0}) {
      const double rate = m.update(26.0 * pair + lag, ++done);
      EXPECT_GT(rate, 0.035) << "after " << done << " runs";  // 1 / 26 s after the first
      EXPECT_LT(rate, 0.12) << "after " << done << " runs";  // the pace is 2 / 26 s = 0.077
    }
  }
}

TEST(Progress, RateFollowsAChangeOfPaceWithinTwoSpans) {
  qf::RateMeter m(30.0);
  int done = 0;
  double t = 0, rate = 0;
  for (; t < 600; t += 1.0) rate = m.update(t, done += 10);  // 10 per second
  EXPECT_NEAR(rate, 10.0, 1e-9);
  for (const double end = t + 60; t <= end; t += 1.0) rate = m.update(t, done += 1);
  EXPECT_NEAR(rate, 1.0, 1e-9) << "a slow phase is read as slow after at most 2 spans";
}

TEST(Progress, PlainLinesWhenNotATerminal) {
  qf::test::TempDir dir;
  auto path = dir / "progress.txt";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  {
    qf::Progress p("audit", 3, "ckpt", f, /*interval_s=*/0.0);
    p.update(1, {{"ppl", "12.5"}});
    p.update(2);
    p.update(3);
    p.finish();
  }
  std::fclose(f);
  std::string text = qf::test::read_file(path);
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("audit 1/3 (33.3%)"), std::string::npos) << text;
  EXPECT_NE(text.find("| ppl 12.5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("audit 3/3 (100.0%)"), std::string::npos) << text;
  EXPECT_NE(text.find("ETA 0s"), std::string::npos) << text;
}

TEST(BlasCheck, TellsOpenBlasFromTheReference) {
  const char* openblas = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3";
  const char* reference = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";
  if (std::FILE* f = std::fopen(openblas, "r")) {
    std::fclose(f);
    EXPECT_EQ(qf::detect_blas(openblas), qf::BlasKind::OpenBlas);
  }
  if (std::FILE* f = std::fopen(reference, "r")) {
    std::fclose(f);
    EXPECT_EQ(qf::detect_blas(reference), qf::BlasKind::Reference);
  }
  EXPECT_EQ(qf::detect_blas("/nonexistent/libblas.so.3"), qf::BlasKind::Missing);
  // scripts/setup.sh installs OpenBLAS, so on a set-up machine there is no warning.
  EXPECT_FALSE(qf::blas_warning().has_value()) << *qf::blas_warning();
}
