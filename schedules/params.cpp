#include "schedules/params.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "core/errors.h"
#include "schedules/registry.h"

namespace qf::schedules {

namespace {

std::string got(const YAML::Node& n) {
  if (n.IsScalar()) return "got '" + n.Scalar() + "'";
  return n.IsSequence() ? "got a list" : n.IsMap() ? "got a mapping" : "got null";
}

ParamSpec make_spec(std::string name, ParamKind kind, std::string doc) {
  ParamSpec s;
  s.name = std::move(name);
  s.kind = kind;
  s.doc = std::move(doc);
  return s;
}

ParamSpec with_bound(ParamSpec s, bool lower, double v, bool open) {
  (lower ? s.range.low : s.range.high) = v;
  (lower ? s.range.low_open : s.range.high_open) = open;
  return s;
}

}  // namespace

ParamSpec ParamSpec::by_default(std::string yaml) const {
  ParamSpec s = *this;
  s.default_yaml = std::move(yaml);
  return s;
}
ParamSpec ParamSpec::at_least(double v) const {
  return with_bound(*this, true, v, false);
}
ParamSpec ParamSpec::above(double v) const {
  return with_bound(*this, true, v, true);
}
ParamSpec ParamSpec::at_most(double v) const {
  return with_bound(*this, false, v, false);
}
ParamSpec ParamSpec::below(double v) const {
  return with_bound(*this, false, v, true);
}

std::string ParamSpec::range_text() const {
  return range.text();
}

std::string ParamSpec::type_text() const {
  std::string range = range_text();
  std::string suffix = range.empty() ? "" : " " + range;
  switch (kind) {
    case ParamKind::Number:
      return "a number" + suffix;
    case ParamKind::Integer:
      return "an integer" + suffix;
    case ParamKind::Choice:
      return "one of " + join_names(choices);
    case ParamKind::IntegerList:
      return "a list of integers" + (range.empty() ? "" : " each" + suffix);
    case ParamKind::Schedule:
      return "a schedule block {name: …}";
    case ParamKind::ScheduleList:
      return "a list of schedule blocks";
  }
  return "?";
}

ParamSpec number(std::string name, std::string doc) {
  return make_spec(std::move(name), ParamKind::Number, std::move(doc));
}
ParamSpec integer(std::string name, std::string doc) {
  return make_spec(std::move(name), ParamKind::Integer, std::move(doc));
}
ParamSpec choice(std::string name, std::vector<std::string> options, std::string doc) {
  ParamSpec s = make_spec(std::move(name), ParamKind::Choice, std::move(doc));
  s.choices = std::move(options);
  return s;
}
ParamSpec integer_list(std::string name, std::string doc) {
  return make_spec(std::move(name), ParamKind::IntegerList, std::move(doc));
}
ParamSpec schedule_block(std::string name, std::string doc) {
  return make_spec(std::move(name), ParamKind::Schedule, std::move(doc));
}
ParamSpec schedule_list(std::string name, std::string doc) {
  return make_spec(std::move(name), ParamKind::ScheduleList, std::move(doc));
}

// ---- Params ---------------------------------------------------------------------------

Params::Params(const std::string& schedule_name, const std::vector<ParamSpec>& specs,
               const YAML::Node& block, std::string key, const Locator& where)
    : key_(std::move(key)), where_(where) {
  std::vector<std::string> known;
  for (const auto& spec : specs) known.push_back(spec.name);
  for (const auto& kv : block) {
    const std::string name = kv.first.Scalar();
    if (name == "name") continue;
    bool declared = false;
    for (const auto& k : known) declared = declared || k == name;
    if (!declared) {
      throw ConfigError("config " + where_(key_ + "." + name) +
                        ": unknown parameter of schedule '" + schedule_name +
                        "'; its parameters are: " + (known.empty() ? "(none)" : join_names(known)));
    }
  }
  for (const auto& spec : specs) {
    const std::string param_key = key_ + "." + spec.name;
    const YAML::Node given = block[spec.name];
    if (given) {
      values_.emplace(spec.name, read(spec, given, param_key));
    } else if (spec.default_yaml) {
      values_.emplace(spec.name, read(spec, YAML::Load(*spec.default_yaml), param_key));
    } else {
      throw ConfigError("config " + where_(param_key) + ": schedule '" + schedule_name +
                        "' needs parameter '" + spec.name + "' (" + spec.type_text() + ": " +
                        spec.doc + ")");
    }
  }
}

Params::Value Params::read(const ParamSpec& spec, const YAML::Node& node,
                           const std::string& key) const {
  auto expected = [&](const YAML::Node& n, const std::string& at) {
    return ConfigError("config " + where_(at) + ": expected " + spec.type_text() + ", " + got(n));
  };
  // A number inside the declared range; `at` names the element for list items.
  auto scalar = [&](const YAML::Node& n, const std::string& at, auto type_tag) {
    using T = decltype(type_tag);
    T v{};
    try {
      if (!n.IsScalar()) throw expected(n, at);
      v = n.as<T>();
    } catch (const YAML::Exception&) {
      throw expected(n, at);
    }
    const double d = static_cast<double>(v);
    if (!std::isfinite(d) || !spec.range.contains(d)) {
      throw ConfigError("config " + where_(at) + ": must be " + spec.range_text() + ", got " +
                        n.Scalar());
    }
    return v;
  };
  switch (spec.kind) {
    case ParamKind::Number:
      return scalar(node, key, double{});
    case ParamKind::Integer:
      return scalar(node, key, int64_t{});
    case ParamKind::Choice: {
      for (const auto& c : spec.choices) {
        if (node.IsScalar() && node.Scalar() == c) return c;
      }
      throw expected(node, key);
    }
    case ParamKind::IntegerList: {
      if (!node.IsSequence()) throw expected(node, key);
      std::vector<int64_t> out;
      for (size_t i = 0; i < node.size(); ++i) {
        out.push_back(scalar(node[i], key + "." + std::to_string(i), int64_t{}));
      }
      return out;
    }
    case ParamKind::Schedule:
      return make_schedule(node, key, where_);
    case ParamKind::ScheduleList: {
      if (!node.IsSequence() || node.size() == 0) throw expected(node, key);
      std::vector<SchedulePtr> out;
      for (size_t i = 0; i < node.size(); ++i) {
        out.push_back(make_schedule(node[i], key + "." + std::to_string(i), where_));
      }
      return out;
    }
  }
  throw std::logic_error("unhandled ParamKind");
}

template <typename T>
const T& Params::get(const std::string& name) const {
  auto it = values_.find(name);
  // Asking for an undeclared parameter, or as the wrong kind, is a bug in the schedule
  // class, caught by the first test that builds it.
  if (it == values_.end()) throw std::logic_error("schedule parameter not declared: " + name);
  if (!std::holds_alternative<T>(it->second)) {
    throw std::logic_error("schedule parameter read as the wrong kind: " + name);
  }
  return std::get<T>(it->second);
}

double Params::number(const std::string& name) const {
  return get<double>(name);
}
int64_t Params::integer(const std::string& name) const {
  return get<int64_t>(name);
}
const std::string& Params::choice(const std::string& name) const {
  return get<std::string>(name);
}
const std::vector<int64_t>& Params::integers(const std::string& name) const {
  return get<std::vector<int64_t>>(name);
}
SchedulePtr Params::schedule(const std::string& name) const {
  return get<SchedulePtr>(name);
}
const std::vector<SchedulePtr>& Params::schedules(const std::string& name) const {
  return get<std::vector<SchedulePtr>>(name);
}

void Params::fail(const std::string& name, const std::string& message) const {
  throw ConfigError("config " + where_(key_ + "." + name) + ": " + message);
}

}  // namespace qf::schedules
