#include "core/config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/errors.h"

namespace fs = std::filesystem;

namespace qf {

namespace {

const char* kDefaultSource = "built-in default";

std::string join_key(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// Follows a dotted key through maps (and sequences, by index). Returns an invalid node
// when a part is missing.
YAML::Node lookup(const YAML::Node& root, const std::string& key) {
  // yaml-cpp's Node::operator= assigns through to the referenced value; reset() rebinds.
  YAML::Node cur;
  cur.reset(root);
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string part =
        key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur.IsMap() && !cur.IsSequence()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& c = cur;  // const access never inserts
    size_t idx = 0;
    if (c.IsSequence()) {
      char* end = nullptr;
      idx = std::strtoul(part.c_str(), &end, 10);
      if (*end != '\0' || idx >= c.size()) return YAML::Node(YAML::NodeType::Undefined);
    }
    // Copy-constructed, never assigned: a missing key yields an invalid node that
    // operator= and reset() would reject.
    const YAML::Node next = c.IsMap() ? c[part] : c[idx];
    if (!next) return YAML::Node(YAML::NodeType::Undefined);
    cur.reset(next);
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

int edit_distance(const std::string& a, const std::string& b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diag = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      int up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string describe_node(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  if (n.IsNull()) return "null";
  return "nothing";
}

template <typename T>
bool converts(const YAML::Node& n) {
  if (!n.IsScalar()) return false;
  try {
    n.as<T>();
    return true;
  } catch (const YAML::Exception&) {
    return false;
  }
}

bool matches_type(const YAML::Node& n, FieldType t) {
  auto all = [&](auto pred) {
    if (!n.IsSequence()) return false;
    for (const auto& e : n) {
      if (!pred(e)) return false;
    }
    return true;
  };
  switch (t) {
    case FieldType::Int:
      return converts<int64_t>(n);
    case FieldType::Float:
      return converts<double>(n);
    case FieldType::Bool:
      return converts<bool>(n);
    case FieldType::String:
    case FieldType::Path:
      return n.IsScalar();
    case FieldType::IntList:
      return all(converts<int64_t>);
    case FieldType::FloatList:
      return all(converts<double>);
    case FieldType::StringList:
      return all([](const YAML::Node& e) { return e.IsScalar(); });
    case FieldType::Block:
      return true;
  }
  return false;
}

// Records the origin of `node` and of everything below it.
void record_origins(const YAML::Node& node, const std::string& key, const Origin& layer,
                    std::map<std::string, Origin>& origins) {
  Origin o = layer;
  if (!node.Mark().is_null() && layer.source != kDefaultSource &&
      layer.source.rfind("--set", 0) != 0) {
    o.line = node.Mark().line + 1;
  }
  // Overriding a subtree forgets the origins of what it replaced.
  for (auto it = origins.lower_bound(key + ".");
       it != origins.end() && it->first.rfind(key + ".", 0) == 0;) {
    it = origins.erase(it);
  }
  origins[key] = o;
  if (node.IsMap()) {
    for (const auto& kv : node) {
      record_origins(kv.second, join_key(key, kv.first.Scalar()), layer, origins);
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      record_origins(node[i], join_key(key, std::to_string(i)), layer, origins);
    }
  }
}

// Merges `src` into `dst[key]`. Mappings merge key by key, except that a block whose
// `name` changes is replaced whole: `schedule: {name: oli}` in a later file must not
// inherit the parameters of the earlier file's `sgdr`.
void merge(YAML::Node dst, const std::string& child, const YAML::Node& src, const std::string& key,
           const Origin& layer, const ConfigSchema& schema,
           std::map<std::string, Origin>& origins) {
  YAML::Node existing = dst[child];
  const FieldSpec* spec = schema.find(key);
  // `train:` with every key commented out is an empty section, not an order to forget
  // the defaults below it.
  if (src.IsNull() && spec == nullptr && schema.is_section(key)) return;
  bool mergeable =
      src.IsMap() && (spec == nullptr || (spec->type == FieldType::Block && existing.IsMap()));
  if (mergeable && spec && src["name"] && existing["name"] &&
      src["name"].Scalar() != existing["name"].Scalar()) {
    mergeable = false;
  }
  if (!mergeable) {
    YAML::Node value = YAML::Clone(src);
    if (spec && spec->type == FieldType::Path && value.IsScalar() && !value.Scalar().empty()) {
      fs::path p(value.Scalar());
      if (p.is_relative()) value = (layer.base_dir / p).lexically_normal().string();
    }
    dst[child] = value;
    record_origins(src, key, layer, origins);
    return;
  }
  if (!existing.IsMap()) {  // a section this layer opens (or a mistake validate() reports)
    dst[child] = YAML::Node(YAML::NodeType::Map);
    existing.reset(dst[child]);
    record_origins(src, key, layer, origins);
  }
  for (const auto& kv : src) {
    const std::string name = kv.first.Scalar();
    merge(existing, name, kv.second, join_key(key, name), layer, schema, origins);
  }
}

// yaml-cpp keeps both entries of a repeated key; YAML forbids them, and silently taking
// one would hide a mistake, so a repeated key is an error naming both lines.
void reject_duplicate_keys(const YAML::Node& node, const std::string& source) {
  if (node.IsMap()) {
    std::map<std::string, int> seen;
    for (const auto& kv : node) {
      const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "";
      const int line = kv.first.Mark().line + 1;
      auto [it, fresh] = seen.emplace(k, line);
      if (!fresh) {
        throw ConfigError("duplicate config key '" + k + "' in " + source + ":" +
                          std::to_string(line) + " (first at line " + std::to_string(it->second) +
                          ")");
      }
      reject_duplicate_keys(kv.second, source);
    }
  } else if (node.IsSequence()) {
    for (const auto& e : node) reject_duplicate_keys(e, source);
  }
}

// The unknown-key message, with the nearest declared key as a suggestion.
[[noreturn]] void unknown_key(const std::string& key, const std::string& section,
                              const ConfigSchema& schema, const Origin& origin) {
  std::ostringstream msg;
  msg << "unknown config key '" << key << "' (" << origin.str() << ")";
  auto known = schema.children(section);
  std::string leaf = key.substr(section.empty() ? 0 : section.size() + 1);
  std::string best;
  int best_d = 3;
  for (const auto& k : known) {
    int d = edit_distance(leaf, k);
    if (d < best_d) best_d = d, best = k;
  }
  if (!best.empty()) msg << "; did you mean '" << join_key(section, best) << "'?";
  if (!known.empty()) {
    msg << " Known keys" << (section.empty() ? "" : " under '" + section + "'") << ": ";
    for (size_t i = 0; i < known.size(); ++i) msg << (i ? ", " : "") << known[i];
  }
  throw ConfigError(msg.str());
}

// The declared choices and range of a value of the right type.
void check_constraint(const FieldSpec& spec, const YAML::Node& v, const std::string& key,
                      const Config& cfg) {
  if (!spec.choices.empty()) {
    for (const auto& c : spec.choices) {
      if (v.Scalar() == c) return;
    }
    throw ConfigError("config " + cfg.where(key) + ": expected one of " + join_names(spec.choices) +
                      ", got " + describe_node(v));
  }
  if (spec.range.unrestricted()) return;
  const auto in_range = [&](const YAML::Node& n, const std::string& at) {
    if (!spec.range.contains(n.as<double>())) {
      throw ConfigError("config " + cfg.where(at) + ": must be " + spec.range.text() + ", got " +
                        n.Scalar());
    }
  };
  if (v.IsSequence()) {
    for (size_t i = 0; i < v.size(); ++i) in_range(v[i], key + "." + std::to_string(i));
  } else {
    in_range(v, key);
  }
}

void validate(const YAML::Node& node, const std::string& prefix, const ConfigSchema& schema,
              const Config& cfg) {
  for (const auto& kv : node) {
    const std::string key = join_key(prefix, kv.first.Scalar());
    const FieldSpec* spec = schema.find(key);
    if (spec) {
      const YAML::Node& v = kv.second;
      bool null_ok = v.IsNull() && spec->default_value && spec->default_value->IsNull();
      if (!null_ok && (v.IsNull() || !matches_type(v, spec->type))) {
        throw ConfigError("config " + cfg.where(key) + ": expected " + field_type_name(spec->type) +
                          ", got " + describe_node(v));
      }
      if (!null_ok) check_constraint(*spec, v, key, cfg);
    } else if (schema.is_section(key)) {
      if (!kv.second.IsMap()) {
        throw ConfigError("config " + cfg.where(key) + ": expected a section with keys " +
                          "under it, got " + describe_node(kv.second));
      }
      validate(kv.second, key, schema, cfg);
    } else {
      unknown_key(key, prefix, schema, cfg.origin(key));
    }
  }
}

}  // namespace

std::string Origin::str() const {
  if (line > 0) return source + ":" + std::to_string(line);
  return source;
}

// ---- Config -------------------------------------------------------------------------

namespace {
YAML::Node require_node(const YAML::Node& root, const std::string& key) {
  YAML::Node n = lookup(root, key);
  if (!n.IsDefined()) throw std::logic_error("config key not declared or not resolved: " + key);
  return n;
}

template <typename T>
T convert_scalar(const Config& cfg, const YAML::Node& n, const std::string& key,
                 const char* expected) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError("config " + cfg.where(key) + ": expected " + expected + ", got " +
                      describe_node(n));
  }
}

template <typename T>
std::vector<T> convert_list(const Config& cfg, const YAML::Node& n, const std::string& key,
                            const char* expected) {
  if (!n.IsSequence()) {
    throw ConfigError("config " + cfg.where(key) + ": expected " + expected + ", got " +
                      describe_node(n));
  }
  std::vector<T> out;
  for (size_t i = 0; i < n.size(); ++i) {
    out.push_back(convert_scalar<T>(cfg, n[i], key + "." + std::to_string(i), expected));
  }
  return out;
}
}  // namespace

int64_t Config::get_int(const std::string& key) const {
  return convert_scalar<int64_t>(*this, require_node(root_, key), key, "an integer");
}
double Config::get_float(const std::string& key) const {
  return convert_scalar<double>(*this, require_node(root_, key), key, "a number");
}
bool Config::get_bool(const std::string& key) const {
  return convert_scalar<bool>(*this, require_node(root_, key), key, "a boolean");
}
std::string Config::get_string(const std::string& key) const {
  YAML::Node n = require_node(root_, key);
  if (n.IsNull()) return "";
  return convert_scalar<std::string>(*this, n, key, "a string");
}
fs::path Config::get_path(const std::string& key) const {
  return fs::path(get_string(key));
}
std::vector<int64_t> Config::get_int_list(const std::string& key) const {
  return convert_list<int64_t>(*this, require_node(root_, key), key, "a list of integers");
}
std::vector<double> Config::get_float_list(const std::string& key) const {
  return convert_list<double>(*this, require_node(root_, key), key, "a list of numbers");
}
std::vector<std::string> Config::get_string_list(const std::string& key) const {
  return convert_list<std::string>(*this, require_node(root_, key), key, "a list of strings");
}
YAML::Node Config::node(const std::string& key) const {
  return YAML::Clone(require_node(root_, key));
}
bool Config::is_null(const std::string& key) const {
  YAML::Node n = lookup(root_, key);
  return !n.IsDefined() || n.IsNull();
}

void Config::throw_not_one_of(const std::string& key, const std::string& value,
                              const std::vector<std::string>& names) const {
  throw ConfigError("config " + where(key) + ": expected one of " + join_names(names) + ", got '" +
                    value + "'");
}

Origin Config::origin(const std::string& key) const {
  // The most specific recorded origin: "schedule.t0" falls back to "schedule".
  std::string k = key;
  while (true) {
    auto it = origins_.find(k);
    if (it != origins_.end()) return it->second;
    size_t dot = k.rfind('.');
    if (dot == std::string::npos) break;
    k = k.substr(0, dot);
  }
  return Origin{kDefaultSource, 0, fs::current_path()};
}

std::string Config::where(const std::string& key) const {
  return "key '" + key + "' (" + origin(key).str() + ")";
}

namespace {
// One line per scalar or flat list; blocks are emitted in block style, indented.
void emit_value(std::ostringstream& out, const YAML::Node& v, int indent) {
  bool flat = v.IsScalar() || v.IsNull() || (v.IsSequence() && [&] {
                for (const auto& e : v) {
                  if (!e.IsScalar()) return false;
                }
                return true;
              }());
  YAML::Emitter e;
  if (flat) {
    // A list read in block style keeps that style in its node, which the Flow manipulator
    // does not override: the copy is told to be flow explicitly.
    YAML::Node copy = YAML::Clone(v);
    copy.SetStyle(YAML::EmitterStyle::Flow);
    e << YAML::Flow << copy;
    out << " " << (v.IsNull() ? "null" : e.c_str()) << "\n";
    return;
  }
  if (v.size() == 0) {
    out << (v.IsMap() ? " {}\n" : " []\n");
    return;
  }
  e << YAML::Block << v;
  out << "\n";
  std::istringstream lines(e.c_str());
  for (std::string line; std::getline(lines, line);) {
    out << std::string(indent + 2, ' ') << line << "\n";
  }
}

void emit_section(std::ostringstream& out, const Config& cfg, const std::string& section,
                  int indent, bool with_docs) {
  const auto& schema = cfg.schema();
  for (const auto& child : schema.children(section)) {
    const std::string key = join_key(section, child);
    const std::string pad(indent, ' ');
    if (const FieldSpec* spec = schema.find(key)) {
      if (cfg.is_null(key) && !spec->default_value && !with_docs) continue;
      if (with_docs) {
        std::istringstream doc(spec->doc);
        for (std::string line; std::getline(doc, line);) out << pad << "# " << line << "\n";
        if (const std::string c = spec->constraint_text(); !c.empty()) {
          out << pad << "# (" << c << ")\n";
        }
        if (spec->defines_result) out << pad << "# (defines the result)\n";
        if (!spec->default_value) out << pad << "# (required)\n";
      }
      out << pad << child << ":";
      if (cfg.is_null(key)) {
        out << " null\n";
      } else {
        emit_value(out, cfg.node(key), indent);
      }
    } else {
      out << pad << child << ":\n";
      emit_section(out, cfg, key, indent + 2, with_docs);
    }
  }
}
}  // namespace

std::string Config::dump(bool with_docs) const {
  std::ostringstream out;
  emit_section(out, *this, "", 0, with_docs);
  return out.str();
}

// ---- ConfigLoader -------------------------------------------------------------------

ConfigLoader::ConfigLoader(const ConfigSchema& schema) : schema_(schema) {}

void ConfigLoader::add_file(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    throw ConfigError("config file '" + path.string() + "' is a directory; give a YAML file");
  }
  std::ifstream in(path);
  if (!in) throw ConfigError(errno_message("cannot read config file", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  fs::path dir = fs::absolute(path).parent_path();
  add_text(text.str(), path.string(), dir);
}

void ConfigLoader::add_text(const std::string& yaml, const std::string& source_name,
                            const fs::path& base_dir) {
  YAML::Node tree;
  try {
    tree = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    throw ConfigError("malformed YAML in " + source_name + ":" + std::to_string(e.mark.line + 1) +
                      ":" + std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (tree.IsNull()) tree = YAML::Node(YAML::NodeType::Map);  // an empty file is fine
  reject_duplicate_keys(tree, source_name);
  if (!tree.IsMap()) {
    throw ConfigError("config file " + source_name +
                      " must hold a mapping of keys at its top level, got " + describe_node(tree));
  }
  layers_.push_back(Layer{tree, Origin{source_name, 0, base_dir}});
}

void ConfigLoader::add_override(const std::string& assignment) {
  const std::string source = "--set " + assignment;
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw UsageError("'" + source + "': expected --set dotted.key=value");
  }
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::ParserException& e) {
    throw ConfigError("'" + source + "': the value is not valid YAML: " + e.msg);
  }
  add_value(assignment.substr(0, eq), value, Origin{source, 0, fs::current_path()});
}

void ConfigLoader::add_value(const std::string& key, const YAML::Node& value,
                             const Origin& origin) {
  // Build {a: {b: {c: value}}} from "a.b.c".
  YAML::Node tree(YAML::NodeType::Map);
  YAML::Node cur = tree;
  size_t start = 0;
  for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
    std::string part = key.substr(start, dot - start);
    if (part.empty())
      throw UsageError("'" + origin.str() + "': empty part in the key '" + key + "'");
    cur[part] = YAML::Node(YAML::NodeType::Map);
    cur.reset(cur[part]);
    start = dot + 1;
  }
  if (start >= key.size()) {
    throw UsageError("'" + origin.str() + "': empty part in the key '" + key + "'");
  }
  cur[key.substr(start)] = YAML::Clone(value);
  layers_.push_back(Layer{tree, origin});
}

Config ConfigLoader::resolve(bool require_all) const {
  Config cfg;
  cfg.schema_ = &schema_;
  cfg.root_ = schema_.defaults();
  record_origins(cfg.root_, "", Origin{kDefaultSource, 0, fs::current_path()}, cfg.origins_);
  cfg.origins_.erase("");
  for (const auto& layer : layers_) {
    for (const auto& kv : layer.tree) {
      const std::string name = kv.first.Scalar();
      merge(cfg.root_, name, kv.second, name, layer.origin, schema_, cfg.origins_);
    }
  }
  validate(cfg.root_, "", schema_, cfg);
  for (const auto& f : schema_.fields()) {
    if (require_all && !f.default_value && cfg.is_null(f.key)) {
      throw ConfigError("missing required config key '" + f.key + "' (" + f.doc +
                        "): set it in a --config file or with --set " + f.key + "=...");
    }
  }
  return cfg;
}

}  // namespace qf
