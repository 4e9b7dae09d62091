#pragma once
// The schema side of configuration: every component declares and documents its own
// fields in one place (a `declare_config(ConfigSchema&)` function next to the code that
// reads them). The schema knows each field's type, default, allowed values and
// documentation; it is the single source for validation, `--dump-config-docs` and the
// docs' reference. Declarations chain: `.optional(...)` adds a field and `.one_of(...)`,
// `.at_least(...)`, `.defines_result()` refine the field declared last.
#include <yaml-cpp/yaml.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qf {

enum class FieldType {
  Int,    // int64
  Float,  // double; integers are accepted
  Bool,
  String,
  Path,  // a string; relative paths are resolved against the config file's folder
  IntList,
  FloatList,
  StringList,
  Block,  // an open YAML block validated by its owner (e.g. `schedule: {name: …}`)
};

const char* field_type_name(FieldType t);

// An interval of numbers, either end open, closed or absent (config fields and schedule
// parameters share it, so both say "must be >= 1, got 0" the same way).
struct NumericRange {
  std::optional<double> low, high;
  bool low_open = false, high_open = false;
  bool unrestricted() const { return !low && !high; }
  bool contains(double v) const;  // false for NaN and infinities too, unless unrestricted
  std::string text() const;       // "in [0, 1)", ">= 1", "> 0"; "" when unrestricted
};

// The shortest text that reads back as the same double ("0.0006", not 0.000599...).
std::string shortest_number_text(double v);
// "a, b, c".
std::string join_names(const std::vector<std::string>& names);

// The names of a typed choice, declared once: the schema takes the names (one_of) and
// Config::get_enum maps the chosen one to its value.
template <typename E>
using EnumNames = std::vector<std::pair<std::string, E>>;

struct FieldSpec {
  std::string key;  // dotted, e.g. "train.steps"
  FieldType type = FieldType::String;
  std::optional<YAML::Node> default_value;  // absent: the field is required
  std::string doc;
  std::vector<std::string> choices;  // String: the values allowed (empty: any)
  NumericRange range;                // Int, Float and each element of IntList, FloatList
  // The field changes the numbers a command computes, not only where, how fast or how
  // often: a resumed run may not change it (train's checkpoint fingerprint over the
  // training sections, audit's check of the probe section against its file).
  bool defines_result = false;
  // "one of stop, skip", ">= 1", "" when any value of the type will do.
  std::string constraint_text() const;
};

class ConfigSchema {
 public:
  // A field with a default value (given as YAML text, e.g. "100", "[1, 2, 3]", "null").
  ConfigSchema& optional(const std::string& key, FieldType type, const std::string& default_yaml,
                         const std::string& doc);
  // A field the user must set (in a file or with --set).
  ConfigSchema& required(const std::string& key, FieldType type, const std::string& doc);

  // Refinements of the field declared last (a logic_error when they do not fit its type).
  ConfigSchema& one_of(std::vector<std::string> values);
  template <typename E>
  ConfigSchema& one_of(const EnumNames<E>& names) {
    std::vector<std::string> values;
    for (const auto& n : names) values.push_back(n.first);
    return one_of(std::move(values));
  }
  ConfigSchema& at_least(double v);
  ConfigSchema& above(double v);
  ConfigSchema& at_most(double v);
  ConfigSchema& below(double v);
  ConfigSchema& defines_result();

  const std::vector<FieldSpec>& fields() const { return fields_; }
  const FieldSpec* find(const std::string& key) const;
  // True when `key` is a declared field or a section that holds declared fields.
  bool is_section(const std::string& key) const;
  // Declared keys directly under `section` ("" for the top level), for suggestions.
  std::vector<std::string> children(const std::string& section) const;
  // The built-in defaults as a YAML tree (fields without defaults are left out).
  YAML::Node defaults() const;

 private:
  void add(FieldSpec spec);
  FieldSpec& last(const char* refinement);
  ConfigSchema& bound(bool lower, double v, bool open);
  std::vector<FieldSpec> fields_;
};

}  // namespace qf
