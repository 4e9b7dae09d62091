#pragma once
// A schedule's parameters: each class declares them (name, type, default or required,
// range, documentation) in one list, and `Params` reads a YAML block against that list
// strictly. Every problem is a ConfigError naming the dotted key and where it was set:
// an unknown parameter (with the list of known ones), a missing one, a wrong type, a
// value out of range. The same list feeds `quantfork schedule --list` and the docs.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/config_schema.h"
#include "schedules/lr_schedule.h"

namespace qf::schedules {

enum class ParamKind {
  Number,        // double
  Integer,       // int64
  Choice,        // one string of a fixed set
  IntegerList,   // list of int64
  Schedule,      // a nested schedule block {name: …, …}
  ScheduleList,  // a list of schedule blocks
};

struct ParamSpec {
  std::string name;
  ParamKind kind = ParamKind::Number;
  std::string doc;
  std::optional<std::string> default_yaml;  // absent: required
  std::vector<std::string> choices;         // ParamKind::Choice
  // Numeric range (Number, Integer, and each element of IntegerList).
  NumericRange range;

  // Chainable refinements for the declaration lists.
  ParamSpec by_default(std::string yaml) const;
  ParamSpec at_least(double v) const;
  ParamSpec above(double v) const;
  ParamSpec at_most(double v) const;
  ParamSpec below(double v) const;

  // "a number > 0", "an integer >= 1", "one of cos, linear", … for docs and messages.
  std::string type_text() const;
  std::string range_text() const;  // "" when unrestricted
};

ParamSpec number(std::string name, std::string doc);
ParamSpec integer(std::string name, std::string doc);
ParamSpec choice(std::string name, std::vector<std::string> options, std::string doc);
ParamSpec integer_list(std::string name, std::string doc);
ParamSpec schedule_block(std::string name, std::string doc);
ParamSpec schedule_list(std::string name, std::string doc);

// Names a dotted key and where it was set, for messages: "key 'schedule.t0' (a.yaml:7)".
using Locator = std::function<std::string(const std::string& key)>;

// The parameters of one schedule block, read and checked against the declarations.
// Nested schedules are built (and checked) here too, so a bad block fails as a whole
// before any schedule exists.
class Params {
 public:
  // `key` is the block's dotted key ("schedule", "schedule.envelope", …).
  Params(const std::string& schedule_name, const std::vector<ParamSpec>& specs,
         const YAML::Node& block, std::string key, const Locator& where);

  double number(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  const std::string& choice(const std::string& name) const;
  const std::vector<int64_t>& integers(const std::string& name) const;
  SchedulePtr schedule(const std::string& name) const;
  const std::vector<SchedulePtr>& schedules(const std::string& name) const;

  // For checks across parameters in a constructor (min_lr <= max_lr, …): throws a
  // ConfigError about parameter `name` of this block.
  [[noreturn]] void fail(const std::string& name, const std::string& message) const;
  const std::string& key() const { return key_; }

 private:
  using Value = std::variant<double, int64_t, std::string, std::vector<int64_t>, SchedulePtr,
                             std::vector<SchedulePtr>>;
  template <typename T>
  const T& get(const std::string& name) const;
  Value read(const ParamSpec& spec, const YAML::Node& node, const std::string& key) const;

  std::string key_;
  Locator where_;
  std::map<std::string, Value> values_;
};

}  // namespace qf::schedules
