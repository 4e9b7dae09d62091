#include "schedules/registry.h"

#include <sstream>
#include <stdexcept>

#include "core/errors.h"

namespace qf::schedules {

ScheduleRegistry& ScheduleRegistry::instance() {
  // Function-local: registrations run during static initialisation, in any file order.
  static ScheduleRegistry registry;
  return registry;
}

void ScheduleRegistry::add(ScheduleType type) {
  if (type.name.empty() || type.name.find_first_of(" .,:") != std::string::npos) {
    throw std::logic_error("bad schedule name '" + type.name + "'");
  }
  const std::string name = type.name;
  if (!types_.emplace(name, std::move(type)).second) {
    throw std::logic_error("schedule '" + name + "' registered twice");
  }
}

const ScheduleType* ScheduleRegistry::find(const std::string& name) const {
  auto it = types_.find(name);
  return it == types_.end() ? nullptr : &it->second;
}

std::vector<const ScheduleType*> ScheduleRegistry::all() const {
  std::vector<const ScheduleType*> out;
  for (const auto& kv : types_) out.push_back(&kv.second);
  return out;
}

ScheduleRegistration::ScheduleRegistration(ScheduleType type) {
  ScheduleRegistry::instance().add(std::move(type));
}

namespace {

std::string registered_names() {
  std::string out;
  for (const auto* t : ScheduleRegistry::instance().all())
    out += (out.empty() ? "" : ", ") + t->name;
  return out;
}

}  // namespace

SchedulePtr make_schedule(const YAML::Node& block, const std::string& key, const Locator& where) {
  const Locator locate = where ? where : [](const std::string& k) { return "key '" + k + "'"; };
  const std::string expected =
      "expected a schedule block {name: NAME, …parameters} with NAME one of " + registered_names();
  if (!block.IsMap()) {
    throw ConfigError("config " + locate(key) + ": " + expected + ", got " +
                      (block.IsScalar() ? "'" + block.Scalar() + "'" : "something else"));
  }
  const YAML::Node name = block["name"];
  if (!name || !name.IsScalar()) {
    throw ConfigError("config " + locate(key + ".name") + ": " + expected);
  }
  const ScheduleType* type = ScheduleRegistry::instance().find(name.Scalar());
  if (!type) {
    throw ConfigError("config " + locate(key + ".name") + ": unknown schedule '" + name.Scalar() +
                      "'; registered schedules: " + registered_names());
  }
  return type->make(Params(type->name, type->params, block, key, locate));
}

Locator locator_for(const Config& cfg) {
  return [&cfg](const std::string& k) { return cfg.where(k); };
}

SchedulePtr make_schedule(const Config& cfg, const std::string& key) {
  return make_schedule(cfg.node(key), key, locator_for(cfg));
}

std::string describe_schedules() {
  std::ostringstream out;
  for (const auto* t : ScheduleRegistry::instance().all()) {
    out << t->name << ": " << t->summary << "\n";
    for (const auto& p : t->params) {
      out << "    " << p.name << ": " << p.type_text() << "; "
          << (p.default_yaml ? "default " + *p.default_yaml : std::string("required")) << "\n"
          << "        " << p.doc << "\n";
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace qf::schedules
