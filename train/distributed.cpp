#include "train/distributed.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <functional>
#include <mutex>
#include <unordered_set>

#include "core/errors.h"
#include "train/distributed_group.h"

namespace qf::train {
namespace {

using torch::autograd::variable_list;

// Runs after AccumulateGrad has added this backward's gradient into param.grad(): the
// moment DDP's Reducer marks a parameter ready.
class GradReadyHook : public torch::autograd::FunctionPostHook {
 public:
  explicit GradReadyHook(std::function<void()> fn) : fn_(std::move(fn)) {}
  variable_list operator()(const variable_list& outputs, const variable_list&) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

std::string resolve_backend(const std::string& backend, at::Device device) {
  if (backend == "auto") return device.is_cuda() ? "nccl" : "gloo";
  if (backend != "gloo" && backend != "nccl") {
    throw ConfigError("data-parallel backend '" + backend + "' is not one of auto, gloo, nccl");
  }
  if (backend == "nccl" && !device.is_cuda()) {
    throw ConfigError("data-parallel backend 'nccl' needs a CUDA device, not " + device.str());
  }
  return backend;
}

void check_on(const at::Tensor& t, at::Device device, const std::string& what) {
  if (!t.defined()) throw Error(what + " is an undefined tensor");
  if (t.device() != device || t.layout() != at::kStrided) {
    throw Error(what + " is a " + t.toString() + " on " + t.device().str() +
                "; expected a dense tensor on " + device.str());
  }
}

}  // namespace

struct DataParallel::State {
  struct Bucket {
    std::vector<size_t> params;  // indices into State::params
    std::vector<int64_t> offsets;
    at::Tensor flat;     // the gradients of `params`, end to end, in the wire dtype
    size_t pending = 0;  // gradients of this backward not produced yet
    detail::Pending work;
  };

  std::mutex mu;
  std::vector<at::Tensor> params;
  // The parameters' AccumulateGrad nodes: a tensor holds its own only weakly, and our
  // hooks live on these very nodes.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<uintptr_t> hook_keys;
  std::vector<size_t> bucket_of;
  std::vector<char> ready;
  std::vector<Bucket> buckets;
  size_t next_launch = 0;  // buckets go out in index order, the same on every rank
  bool sync = true;
  bool gloo = true;

  // Gloo has no bfloat16 reduction: such gradients travel as float32.
  at::ScalarType wire(at::ScalarType t) const {
    return gloo && t == at::kBFloat16 ? at::kFloat : t;
  }

  void new_backward() {
    std::fill(ready.begin(), ready.end(), 0);
    for (auto& b : buckets) {
      b.pending = b.params.size();
      b.work = {};
    }
    next_launch = 0;
  }

  void detach() {
    for (size_t i = 0; i < accumulators.size(); ++i) accumulators[i]->del_post_hook(hook_keys[i]);
    accumulators.clear();
    hook_keys.clear();
    params.clear();
    buckets.clear();
    bucket_of.clear();
    ready.clear();
  }
};

DataParallel::DataParallel(const DistEnv& env, at::Device device, DataParallelOptions options)
    : rank_(env.rank),
      world_size_(env.world_size),
      device_(device),
      options_(std::move(options)),
      state_(std::make_unique<State>()) {
  if (env.world_size < 1 || env.rank < 0 || env.rank >= env.world_size) {
    throw ConfigError("rank " + std::to_string(env.rank) + " is not within a world of " +
                      std::to_string(env.world_size) + " ranks");
  }
  if (options_.timeout.count() <= 0) throw ConfigError("data-parallel timeout must be > 0");
  if (options_.bucket_bytes <= 0) throw ConfigError("data-parallel bucket_bytes must be > 0");
  const std::string backend = resolve_backend(options_.backend, device_);
  state_->gloo = backend == "gloo";
  if (world_size_ > 1) group_ = std::make_unique<detail::CommGroup>(env, backend, options_.timeout);
}

DataParallel::~DataParallel() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->detach();
}

void DataParallel::broadcast(const std::vector<at::Tensor>& tensors) {
  if (!group_) return;
  std::lock_guard<std::mutex> lock(state_->mu);
  for (size_t i = 0; i < tensors.size(); ++i) {
    check_on(tensors[i], device_, "broadcast tensor #" + std::to_string(i));
  }
  at::NoGradGuard no_grad;
  // Runs of tensors of one dtype, about bucket_bytes each, travel as one flat tensor.
  for (size_t begin = 0; begin < tensors.size();) {
    size_t end = begin;
    int64_t bytes = 0;
    std::vector<at::Tensor> flat_parts;
    while (end < tensors.size() && tensors[end].scalar_type() == tensors[begin].scalar_type() &&
           (end == begin || bytes < options_.bucket_bytes)) {
      bytes += tensors[end].numel() * tensors[end].element_size();
      flat_parts.push_back(tensors[end].reshape(-1));
      ++end;
    }
    at::Tensor flat = at::cat(flat_parts).to(state_->wire(tensors[begin].scalar_type()));
    group_->wait(group_->broadcast(
        flat, "broadcast of tensors #" + std::to_string(begin) + "-#" + std::to_string(end - 1)));
    if (!is_root()) {
      int64_t offset = 0;
      for (size_t i = begin; i < end; ++i) {
        const int64_t n = tensors[i].numel();
        tensors[i].copy_(flat.narrow(0, offset, n).view(tensors[i].sizes()));
        offset += n;
      }
    }
    begin = end;
  }
}

void DataParallel::attach(const std::vector<at::Tensor>& params) {
  if (!group_) return;
  std::lock_guard<std::mutex> lock(state_->mu);
  State& s = *state_;
  s.detach();
  std::unordered_set<const void*> seen;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    const std::string what = "parameter #" + std::to_string(i);
    check_on(p, device_, what);
    if (!p.requires_grad() || !p.is_leaf()) {
      throw Error(what + " must be a leaf tensor that requires grad");
    }
    if (!seen.insert(p.unsafeGetTensorImpl()).second) {
      throw Error(what + " is passed twice to DataParallel::attach");
    }
  }
  s.params = params;
  s.bucket_of.assign(params.size(), 0);
  s.ready.assign(params.size(), 0);
  // Reverse order of registration (DDP's heuristic for the order gradients appear in);
  // a bucket closes once it holds bucket_bytes, or when the dtype changes.
  int64_t bytes = 0;
  for (size_t k = params.size(); k-- > 0;) {
    const auto& p = params[k];
    if (s.buckets.empty() || bytes >= options_.bucket_bytes ||
        s.buckets.back().flat.scalar_type() != s.wire(p.scalar_type())) {
      s.buckets.emplace_back();
      s.buckets.back().flat = at::empty({0}, p.options().dtype(s.wire(p.scalar_type())));
      bytes = 0;
    }
    auto& b = s.buckets.back();
    b.params.push_back(k);
    s.bucket_of[k] = s.buckets.size() - 1;
    bytes += p.numel() * p.element_size();
  }
  for (auto& b : s.buckets) {
    int64_t numel = 0;
    for (size_t j = 0; j < b.params.size(); ++j) {
      b.offsets.push_back(numel);
      numel += params[b.params[j]].numel();
    }
    b.flat = at::empty({numel}, b.flat.options());
  }
  s.new_backward();
  for (size_t i = 0; i < params.size(); ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(params[i]);
    s.hook_keys.push_back(
        acc->add_post_hook(std::make_unique<GradReadyHook>([this, i] { on_gradient_ready(i); })));
    s.accumulators.push_back(std::move(acc));
  }
}

