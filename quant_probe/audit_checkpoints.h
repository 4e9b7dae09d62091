#pragma once
// The checkpoints an audit probes: directories given as paths or glob patterns, each with
// the global step its name holds (audit.step_pattern, default `step([0-9]+)`, Pythia's
// revision names) or that a mapping file gives (audit.step_map, YAML {name: step}).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qf::quant {

struct AuditCheckpoint {
  std::filesystem::path dir;
  std::int64_t step = 0;
};

// How a checkpoint's step is read from its directory.
struct CheckpointNaming {
  std::string step_pattern = "step([0-9]+)";      // searched in the name; group 1: the step
  std::optional<std::filesystem::path> step_map;  // {directory name or path: step}; wins
};

// Expands the patterns (a pattern without glob characters is taken as a path, whether
// it exists or not: a missing checkpoint is the audit's to report), reads each step and
// sorts by step. UsageError for a glob that matches no directory, a name without a step
// or two checkpoints with one step; ConfigError for an unreadable step map.
std::vector<AuditCheckpoint> find_checkpoints(const std::vector<std::string>& patterns,
                                              const CheckpointNaming& naming);

}  // namespace qf::quant
