#pragma once
// Layered configuration (interfaces.md): built-in defaults < `--config` files in order <
// `--set dotted.key=value` overrides (the value parsed as YAML). The loader records where
// every value came from, so an unknown key, a wrong type or a missing value is reported
// with its file and line. Validation is kept apart from parsing: `resolve()` checks the
// merged tree against the schema.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/config_schema.h"

namespace qf {

// Where a configuration value came from.
struct Origin {
  std::string source;              // a file path, "--set key=value" or "built-in default"
  int line = 0;                    // 1-based line in `source`, 0 when unknown
  std::filesystem::path base_dir;  // relative paths in this value resolve against it
  std::string str() const;         // "file.yaml:12", "--set train.steps=x", ...
};

class Config {
 public:
  Config() = default;

  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  // The path as the user wrote it, resolved against the folder of the file that set it.
  std::filesystem::path get_path(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;
  std::vector<double> get_float_list(const std::string& key) const;
  std::vector<std::string> get_string_list(const std::string& key) const;
  // A String field declared with one_of(names): the chosen name's value.
  template <typename E>
  E get_enum(const std::string& key, const EnumNames<E>& names) const {
    const std::string chosen = get_string(key);
    for (const auto& [name, value] : names) {
      if (name == chosen) return value;
    }
    throw_not_one_of(key, chosen, names_of(names));
  }
  // A Block field (or any subtree). Its values keep their origins: see origin().
  YAML::Node node(const std::string& key) const;
  bool is_null(const std::string& key) const;

  // Where `key` (a declared field or anything below a Block, e.g. "schedule.t0") was set.
  Origin origin(const std::string& key) const;
  // "key 'schedule.t0' (runs/a.yaml:7)": the prefix of every error about a value.
  std::string where(const std::string& key) const;

  // The resolved configuration as YAML, fields in schema order; with `with_docs`, each
  // field is preceded by its documentation as a comment.
  std::string dump(bool with_docs = false) const;
  const ConfigSchema& schema() const { return *schema_; }

 private:
  template <typename E>
  static std::vector<std::string> names_of(const EnumNames<E>& names) {
    std::vector<std::string> out;
    for (const auto& n : names) out.push_back(n.first);
    return out;
  }
  [[noreturn]] void throw_not_one_of(const std::string& key, const std::string& value,
                                     const std::vector<std::string>& names) const;
  friend class ConfigLoader;
  const ConfigSchema* schema_ = nullptr;
  YAML::Node root_;
  std::map<std::string, Origin> origins_;
};

class ConfigLoader {
 public:
  // The schema must outlive the loader and every Config it resolves.
  explicit ConfigLoader(const ConfigSchema& schema);

  // A YAML file; ConfigError (exit 2) when it is missing, unreadable or malformed.
  void add_file(const std::filesystem::path& path);
  // YAML text with a name for messages (embedded configs, tests).
  void add_text(const std::string& yaml, const std::string& source_name,
                const std::filesystem::path& base_dir = std::filesystem::current_path());
  // One `--set dotted.key=value`; the value is parsed as YAML.
  void add_override(const std::string& assignment);
  // One dotted key set to `value` as a layer of its own, from `origin` (e.g. a sweep's
  // grid entry): what add_override does with an already parsed value.
  void add_value(const std::string& key, const YAML::Node& value, const Origin& origin);

  // Merges the layers and validates them against the schema: unknown keys, wrong types
  // and missing required values throw ConfigError naming the key and its origin.
  // `require_all` false lets required keys stay unset (for --dump-config-docs, which
  // documents them).
  Config resolve(bool require_all = true) const;

 private:
  struct Layer {
    YAML::Node tree;
    Origin origin;
  };
  const ConfigSchema& schema_;
  std::vector<Layer> layers_;
};

}  // namespace qf