int DataParallel::bucket_count() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return static_cast<int>(state_->buckets.size());
}

int DataParallel::launched_bucket_count() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return static_cast<int>(state_->next_launch);
}

void DataParallel::set_sync(bool sync) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->sync = sync;
}

void DataParallel::on_gradient_ready(size_t index) {
  std::lock_guard<std::mutex> lock(state_->mu);
  State& s = *state_;
  if (!s.sync) return;
  if (s.ready[index]) {
    throw Error("parameter #" + std::to_string(index) +
                " got a second gradient before finish_backward(): call set_sync(false) for "
                "every micro-batch but the last");
  }
  s.ready[index] = 1;
  if (--s.buckets[s.bucket_of[index]].pending == 0) launch_ready_buckets(s);
}

void DataParallel::launch_ready_buckets(State& s) {
  while (s.next_launch < s.buckets.size() && s.buckets[s.next_launch].pending == 0) {
    launch_bucket(s, s.next_launch++);
  }
}

void DataParallel::launch_bucket(State& s, size_t index) {
  auto& b = s.buckets[index];
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < b.params.size(); ++j) {
    const auto& p = s.params[b.params[j]];
    auto slice = b.flat.narrow(0, b.offsets[j], p.numel());
    const auto& grad = p.grad();
    if (grad.defined()) {
      slice.view(p.sizes()).copy_(grad);
    } else {
      slice.zero_();
    }
  }
  b.work = group_->all_reduce(b.flat, c10d::ReduceOp::SUM,
                              "gradient all-reduce of bucket " + std::to_string(index + 1) +
                                  " of " + std::to_string(s.buckets.size()));
}

void DataParallel::finish_backward() {
  if (!group_) return;
  std::lock_guard<std::mutex> lock(state_->mu);
  State& s = *state_;
  try {
    while (s.next_launch < s.buckets.size()) launch_bucket(s, s.next_launch++);
    for (const auto& b : s.buckets) group_->wait(b.work);
  } catch (...) {
    s.new_backward();
    throw;
  }
  at::NoGradGuard no_grad;
  for (auto& b : s.buckets) {
    b.flat.div_(world_size_);
    for (size_t j = 0; j < b.params.size(); ++j) {
      auto& p = s.params[b.params[j]];
      const auto mean = b.flat.narrow(0, b.offsets[j], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(mean);
      } else {
        p.mutable_grad() = mean.to(p.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
      }
    }
  }
  s.new_backward();
}

double DataParallel::all_reduce_scalar(double v, bool max, const char* what) {
  if (!group_) return v;
  std::lock_guard<std::mutex> lock(state_->mu);
  auto t = at::full({1}, v, at::TensorOptions().dtype(at::kDouble).device(device_));
  group_->wait(group_->all_reduce(t, max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM, what));
  const double r = t.item<double>();
  return max ? r : r / world_size_;
}

double DataParallel::all_reduce_mean(double v) {
  return all_reduce_scalar(v, false, "all_reduce_mean");
}

double DataParallel::all_reduce_max(double v) {
  return all_reduce_scalar(v, true, "all_reduce_max");
}

void DataParallel::barrier() {
  all_reduce_scalar(0.0, false, "barrier");
}

void DataParallel::all_reduce_sum_(at::Tensor& t) {
  if (!group_) return;
  check_on(t, device_, "all_reduce_sum_ tensor");
  std::lock_guard<std::mutex> lock(state_->mu);
  at::NoGradGuard no_grad;
  const auto wire = state_->wire(t.scalar_type());
  const bool direct = t.is_contiguous() && wire == t.scalar_type();
  at::Tensor buf = direct ? t : t.to(wire, /*non_blocking=*/false, /*copy=*/true).contiguous();
  group_->wait(group_->all_reduce(buf, c10d::ReduceOp::SUM, "all_reduce_sum_"));
  if (!direct) t.copy_(buf);
}

}  // namespace qf::train
