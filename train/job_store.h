#pragma once
// The store of a whole job, for programs that coordinate the runs they start rather than
// train themselves (`quantfork experiment` with run groups, experiments/run_groups.h):
// rank 0 hosts a c10d TCPStore at MASTER_ADDR:MASTER_PORT for as long as the object
// lives (or, under torchrun's agent store, every rank is a client of the agent's), and
// the runs started by the job meet there under their own key prefixes
// (DistEnv::store_prefix). c10d stays inside train/.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "train/dist_env.h"

namespace qf::train {

class JobStore {
 public:
  // Hosts (rank 0) or connects to the store described by `env` (world_size > 1), within
  // `timeout`; Error naming the address when it cannot.
  JobStore(const DistEnv& env, std::chrono::milliseconds timeout);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Whether this process hosts the store (the job ends when it exits).
  bool hosts() const;
  void set(const std::string& key, const std::string& value);
  // The value at `key`; nullopt when it is not there (no waiting).
  std::optional<std::string> try_get(const std::string& key);
  // The value at `key`, waiting for it up to the timeout (Error naming the key after).
  std::string get(const std::string& key);
  // Adds `delta` to the counter at `key` and returns the new value (0 adds nothing).
  int64_t add(const std::string& key, int64_t delta);
  // From now until destruction, a thread counts up the value at `key` every `interval`:
  // a sign of life that other ranks can watch (a process that died stops counting). Once.
  void beat(const std::string& key, std::chrono::milliseconds interval);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qf::train
