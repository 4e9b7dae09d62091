#include "core/config_schema.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace qf {

bool NumericRange::contains(double v) const {
  if (unrestricted()) return true;
  return std::isfinite(v) && (!low || (low_open ? v > *low : v >= *low)) &&
         (!high || (high_open ? v < *high : v <= *high));
}

std::string NumericRange::text() const {
  if (low && high) {
    return std::string("in ") + (low_open ? "(" : "[") + shortest_number_text(*low) + ", " +
           shortest_number_text(*high) + (high_open ? ")" : "]");
  }
  if (low) return (low_open ? "> " : ">= ") + shortest_number_text(*low);
  if (high) return (high_open ? "< " : "<= ") + shortest_number_text(*high);
  return "";
}

std::string shortest_number_text(double v) {
  char buf[32];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& s : names) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string FieldSpec::constraint_text() const {
  if (!choices.empty()) return "one of " + join_names(choices);
  const std::string r = range.text();
  if (r.empty()) return "";
  return type == FieldType::IntList || type == FieldType::FloatList ? "each " + r : r;
}

const char* field_type_name(FieldType t) {
  switch (t) {
    case FieldType::Int:
      return "an integer";
    case FieldType::Float:
      return "a number";
    case FieldType::Bool:
      return "a boolean (true/false)";
    case FieldType::String:
      return "a string";
    case FieldType::Path:
      return "a path";
    case FieldType::IntList:
      return "a list of integers";
    case FieldType::FloatList:
      return "a list of numbers";
    case FieldType::StringList:
      return "a list of strings";
    case FieldType::Block:
      return "a YAML block";
  }
  return "?";
}

void ConfigSchema::add(FieldSpec spec) {
  // A field declared twice would make the second declaration silently win: that is a
  // programming error, caught the first time the schema is built (in every test).
  if (find(spec.key)) throw std::logic_error("config key declared twice: " + spec.key);
  for (const auto& f : fields_) {
    if (f.key.rfind(spec.key + ".", 0) == 0 || spec.key.rfind(f.key + ".", 0) == 0) {
      throw std::logic_error("config key " + spec.key + " overlaps " + f.key);
    }
  }
  fields_.push_back(std::move(spec));
}

ConfigSchema& ConfigSchema::optional(const std::string& key, FieldType type,
                                     const std::string& default_yaml, const std::string& doc) {
  FieldSpec f;
  f.key = key;
  f.type = type;
  f.default_value = YAML::Load(default_yaml);
  f.doc = doc;
  add(std::move(f));
  return *this;
}

ConfigSchema& ConfigSchema::required(const std::string& key, FieldType type,
                                     const std::string& doc) {
  FieldSpec f;
  f.key = key;
  f.type = type;
  f.doc = doc;
  add(std::move(f));
  return *this;
}

FieldSpec& ConfigSchema::last(const char* refinement) {
  if (fields_.empty()) {
    throw std::logic_error(std::string(refinement) + " before any config field is declared");
  }
  return fields_.back();
}

ConfigSchema& ConfigSchema::one_of(std::vector<std::string> values) {
  FieldSpec& f = last("one_of");
  if (f.type != FieldType::String || values.empty()) {
    throw std::logic_error("one_of on " + f.key + ": only a string field has choices");
  }
  f.choices = std::move(values);
  return *this;
}

ConfigSchema& ConfigSchema::bound(bool lower, double v, bool open) {
  FieldSpec& f = last("a range");
  const bool numeric = f.type == FieldType::Int || f.type == FieldType::Float ||
                       f.type == FieldType::IntList || f.type == FieldType::FloatList;
  if (!numeric) throw std::logic_error("a range on " + f.key + ", which is not numeric");
  (lower ? f.range.low : f.range.high) = v;
  (lower ? f.range.low_open : f.range.high_open) = open;
  return *this;
}

ConfigSchema& ConfigSchema::at_least(double v) {
  return bound(true, v, false);
}
ConfigSchema& ConfigSchema::above(double v) {
  return bound(true, v, true);
}
ConfigSchema& ConfigSchema::at_most(double v) {
  return bound(false, v, false);
}
ConfigSchema& ConfigSchema::below(double v) {
  return bound(false, v, true);
}

ConfigSchema& ConfigSchema::defines_result() {
  last("defines_result").defines_result = true;
  return *this;
}

const FieldSpec* ConfigSchema::find(const std::string& key) const {
  for (const auto& f : fields_) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

bool ConfigSchema::is_section(const std::string& key) const {
  for (const auto& f : fields_) {
    if (f.key.rfind(key + ".", 0) == 0) return true;
  }
  return false;
}

std::vector<std::string> ConfigSchema::children(const std::string& section) const {
  std::vector<std::string> out;
  const std::string prefix = section.empty() ? "" : section + ".";
  for (const auto& f : fields_) {
    if (f.key.rfind(prefix, 0) != 0) continue;
    std::string rest = f.key.substr(prefix.size());
    std::string child = rest.substr(0, rest.find('.'));
    bool seen = false;
    for (const auto& c : out) seen = seen || c == child;
    if (!seen) out.push_back(child);
  }
  return out;
}

YAML::Node ConfigSchema::defaults() const {
  YAML::Node root(YAML::NodeType::Map);
  for (const auto& f : fields_) {
    if (!f.default_value) continue;
    // Walk/create the sections on the way to the leaf.
    YAML::Node cur = root;
    size_t start = 0;
    for (size_t dot = f.key.find('.'); dot != std::string::npos; dot = f.key.find('.', start)) {
      std::string part = f.key.substr(start, dot - start);
      if (!cur[part]) cur[part] = YAML::Node(YAML::NodeType::Map);
      cur.reset(cur[part]);
      start = dot + 1;
    }
    cur[f.key.substr(start)] = YAML::Clone(*f.default_value);
  }
  return root;
}

}  // namespace qf
