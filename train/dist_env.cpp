#include "train/dist_env.h"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <sstream>

#include "core/errors.h"

namespace qf::train {
namespace {

using Lookup = std::function<std::optional<std::string>(const std::string&)>;
using HostResolver = std::function<std::string(const std::string& list, const std::string& var)>;

int parse_int(const std::string& variable, const std::string& text, long min, long max) {
  long value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    throw ConfigError("environment variable " + variable + "='" + text + "' is not an integer");
  }
  if (value < min || value > max) {
    throw ConfigError("environment variable " + variable + "=" + text + " is out of range [" +
                      std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return static_cast<int>(value);
}

// The names of one launcher's variables.
struct LauncherVars {
  const char* name;
  const char* rank;
  const char* size;
  const char* local_rank;
};

constexpr LauncherVars kTorchrun{"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"};
constexpr LauncherVars kOpenMpi{"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                "OMPI_COMM_WORLD_LOCAL_RANK"};
constexpr LauncherVars kSlurm{"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"};

DistEnv parse(const Lookup& get, const HostResolver& resolve_host) {
  DistEnv env;
  const LauncherVars* found = nullptr;
  for (const LauncherVars* l : {&kTorchrun, &kOpenMpi, &kSlurm}) {
    if (get(l->rank) || get(l->size)) {
      found = l;
      break;
    }
  }
  if (!found) {
    env.cuda_visible_devices = get("CUDA_VISIBLE_DEVICES");
    return env;
  }
  const LauncherVars& l = *found;
  env.launcher = l.name;
  const auto rank = get(l.rank);
  const auto size = get(l.size);
  if (!rank || !size) {
    const char* missing = rank ? l.size : l.rank;
    const char* present = rank ? l.rank : l.size;
    throw ConfigError(std::string("environment variable ") + missing + " is not set but " +
                      present + " is (" + l.name + " sets both)");
  }
  env.world_size = parse_int(l.size, *size, 1, 1 << 20);
  env.rank = parse_int(l.rank, *rank, 0, 1 << 20);
  if (env.rank >= env.world_size) {
    throw ConfigError(std::string("environment variable ") + l.rank + "=" + *rank +
                      " must be smaller than " + l.size + "=" + *size);
  }
  if (const auto local = get(l.local_rank)) {
    env.local_rank = parse_int(l.local_rank, *local, 0, 1 << 20);
  }
  if (const auto prefix = get("QF_STORE_PREFIX")) env.store_prefix = *prefix;
  env.cuda_visible_devices = get("CUDA_VISIBLE_DEVICES");

  const auto addr = get("MASTER_ADDR");
  const auto port = get("MASTER_PORT");
  if (addr && !addr->empty()) {
    env.master_addr = *addr;
  } else if (found == &kSlurm) {
    const char* var = get("SLURM_JOB_NODELIST") ? "SLURM_JOB_NODELIST" : "SLURM_NODELIST";
    if (const auto list = get(var)) {
      env.master_addr = resolve_host(*list, var);
    } else if (env.world_size > 1) {
      throw ConfigError(
          "neither MASTER_ADDR nor SLURM_JOB_NODELIST is set: rank 0's address "
          "is unknown for " +
          std::to_string(env.world_size) + " Slurm tasks");
    }
  } else if (env.world_size > 1) {
    throw ConfigError("environment variable MASTER_ADDR is not set: " + std::string(l.name) +
                      " with " + std::to_string(env.world_size) + " ranks needs rank 0's address");
  }
  if (port) {
    env.master_port = parse_int("MASTER_PORT", *port, 1, 65535);
  } else if (found == &kSlurm) {
    if (const auto job = get("SLURM_JOB_ID")) {
      env.master_port = 20000 + parse_int("SLURM_JOB_ID", *job, 0, 2147483647) % 10000;
    }
  }
  return env;
}

bool have_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Slurm's own expansion handles every node-list form (ranges with steps, nested
// prefixes); the parser is the fallback for machines without Slurm's tools.
std::string resolve_with_scontrol(const std::string& list, const std::string& variable) {
  if (list.find('\'') == std::string::npos && have_program("scontrol")) {
    const std::string command = "scontrol show hostnames '" + list + "' 2>/dev/null";
    if (FILE* pipe = ::popen(command.c_str(), "r")) {
      char line[1024] = {0};
      const bool got = std::fgets(line, sizeof line, pipe) != nullptr;
      const int status = ::pclose(pipe);
      std::string host = got ? std::string(line) : std::string();
      while (!host.empty() && (host.back() == '\n' || host.back() == '\r')) host.pop_back();
      if (status == 0 && !host.empty()) return host;
    }
  }
  return first_slurm_host(list, variable);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist, const std::string& variable) {
  const auto bad = [&](const std::string& why) {
    return ConfigError("environment variable " + variable + "='" + nodelist +
                       "' is not a Slurm node list: " + why);
  };
  // The first top-level item ends at the first comma outside brackets.
  size_t end = std::string::npos;
  int depth = 0;
  for (size_t i = 0; i < nodelist.size(); ++i) {
    const char c = nodelist[i];
    if (c == '[' && ++depth > 1) throw bad("nested '['");
    if (c == ']' && --depth < 0) throw bad("']' without '['");
    if (c == ',' && depth == 0 && end == std::string::npos) end = i;
  }
  if (depth != 0) throw bad("'[' without ']'");
  const std::string item = nodelist.substr(0, end);
  std::string host;
  for (size_t i = 0; i < item.size();) {
    if (item[i] != '[') {
      host += item[i++];
      continue;
    }
    const size_t close = item.find(']', i);
    const std::string inner = item.substr(i + 1, close - i - 1);
    const std::string first = inner.substr(0, inner.find_first_of(",-"));
    if (first.empty()) throw bad("empty range '[" + inner + "]'");
    host += first;
    i = close + 1;
  }
  if (host.empty()) throw bad("no host before the first ','");
  return host;
}

int DistEnv::cuda_device_index() const {
  if (!cuda_visible_devices) return local_rank;
  int visible = 0;
  std::stringstream entries(*cuda_visible_devices);
  std::string entry;
  while (std::getline(entries, entry, ',')) {
    if (entry.find_first_not_of(" \t") != std::string::npos) ++visible;
  }
  if (visible == 0) {
    throw ConfigError("environment variable CUDA_VISIBLE_DEVICES='" + *cuda_visible_devices +
                      "' shows this rank no GPU");
  }
  if (visible == 1) return 0;
  if (local_rank >= visible) {
    throw ConfigError("LOCAL_RANK (this rank's place on its node) is " +
                      std::to_string(local_rank) +
                      ", but environment variable "
                      "CUDA_VISIBLE_DEVICES='" +
                      *cuda_visible_devices + "' shows it only " + std::to_string(visible) +
                      " GPUs: start at most that many ranks per node, or give each rank one GPU");
  }
  return local_rank;
}

DistEnv DistEnv::from_environment() {
  return parse(
      [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        if (!v) return std::nullopt;
        return std::string(v);
      },
      resolve_with_scontrol);
}

DistEnv DistEnv::from_variables(const std::map<std::string, std::string>& vars) {
  return parse(
      [&](const std::string& name) -> std::optional<std::string> {
        const auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
      },
      [](const std::string& list, const std::string& var) { return first_slurm_host(list, var); });
}

}  // namespace qf::train
