#include "quant_probe/audit_checkpoints.h"

#include <glob.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>

#include "core/errors.h"
#include "core/step_name.h"

namespace fs = std::filesystem;

namespace qf::quant {

namespace {

std::map<std::string, std::int64_t> read_step_map(const fs::path& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    throw ConfigError("audit.step_map '" + path.string() + "': " + e.what());
  }
  if (!root.IsMap()) {
    throw ConfigError("audit.step_map '" + path.string() + "': expected {directory name: step}");
  }
  std::map<std::string, std::int64_t> steps;
  for (const auto& kv : root) {
    try {
      steps[kv.first.as<std::string>()] = kv.second.as<std::int64_t>();
    } catch (const YAML::Exception&) {
      throw ConfigError("audit.step_map '" + path.string() + "': the step of '" +
                        kv.first.as<std::string>() + "' is not an integer");
    }
  }
  return steps;
}

std::vector<fs::path> expand(const std::string& pattern) {
  if (pattern.find_first_of("*?[") == std::string::npos) return {fs::path(pattern)};
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<fs::path> out;
  if (rc == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i) {
      if (fs::is_directory(g.gl_pathv[i])) out.emplace_back(g.gl_pathv[i]);
    }
  }
  globfree(&g);
  if (out.empty()) throw UsageError("audit: '" + pattern + "' matches no checkpoint directory");
  return out;
}

}  // namespace

std::vector<AuditCheckpoint> find_checkpoints(const std::vector<std::string>& patterns,
                                              const CheckpointNaming& o) {
  const auto map = o.step_map ? read_step_map(*o.step_map) : std::map<std::string, std::int64_t>{};
  const std::regex step_pattern(o.step_pattern);
  std::vector<AuditCheckpoint> out;
  std::map<std::int64_t, fs::path> seen;
  for (const auto& pattern : patterns) {
    for (const auto& dir : expand(pattern)) {
      const std::string name = (dir.has_filename() ? dir : dir.parent_path()).filename().string();
      std::optional<std::int64_t> step;
      if (auto it = map.find(name); it != map.end()) step = it->second;
      if (auto it = map.find(dir.string()); it != map.end()) step = it->second;
      if (!step) step = step_in_name(dir, step_pattern);
      if (!step) {
        throw UsageError("audit: no step in the name of checkpoint '" + dir.string() +
                         "' (audit.step_pattern '" + o.step_pattern +
                         "'); name it stepN or list it in audit.step_map");
      }
      if (auto it = seen.find(*step); it != seen.end()) {
        if (fs::weakly_canonical(it->second) == fs::weakly_canonical(dir)) continue;
        throw UsageError("audit: '" + it->second.string() + "' and '" + dir.string() +
                         "' are both step " + std::to_string(*step));
      }
      seen.emplace(*step, dir);
      out.push_back({dir, *step});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const AuditCheckpoint& a, const AuditCheckpoint& b) { return a.step < b.step; });
  return out;
}

}  // namespace qf::quant
