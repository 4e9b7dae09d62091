#pragma once
// Data parallelism for the trainer: every rank holds the whole model, computes gradients
// on its share of the batch, and DataParallel averages them over ranks during backward,
// as PyTorch's DistributedDataParallel does. Ranks rendezvous through c10d's TCPStore
// hosted by rank 0 and talk through ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA).
//
// Failure contract: the rendezvous and every collective fail within
// DataParallelOptions::timeout when a rank is dead or hung, with a qf::Error naming it
// ("ranks 2, 3 of 4 never joined", "rank 1 stopped responding ...", "rank 2 is alive but
// never reached this collective ...", "rank 0 is unreachable ..."): every rank beats a
// heartbeat into rank 0's store, and a rank whose collective failed reads them all. After
// a failure every further call throws that first message again, and the destructor
// returns promptly so that the process can exit.
//
// Network: ranks on one machine (MASTER_ADDR 127.x/localhost) talk over loopback;
// across machines Gloo binds to the address of this host's name, or to the interface
// named by GLOO_SOCKET_IFNAME (needed where the name resolves to 127.0.1.1).
#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/dist_env.h"

namespace qf::train {

namespace detail {
class CommGroup;
}

struct DataParallelOptions {
  // How long a rank waits for the others at the rendezvous and in any collective before
  // failing with the names of the ranks that did not arrive.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  // Gradient all-reduce bucket size: gradients are sent in buckets of about this many
  // bytes (at least one parameter each), launched as soon as backward has produced all
  // of a bucket's gradients.
  int64_t bucket_bytes = 25 << 20;
  // "auto": nccl for CUDA devices, gloo for CPU; or "gloo", "nccl" (CUDA only).
  std::string backend = "auto";
};

class DataParallel {
 public:
  // Joins the job described by `env` (see DistEnv::from_environment). world_size 1: a
  // valid object that does nothing (no store, no sockets, no threads).
  DataParallel(const DistEnv& env, at::Device device, DataParallelOptions options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_root() const { return rank_ == 0; }  // rank 0

  // Rank 0's values into everyone's tensors (weights at start). Tensors live on the
  // device given at construction; they are sent in buckets of bucket_bytes.
  void broadcast(const std::vector<at::Tensor>& tensors);

  // Registers a hook on each parameter's gradient accumulator. Parameters are bucketed in
  // reverse order (gradients appear in roughly reverse order during backward); when
  // backward has produced every gradient of a bucket, the bucket is flattened and its
  // all-reduce is launched asynchronously, so communication overlaps the rest of the
  // backward pass. Buckets are launched in index order on every rank (a bucket that is
  // ready early waits for the ones before it), which keeps the collectives of all ranks in
  // step. `params` must be distinct leaf tensors that require grad, on the device; a
  // second attach() replaces the first. World size 1: registers nothing.
  void attach(const std::vector<at::Tensor>& params);

  // Gradient accumulation: when false, the hooks do nothing (like DDP's no_sync) and
  // gradients just accumulate locally; set true for the last micro-batch. Default true.
  void set_sync(bool sync);

  // Waits for every bucket launched in this backward (and launches those not launched
  // yet), then writes the average over ranks into each param.grad(). A parameter whose
  // gradient this backward did not produce contributes what its .grad() holds (earlier
  // micro-batches), or zeros when it has none; every rank takes part in every bucket
  // whatever its unused parameters, so ranks need not agree on them, but a bucket holding
  // an unused parameter is only launched here (no overlap for it and the ones after it).
  // Afterwards every parameter has a gradient and the gradients are identical on all
  // ranks. Calling it after set_sync(false) is allowed: it then syncs everything here.
  // The average is the all-reduced sum divided by the world size (on the CPU, equal to
  // the gradient of the mean loss over the concatenated batch to float rounding). With
  // NCCL it returns once the GPU has finished the all-reduces. World size 1: does nothing.
  void finish_backward();

  // Averages/sums plain values across ranks (loss, token counts, found-NaN flags).
  double all_reduce_mean(double v);
  double all_reduce_max(double v);
  void all_reduce_sum_(at::Tensor& t);  // in place; t on the device
  void barrier();

  // Buckets of the attached parameters, and how many of them this backward has launched
  // so far (for logs, and for tests that check communication starts during backward).
  int bucket_count() const;
  int launched_bucket_count() const;

 private:
  struct State;
  void launch_ready_buckets(State& s);
  void launch_bucket(State& s, size_t index);
  void on_gradient_ready(size_t index);
  double all_reduce_scalar(double v, bool max, const char* what);

  int rank_ = 0, world_size_ = 1;
  at::Device device_;
  DataParallelOptions options_;
  std::unique_ptr<detail::CommGroup> group_;  // null for world size 1
  // Parameters, hooks and buckets, behind a mutex: the hooks run on autograd's threads.
  std::unique_ptr<State> state_;
};

}  // namespace qf::train
