// The registry: every built-in is registered (proof that the whole archive is linked),
// the strict parameter reader's messages name the key and where it was set, and boundaries
// computed by each schedule agree with a step-by-step scan of its phases.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "schedule_testing.h"
#include "test_support.h"

namespace qf::schedules {
namespace {

using testing::build;
using testing::config_error_of;
using ::testing::HasSubstr;

// The built-ins are the names registered by the library's own files: read from
// schedules/*.cpp of the source tree (QF_SOURCE_DIR), so that a new
// built-in is checked here (registered, listed, documented) without editing this test.
std::vector<std::string> builtin_names() {
  const auto dir = std::filesystem::path(QF_SOURCE_DIR) / "schedules";
  const std::regex registration(R"re(^QF_REGISTER_SCHEDULE\("([a-z0-9_]+)")re");
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".cpp") continue;
    std::istringstream lines(qf::test::read_file(entry.path()));
    std::smatch m;
    for (std::string line; std::getline(lines, line);) {
      if (std::regex_search(line, m, registration)) names.push_back(m[1]);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Registry, TheBuiltinsAreReadFromTheLibrarysSources) {
  // A guard on the reader above: these ten existed when it was written.
  const auto names = builtin_names();
  for (const char* name : {"constant", "cosine", "matched_mean", "oli", "onecycle", "pythia_cosine",
                           "sequence", "sgdr", "warmup", "wsd"}) {
    EXPECT_THAT(names, ::testing::Contains(std::string(name)));
  }
  EXPECT_THAT(names, ::testing::Not(::testing::Contains(std::string("step_decay"))))
      << "the test's own schedule is not a built-in";
}

TEST(Registry, EveryBuiltinIsRegisteredAndListed) {
  // Nothing in this binary refers to the built-in classes: they are here only because
  // their self-registering files were linked whole.
  const std::string listing = describe_schedules();
  for (const std::string& name : builtin_names()) {
    const ScheduleType* t = ScheduleRegistry::instance().find(name);
    ASSERT_NE(t, nullptr) << name << " is not registered";
    EXPECT_FALSE(t->summary.empty());
    EXPECT_THAT(listing, HasSubstr(name + ": ")) << name;
    for (const auto& p : t->params) EXPECT_FALSE(p.doc.empty()) << name << "." << p.name;
  }
}

TEST(Registry, ListingShowsTypesDefaultsAndDocs) {
  const std::string listing = describe_schedules();
  EXPECT_THAT(listing, HasSubstr("    t_mult: an integer >= 1; default 1\n"));
  EXPECT_THAT(listing, HasSubstr("    bump_fraction: a number in (0, 1); default 0.2\n"));
  EXPECT_THAT(listing, HasSubstr("    anneal: one of cos, linear; default cos\n"));
  EXPECT_THAT(listing, HasSubstr("    t0: an integer >= 1; required\n"));
}

TEST(Registry, DocsDescribeEveryBuiltinAndParameter) {
  // docs/schedules.md of the source tree.
  const auto docs = std::filesystem::path(QF_SOURCE_DIR) / "docs/schedules.md";
  const std::string text = qf::test::read_file(docs);
  for (const std::string& name : builtin_names()) {
    const std::string heading = "### `" + name + "`";
    const size_t at = text.find(heading);
    ASSERT_NE(at, std::string::npos) << heading;
    const std::string section = text.substr(at, text.find("\n### ", at + 1) - at);
    for (const auto& p : ScheduleRegistry::instance().find(name)->params) {
      EXPECT_THAT(section, HasSubstr("| `" + p.name + "`")) << name << "." << p.name;
    }
  }
}

TEST(Registry, RegisteringANameTwiceIsAnError) {
  ScheduleType again = *ScheduleRegistry::instance().find("constant");
  EXPECT_THROW(ScheduleRegistry::instance().add(again), std::logic_error);
}

// ---- messages: the key and where it was set ---------------------------------------------

// Builds `schedule:` from a config file holding `text`, then the --set overrides.
SchedulePtr from_file(const std::string& file, const std::string& text,
                      const std::vector<std::string>& sets = {}) {
  qf::test::write_file(file, text);
  ConfigSchema schema;
  schema.required("schedule", FieldType::Block, "the schedule");
  ConfigLoader loader(schema);
  loader.add_file(file);
  for (const auto& s : sets) loader.add_override(s);
  return make_schedule(loader.resolve(), "schedule");
}

struct BadConfig {
  const char* what;
  const char* yaml;
  std::vector<std::string> sets;
  std::string message;  // FILE stands for the config file's path
  bool whole = true;    // the whole message, or (false) a part of it
};

const std::string kSgdrNeedsT0 =
    "schedule 'sgdr' needs parameter 't0' (an integer >= 1: length of the first cycle in steps "
    "(PyTorch: T_0))";

const BadConfig kBadConfigs[] = {
    {"unknown parameter",
     "schedule:\n  name: sgdr\n  max_lr: 6.0e-4\n  t00: 100\n",
     {},
     "config key 'schedule.t00' (FILE:4): unknown parameter of schedule 'sgdr'; its parameters "
     "are: max_lr, min_lr, t0, t_mult"},
    {"missing parameter",
     "schedule:\n  name: sgdr\n  max_lr: 6.0e-4\n",
     {},
     "config key 'schedule.t0' (FILE:2): " + kSgdrNeedsT0},
    {"integer expected",
     "schedule:\n  name: sgdr\n  max_lr: 6.0e-4\n  t0: 1.5\n",
     {},
     "config key 'schedule.t0' (FILE:4): expected an integer >= 1, got '1.5'"},
    {"number expected",
     "schedule: {name: sgdr, max_lr: fast, t0: 10}\n",
     {},
     "config key 'schedule.max_lr' (FILE:1): expected a number > 0, got 'fast'"},
    {"choice expected",
     "schedule: {name: onecycle, max_lr: 1, total_steps: 10, anneal: cosine}\n",
     {},
     "config key 'schedule.anneal' (FILE:1): expected one of cos, linear, got 'cosine'"},
    {"block expected",
     "schedule: {name: warmup, steps: 5, start_factor: 0.1, then: 3}\n",
     {},
     "config key 'schedule.then' (FILE:1): expected a schedule block {name: NAME, …parameters}",
     false},
    {"below range",
     "schedule:\n  name: sgdr\n  max_lr: 6.0e-4\n  t0: 10\n  t_mult: 0\n",
     {},
     "config key 'schedule.t_mult' (FILE:5): must be >= 1, got 0"},
    {"not finite",
     "schedule: {name: constant, lr: .nan}\n",
     {},
     "config key 'schedule.lr' (FILE:1): must be >= 0, got .nan"},
    {"across parameters",
     "schedule: {name: cosine, max_lr: 1.0e-4, min_lr: 1.0e-3, total_steps: 9}\n",
     {},
     "config key 'schedule.min_lr' (FILE:1): must be <= max_lr"},
    {"derived value",
     "schedule: {name: oli, period: 10, bump_fraction: 0.01}\n",
     {},
     "config key 'schedule.bump_fraction' (FILE:1): gives a bump of 0 steps in a period of 10; it "
     "must be 1 to period − 1"},
    {"from --set",
     "schedule: {name: sgdr, max_lr: 1.0, t0: 10}\n",
     {"schedule.t0=0"},
     "config key 'schedule.t0' (--set schedule.t0=0): must be >= 1, got 0"},
    {"unknown schedule",
     "schedule:\n  name: sgrd\n",
     {},
     "config key 'schedule.name' (FILE:2): unknown schedule 'sgrd'; registered schedules: "
     "constant, cosine, ",
     false},
    {"no name",
     "schedule: {max_lr: 1.0}\n",
     {},
     "config key 'schedule.name' (FILE:1): expected a schedule block",
     false},
    {"nested block",
     "schedule:\n  name: oli\n  envelope:\n    name: cosine\n    max_lr: 1.0\n"
     "    total_steps: 10\n    maxlr: 2\n",
     {},
     "config key 'schedule.envelope.maxlr' (FILE:7): unknown parameter of schedule 'cosine'; its "
     "parameters are: max_lr, min_lr, total_steps"},
    {"list element",
     "schedule:\n  name: sequence\n  milestones: [10]\n  parts:\n"
     "    - {name: constant, lr: 1.0}\n    - name: sgdr\n      max_lr: 1.0\n",
     {},
     "config key 'schedule.parts.1.t0' (FILE:6): " + kSgdrNeedsT0},
    {"list item range",
     "schedule: {name: sequence, parts: [{name: constant, lr: 1}], milestones: [0]}\n",
     {},
     "config key 'schedule.milestones.0' (FILE:1): must be >= 1, got 0"},
    {"list length",
     "schedule: {name: sequence, parts: [{name: constant, lr: 1}], milestones: [5]}\n",
     {},
     "config key 'schedule.milestones' (FILE:1): needs 0 steps for 1 parts, got 1"},
};

TEST(ScheduleConfig, ErrorsNameTheKeyAndWhereItWasSet) {
  qf::test::TempDir dir;
  const std::string file = (dir / "run.yaml").string();
  for (const BadConfig& c : kBadConfigs) {
    SCOPED_TRACE(c.what);
    std::string expected = c.message;
    if (auto at = expected.find("FILE"); at != std::string::npos) expected.replace(at, 4, file);
    const std::string got = config_error_of([&] { from_file(file, c.yaml, c.sets); });
    if (c.whole) {
      EXPECT_EQ(got, expected);
    } else {
      EXPECT_THAT(got, HasSubstr(expected));
    }
  }
}

TEST(ScheduleConfig, ValidBlockBuilds) {
  qf::test::TempDir dir;
  const SchedulePtr s =
      from_file((dir / "run.yaml").string(),
                "schedule:\n  name: sgdr\n  max_lr: 6.0e-4\n  t0: 10\n", {"schedule.t_mult=2"});
  EXPECT_EQ(s->boundaries(0, 100), (std::vector<int64_t>{0, 10, 30, 70}));
}

// ---- boundaries against a scan of the phases ---------------------------------------------

class BoundariesMatchPhaseScan : public ::testing::TestWithParam<const char*> {};

TEST_P(BoundariesMatchPhaseScan, OnWholeAndPartialRanges) {
  const SchedulePtr s = build(GetParam());
  for (auto [begin, end] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 3000}, {137, 2500}, {999, 1002}, {1431, 1432}, {2500, 2500}}) {
    SCOPED_TRACE("steps " + std::to_string(begin) + ":" + std::to_string(end));
    // The base class's boundaries() is the scan: where phase(s) differs from phase(s − 1).
    EXPECT_EQ(s->boundaries(begin, end), s->LrSchedule::boundaries(begin, end));
    for (int64_t step : s->settled_steps(begin, end)) {
      EXPECT_TRUE(step >= begin && step < end);
      EXPECT_EQ(s->phase(step).name, "cool");
      EXPECT_NE(s->phase(step + 1), s->phase(step));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Builtins, BoundariesMatchPhaseScan,
    ::testing::Values(
        "{name: constant, lr: 1}",
        "{name: pythia_cosine, warmup_steps: 100, decay_steps: 2000, min_lr: 3.0e-4}",
        "{name: pythia_cosine, warmup_steps: 0, decay_steps: 2000, step_offset: 50}",
        "{name: pythia_cosine, warmup_steps: 100, decay_steps: 2000, min_lr: 0, step_offset: 300}",
        "{name: cosine, max_lr: 1, total_steps: 300}", "{name: cosine, max_lr: 1, total_steps: 1}",
        "{name: sgdr, max_lr: 1, t0: 7, t_mult: 3}", "{name: sgdr, max_lr: 1, t0: 1}",
        "{name: onecycle, max_lr: 1, total_steps: 1500, pct_start: 0.333}",
        "{name: wsd, max_lr: 1, warmup_steps: 0, stable_steps: 0, decay_steps: 500}",
        "{name: wsd, max_lr: 1, warmup_steps: 50, stable_steps: 1000, decay_steps: 500}",
        "{name: oli, envelope: {name: constant, lr: 1}, period: 300, start_step: 250}",
        "{name: oli, period: 500, bump_fraction: 0.5}",
        "{name: warmup, steps: 120, start_factor: 0, then: {name: oli, period: 400}}",
        "{name: sequence, parts: [{name: sgdr, max_lr: 1, t0: 90}, {name: oli, period: 350}, "
        "{name: cosine, max_lr: 1, total_steps: 100}], milestones: [500, 1400]}",
        "{name: sequence, inner_steps: global, parts: [{name: wsd, max_lr: 1, stable_steps: 10, "
        "decay_steps: 10}, {name: oli, period: 350}], milestones: [700]}"));

}  // namespace
}  // namespace qf::schedules
