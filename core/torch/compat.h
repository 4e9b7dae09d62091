#pragma once
// The one place that knows which libtorch we are built against. Debian's CPU build is
// 1.13; GPU machines use a pip PyTorch 2.x. Code elsewhere asks these questions instead of
// testing versions itself, so that supporting another release touches only this file.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/core/Allocator.h>
#include <torch/version.h>

#include <cstring>

#define QF_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||     \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// A libtorch built with OpenMP runs at::parallel_for as an `omp parallel` region inline in
// the caller's translation unit (ATen/ParallelOpenMP.h); without -fopenmp there it quietly
// runs on one thread. core/torch/CMakeLists.txt gives every torch library OpenMP; this
// keeps a target that lost it from building.
#if AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error "libtorch uses OpenMP: compile with -fopenmp (link OpenMP::OpenMP_CXX) or at::parallel_for runs serially"
#endif

namespace qf::torch_compat {

// at::scaled_dot_product_attention arrived in 2.0 (its `scale` argument only in 2.1, so
// we never pass it: the default 1/sqrt(head_dim) is what GPT-NeoX uses).
inline constexpr bool kHasSdpa = QF_TORCH_AT_LEAST(2, 0);

// 1.13 has no float16 kernels on the CPU for matmul, LayerNorm, GELU or softmax; 2.1 added
// them (not verified on every 2.x: a missing kernel there still raises its own error).
inline constexpr bool kCpuHalfCompute = QF_TORCH_AT_LEAST(2, 1);

// Causal attention over [B, H, T, D] tensors with libtorch's fused kernel, or an undefined
// tensor where this libtorch has none (callers then take their exact math path).
inline at::Tensor fused_causal_attention(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, double dropout_p) {
#if QF_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, dropout_p,
                                          /*is_causal=*/true);
#else
  (void)q, (void)k, (void)v, (void)dropout_p;
  return {};
#endif
}

// Float32 matrix products and convolutions in full float32 while alive: no TF32 on
// Ampere and later GPUs, whose 10-bit mantissa would make the probe's perplexities depend
// on the GPU generation. The previous settings come back when it dies. (The same calls
// exist from 1.7 to 2.x; a release that drops them is handled here.)
class ScopedNoTf32 {
 public:
  ScopedNoTf32()
      : cublas_(at::globalContext().allowTF32CuBLAS()),
        cudnn_(at::globalContext().allowTF32CuDNN()) {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  ~ScopedNoTf32() {
    at::globalContext().setAllowTF32CuBLAS(cublas_);
    at::globalContext().setAllowTF32CuDNN(cudnn_);
  }
  ScopedNoTf32(const ScopedNoTf32&) = delete;
  ScopedNoTf32& operator=(const ScopedNoTf32&) = delete;

 private:
  bool cublas_, cudnn_;
};

// The fused CUDA AdamW kernel (at::_fused_adamw_, 2.1 on). `state_steps` are float32
// scalars on the parameters' device holding the steps taken before this one; the kernel
// increments them. Where libtorch has none, AdamW takes its per-tensor path and this is
// never called.
inline constexpr bool kHasFusedAdamw = QF_TORCH_AT_LEAST(2, 1);
inline void fused_adamw(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                        at::TensorList exp_avg_sqs, at::TensorList state_steps, double lr,
                        double beta1, double beta2, double weight_decay, double eps) {
#if QF_TORCH_AT_LEAST(2, 1)
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, state_steps,
                    lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)params, (void)grads, (void)exp_avgs, (void)exp_avg_sqs, (void)state_steps, (void)lr,
      (void)beta1, (void)beta2, (void)weight_decay, (void)eps;
  TORCH_CHECK(false, "this libtorch has no fused AdamW");
#endif
}

// bf16 autocast on CUDA while alive (the training step's precision on GPUs: float32
// master weights, bf16 matmuls). 2.4 moved the switches to per-device-type functions.
class ScopedCudaBf16Autocast {
 public:
  explicit ScopedCudaBf16Autocast(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
#if QF_TORCH_AT_LEAST(2, 4)
    previous_ = at::autocast::is_autocast_enabled(at::kCUDA);
    previous_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    previous_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~ScopedCudaBf16Autocast() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if QF_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(at::kCUDA, previous_);
    at::autocast::set_autocast_dtype(at::kCUDA, previous_dtype_);
#else
    at::autocast::set_enabled(previous_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
#endif
  }
  ScopedCudaBf16Autocast(const ScopedCudaBf16Autocast&) = delete;
  ScopedCudaBf16Autocast& operator=(const ScopedCudaBf16Autocast&) = delete;

 private:
  bool enabled_;
  bool previous_ = false;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

// A c10::Allocator for CPU memory across versions: 2.3 made allocate() non-const and added
// copy_data() as a pure virtual. Both spellings of allocate() are defined (whichever the
// base declares virtual is the one overridden); derived allocators implement allocate_bytes.
struct CpuAllocator : c10::Allocator {
  virtual c10::DataPtr allocate_bytes(std::size_t n) const = 0;
  c10::DataPtr allocate(std::size_t n) const { return allocate_bytes(n); }
  c10::DataPtr allocate(std::size_t n) { return allocate_bytes(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const {
    if (count > 0) std::memcpy(dest, src, count);
  }
};

}  // namespace qf::torch_compat

// The c10d class that ProcessGroupGloo and ProcessGroupNCCL derive from, and so the one
// train/distributed_group.cpp drives them through: 1.13's groups are ProcessGroups; 2.0 split
// the user-facing ProcessGroup from per-device Backends and the concrete groups became
// Backends, with the same allreduce/broadcast signatures. Declared, not included, so that
// this header stays free of c10d (only the distributed code includes it).
namespace c10d {
class Backend;
class ProcessGroup;
}  // namespace c10d

namespace qf::torch_compat {
#if QF_TORCH_AT_LEAST(2, 0)
using C10dBackend = ::c10d::Backend;
#else
using C10dBackend = ::c10d::ProcessGroup;
#endif
}  // namespace qf::torch_compat
