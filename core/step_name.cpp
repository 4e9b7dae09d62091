#include "core/step_name.h"

#include <stdexcept>
#include <string>

namespace qf {

namespace {

std::string last_component(const std::filesystem::path& dir) {
  return (dir.has_filename() ? dir : dir.parent_path()).filename().string();
}

std::optional<std::int64_t> group_value(const std::smatch& m) {
  if (m.size() < 2 || !m[1].matched) return std::nullopt;
  try {
    return std::stoll(m[1].str());
  } catch (const std::exception&) {  // no digits, or too many
    return std::nullopt;
  }
}

}  // namespace

std::optional<std::int64_t> checkpoint_dir_step(const std::filesystem::path& dir) {
  static const std::regex exact("step([0-9]{1,18})");
  const std::string name = last_component(dir);
  std::smatch m;
  if (!std::regex_match(name, m, exact)) return std::nullopt;
  return group_value(m);
}

std::optional<std::int64_t> step_in_name(const std::filesystem::path& dir,
                                         const std::regex& pattern) {
  const std::string name = last_component(dir);
  std::smatch m;
  if (!std::regex_search(name, m, pattern)) return std::nullopt;
  return group_value(m);
}

}  // namespace qf
