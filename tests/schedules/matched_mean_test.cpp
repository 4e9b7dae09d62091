// matched_mean as docs/schedules.md defines it: the continuation scaled cycle by cycle to
// OLI's mean rate, so that a control arm differs from OLI in its oscillation alone.
#include <gtest/gtest.h>

#include "schedule_testing.h"

namespace qf::schedules {
namespace {

using testing::build;
using testing::config_error_of;

// Pythia's cosine from step 77000 as the continuation, OLI around it, cycles of 100.
const char* kControl =
    "{name: matched_mean, schedule: {name: pythia_cosine, step_offset: 77000}, "
    "match: {name: oli, envelope: {name: pythia_cosine, step_offset: 77000}, period: 100}}";
const char* kOli = "{name: oli, envelope: {name: pythia_cosine, step_offset: 77000}, period: 100}";
const char* kCosine = "{name: pythia_cosine, step_offset: 77000}";

TEST(MatchedMean, EveryCycleHasOlisSummedRateWithoutItsOscillation) {
  const SchedulePtr control = build(kControl), oli = build(kOli), cosine = build(kCosine);
  for (int64_t k = 0; k < 5; ++k) {
    double sum_control = 0, sum_oli = 0;
    for (int64_t t = 100 * k; t < 100 * (k + 1); ++t) {
      sum_control += control->lr(t);
      sum_oli += oli->lr(t);
      // Within a cycle the control is the continuation times one factor.
      EXPECT_NEAR(control->lr(t) / cosine->lr(t), control->lr(100 * k) / cosine->lr(100 * k), 1e-12)
          << t;
    }
    EXPECT_NEAR(sum_control, sum_oli, 1e-12 * sum_oli) << "cycle " << k;
  }
  // OLI's mean rate is below the continuation's (cool at 0.5·E), and the control follows:
  // about (0.2·(0.5 + (1.5 − 0.5)/2) + 0.8·0.5) = 0.6 of it in cycle 0.
  EXPECT_NEAR(control->lr(0) / cosine->lr(0), 0.6, 0.01);
  EXPECT_LT(control->lr(450) / cosine->lr(450), control->lr(0) / cosine->lr(0));
  EXPECT_EQ(control->phase(0).label(), "cycle0");
  EXPECT_EQ(control->phase(250).label(), "cycle2");
  EXPECT_EQ(control->boundaries(0, 350), (std::vector<int64_t>{0, 100, 200, 300}));
  ASSERT_TRUE(control->cycle().has_value());
  EXPECT_EQ(control->cycle()->period, 100);
}

TEST(MatchedMean, BeforeTheFirstCycleTheRateIsTheContinuations) {
  const SchedulePtr control = build(
      "{name: matched_mean, schedule: {name: constant, lr: 2.0e-4}, "
      "match: {name: oli, envelope: {name: constant, lr: 2.0e-4}, start_step: 50, period: 10}}");
  EXPECT_DOUBLE_EQ(control->lr(49), 2.0e-4);
  EXPECT_EQ(control->phase(49).name, "before");
  EXPECT_LT(control->lr(50), 2.0e-4);
}

TEST(MatchedMean, AMatchWithoutCyclesIsAConfigErrorNamingIt) {
  const std::string msg = config_error_of([] {
    build(
        "{name: matched_mean, schedule: {name: constant, lr: 1}, "
        "match: {name: sgdr, max_lr: 1, t0: 10}}");
  });
  EXPECT_NE(msg.find("match"), std::string::npos) << msg;
  EXPECT_NE(msg.find("repeats in cycles"), std::string::npos) << msg;
}

}  // namespace
}  // namespace qf::schedules
