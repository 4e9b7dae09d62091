#include "experiments/probe_plan.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "schedules/registry.h"

using qf::experiments::probe_plan;
using qf::schedules::make_schedule;

namespace {
qf::experiments::NamedSchedule arm(const std::string& name, const std::string& yaml) {
  return {name, make_schedule(YAML::Load(yaml), "schedule")};
}
std::vector<int64_t> steps_of(const std::vector<qf::experiments::PlannedProbe>& plan) {
  std::vector<int64_t> out;
  for (const auto& p : plan) out.push_back(p.step);
  return out;
}
}  // namespace

TEST(ProbePlan, UnionOfBoundariesSettledPointsPeaksEveryAndLast) {
  std::vector<qf::experiments::NamedSchedule> arms = {
      arm("sgdr", "{name: sgdr, max_lr: 1, min_lr: 0, t0: 10, t_mult: 2}"),
      arm("oli",
          "{name: oli, envelope: {name: constant, lr: 1}, period: 20, bump_fraction: 0.25}")};
  auto plan = probe_plan(arms, 0, 45, 25);
  // sgdr cycles start at 0, 10, 30, so its last steps before a restart are 9 and 29; oli
  // bumps at 0, 20, 40 (5 steps: peaks at 2, 22, 42), cools at 5, 25, 45 (out of range);
  // oli settles at 19, 39; every 25 → 0, 25; last → 44.
  EXPECT_EQ(steps_of(plan),
            (std::vector<int64_t>{0, 2, 5, 9, 10, 19, 20, 22, 25, 29, 30, 39, 40, 42, 44}));
  EXPECT_EQ(plan[0].reasons, (std::vector<std::string>{"sgdr:cycle0", "oli:bump0", "every"}));
  EXPECT_EQ(plan[1].reasons, (std::vector<std::string>{"oli:peak0"}));
  EXPECT_EQ(plan[3].reasons, (std::vector<std::string>{"sgdr:peak0"}));
  EXPECT_EQ(plan[5].reasons, (std::vector<std::string>{"oli:settled0"}));
  EXPECT_EQ(plan[8].reasons, (std::vector<std::string>{"oli:cool1", "every"}));
  EXPECT_EQ(plan[9].reasons, (std::vector<std::string>{"sgdr:peak1"}));
  EXPECT_EQ(plan.back().reasons, (std::vector<std::string>{"last"}));
}

// The mid-perturbation steps themselves: OLI at its bump's peak rate E·(1 + a_k), SGDR at
// the bottom of its anneal just before the rate jumps back up.
TEST(ProbePlan, PerturbationStepsAreTheExtremes) {
  const auto oli = make_schedule(
      YAML::Load("{name: oli, envelope: {name: constant, lr: 1}, period: 20, bump_fraction: 0.2, "
                 "amplitude: 0.5, lock_decay: 0.8}"),
      "schedule");
  const auto peaks = oli->perturbation_steps(0, 60);
  ASSERT_EQ(peaks, (std::vector<int64_t>{2, 22, 42}));
  EXPECT_DOUBLE_EQ(oli->lr(2), 1.5);
  EXPECT_DOUBLE_EQ(oli->lr(22), 1.4);
  for (int64_t t = 20; t < 24; ++t) EXPECT_LE(oli->lr(t), oli->lr(22)) << t;
  const auto sgdr =
      make_schedule(YAML::Load("{name: sgdr, max_lr: 1, min_lr: 0.1, t0: 4, t_mult: 2}"), "s");
  const auto ends = sgdr->perturbation_steps(0, 30);
  ASSERT_EQ(ends, (std::vector<int64_t>{3, 11, 27}));
  for (int64_t s : ends) EXPECT_LT(sgdr->lr(s), sgdr->lr(s + 1)) << "restart after " << s;
  // A window: only the steps inside it, and a restart right after the window's last step
  // still counts.
  EXPECT_EQ(sgdr->perturbation_steps(4, 12), (std::vector<int64_t>{11}));
}

TEST(ProbePlan, WindowAndDisabledPeriodicProbes) {
  std::vector<qf::experiments::NamedSchedule> arms = {arm("c", "{name: constant, lr: 0.1}")};
  // A window that does not start at 0: multiples of `every` still count from step 0.
  EXPECT_EQ(steps_of(probe_plan(arms, 7, 31, 10)), (std::vector<int64_t>{10, 20, 30}));
  EXPECT_EQ(steps_of(probe_plan(arms, 0, 5, 0)), (std::vector<int64_t>{0, 4}));
  EXPECT_TRUE(probe_plan(arms, 5, 5, 10).empty());
}

TEST(ProbePlan, StepsAskedForByNameJoinThePlanWithTheirReason) {
  std::vector<qf::experiments::NamedSchedule> arms = {
      arm("sgdr", "{name: sgdr, max_lr: 1, min_lr: 0, t0: 10, t_mult: 2}")};
  const auto plan = probe_plan(arms, 0, 20, 0, {3, 9});
  EXPECT_EQ(steps_of(plan), (std::vector<int64_t>{0, 3, 9, 10, 19}));
  EXPECT_EQ(plan[1].reasons, (std::vector<std::string>{"at_steps"}));
  EXPECT_EQ(plan[2].reasons, (std::vector<std::string>{"sgdr:peak0", "at_steps"}));
  EXPECT_THROW(probe_plan(arms, 0, 20, 0, {20}), std::out_of_range);
}
