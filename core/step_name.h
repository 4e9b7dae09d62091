#pragma once
// The global step a checkpoint directory's name holds. The name is the directory's last
// component ("runs/a/step8/" is "step8"), read one of two ways:
//  - checkpoint_dir_step: the whole name is step<N>, as in quantfork's own
//    checkpoints/step<N>/ and Pythia's revisions; exact, so a leftover ".step8.tmp" or
//    "step8.old.x" is no checkpoint.
//  - step_in_name: the first group of a regular expression searched in the name (the
//    audit's audit.step_pattern), for checkpoints that other tools named.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <regex>

namespace qf {

std::optional<std::int64_t> checkpoint_dir_step(const std::filesystem::path& dir);
// nullopt when the pattern is not found, its first group did not take part, or the digits
// do not fit an int64.
std::optional<std::int64_t> step_in_name(const std::filesystem::path& dir,
                                         const std::regex& pattern);

}  // namespace qf
