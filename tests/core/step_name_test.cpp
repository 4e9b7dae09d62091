#include "core/step_name.h"

#include <gtest/gtest.h>

namespace qf {

TEST(StepName, OwnCheckpointsAreExactlyStepN) {
  EXPECT_EQ(checkpoint_dir_step("runs/a/checkpoints/step8"), 8);
  EXPECT_EQ(checkpoint_dir_step("pythia-160m/step143000/"), 143000);  // a trailing slash
  EXPECT_EQ(checkpoint_dir_step("step0"), 0);
  for (const char* not_one : {"runs/.step8.tmp", "step8.old.1", "old_step8", "step", "stepx",
                              "step1234567890123456789"}) {
    EXPECT_FALSE(checkpoint_dir_step(not_one).has_value()) << not_one;
  }
}

TEST(StepName, OtherToolsNamesAreSearchedWithAPattern) {
  const std::regex pattern("step([0-9]+)");
  EXPECT_EQ(step_in_name("ckpts/model-step4000-final/", pattern), 4000);
  EXPECT_EQ(step_in_name("a/iter_0001000", std::regex("iter_([0-9]+)")), 1000);
  EXPECT_FALSE(step_in_name("a/final", pattern).has_value());
  EXPECT_FALSE(step_in_name("a/step99999999999999999999", pattern).has_value());  // overflows
  EXPECT_FALSE(step_in_name("a/final", std::regex("(x)?final")).has_value());     // group unmatched
}

}  // namespace qf
