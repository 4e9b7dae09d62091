#pragma once
// One rank's connection to the job, under DataParallel (train/distributed.h): the
// rendezvous through rank 0's c10d::TCPStore, the process group (Gloo or NCCL), and the
// heartbeat (train/distributed_heartbeat.h) that lets a rank whose collective failed name
// the rank to blame. Internal to train/: it includes c10d, which the public header keeps
// away from the rest of the program.
#include <ATen/ATen.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <vector>

#include "core/torch/compat.h"
#include "train/dist_env.h"
#include "train/distributed_heartbeat.h"

namespace qf::train::detail {

// A collective in flight. `seq` counts the collectives of this group from 1; every rank
// launches them in the same order, so equal numbers name the same collective everywhere.
struct Pending {
  c10::intrusive_ptr<c10d::Work> work;
  int64_t seq = 0;
  std::string what;
};

// Connects to the c10d store at env.master_addr:env.master_port, or hosts it there when
// `host` is true, within `deadline`. A client first waits (quick probes) for something to
// listen there. Errors name the address and the likely cause; `who` ("rank 1",
// "experiment rank 0") starts them.
c10::intrusive_ptr<c10d::TCPStore> connect_store(const DistEnv& env, bool host,
                                                 std::chrono::steady_clock::time_point deadline,
                                                 std::chrono::milliseconds timeout,
                                                 const std::string& who);

class CommGroup {
 public:
  // Joins the job of env.world_size (> 1) ranks: rank 0 hosts the store at
  // env.master_addr:env.master_port (unless torchrun's agent or, with env.store_prefix,
  // the experiment that started this run hosts it; its keys are then under that prefix),
  // every rank claims its rank number there and waits for
  // the others, then the backend ("gloo" or "nccl") connects. Everything fails within
  // `timeout` with an Error naming the ranks that did not show up.
  CommGroup(const DistEnv& env, const std::string& backend, std::chrono::milliseconds timeout);
  ~CommGroup();
  CommGroup(const CommGroup&) = delete;
  CommGroup& operator=(const CommGroup&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  // In-place collectives on one contiguous tensor on the group's device, launched now and
  // finished by wait(). `what` names the collective in errors.
  Pending all_reduce(at::Tensor tensor, c10d::ReduceOp op, std::string what);
  Pending broadcast(at::Tensor tensor, std::string what);
  // Blocks until `p` has finished. A failure (a peer closed its connection, or nothing
  // arrived within the timeout) becomes an Error naming the ranks that stopped
  // responding or never reached this collective; from then on the group refuses every
  // collective with that first message.
  void wait(const Pending& p);
  // Throws the first failure again, if there was one.
  void check_usable() const;

 private:
  void connect_store(const DistEnv& env, std::chrono::steady_clock::time_point deadline);
  void join(const DistEnv& env, std::chrono::steady_clock::time_point deadline);
  void create_backend(const DistEnv& env, const std::string& backend);
  Pending launch(std::string what, const std::function<c10::intrusive_ptr<c10d::Work>()>& start);
  [[noreturn]] void fail(const Pending& p, const std::exception& cause,
                         std::chrono::steady_clock::time_point since);

  int rank_ = 0, world_size_ = 1;
  std::string where_;  // "127.0.0.1:29500", for messages
  bool nccl_ = false;
  std::chrono::milliseconds timeout_, interval_, backend_timeout_;

  c10::intrusive_ptr<c10d::Store> store_;  // the TCPStore, under env.store_prefix if any
  std::unique_ptr<Heartbeat> heartbeat_;
  c10::intrusive_ptr<torch_compat::C10dBackend> backend_;

  std::atomic<int64_t> launched_{0};
  mutable std::mutex fail_mu_;
  std::string first_error_;
};

}  // namespace qf::train::detail
