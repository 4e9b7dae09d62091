#pragma once
// The schedule registry: a schedule class becomes usable from any config with one line,
//
//   QF_REGISTER_SCHEDULE("sgdr", SgdrSchedule);
//
// in its own .cpp file (the library, a test, or a user's program). The class provides
//   static constexpr const char* kSummary = "…";    // one line for --list and docs
//   static std::vector<ParamSpec> params();          // its parameters (params.h)
//   explicit Class(const Params& p);                 // reads them; p.fail(…) on bad combos
// and implements LrSchedule. A YAML block {name: sgdr, t0: 100, …} then builds it.
#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "schedules/lr_schedule.h"
#include "schedules/params.h"

namespace qf::schedules {

struct ScheduleType {
  std::string name;
  std::string summary;
  std::vector<ParamSpec> params;
  std::function<SchedulePtr(const Params&)> make;

  template <typename T>
  static ScheduleType of(std::string name) {
    return ScheduleType{std::move(name), T::kSummary, T::params(),
                        [](const Params& p) { return std::make_shared<const T>(p); }};
  }
};

class ScheduleRegistry {
 public:
  static ScheduleRegistry& instance();
  // A name registered twice is a programming error (std::logic_error).
  void add(ScheduleType type);
  const ScheduleType* find(const std::string& name) const;
  std::vector<const ScheduleType*> all() const;  // sorted by name

 private:
  std::map<std::string, ScheduleType> types_;
};

// Registers at static initialisation; see QF_REGISTER_SCHEDULE.
struct ScheduleRegistration {
  explicit ScheduleRegistration(ScheduleType type);
};

// Builds the schedule configured at `key` (a Block field such as "schedule") of `cfg`;
// messages name the keys inside the block with the file and line that set them.
SchedulePtr make_schedule(const Config& cfg, const std::string& key);
// The locator that names a key of `cfg` with its origin, for a block taken out of `cfg`
// and changed before it is built (the fork binds its arms to the base first).
Locator locator_for(const Config& cfg);
// Builds a schedule from a YAML block; `key` is its dotted name for messages and `where`
// names a key with its origin (default: just the key).
SchedulePtr make_schedule(const YAML::Node& block, const std::string& key,
                          const Locator& where = {});

// Every registered schedule with its parameters, types, defaults and docs, as text.
std::string describe_schedules();

}  // namespace qf::schedules

#define QF_SCHEDULE_CONCAT_INNER(a, b) a##b
#define QF_SCHEDULE_CONCAT(a, b) QF_SCHEDULE_CONCAT_INNER(a, b)
#define QF_REGISTER_SCHEDULE(NAME, CLASS)                                \
  static const ::qf::schedules::ScheduleRegistration QF_SCHEDULE_CONCAT( \
      qf_schedule_registration_, __LINE__)(::qf::schedules::ScheduleType::of<CLASS>(NAME))
