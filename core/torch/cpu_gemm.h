#pragma once
// Matrix products of float32 CPU tensors through oneDNN, where quantfork was built with it
// (QF_WITH_DNNL: Debian's libdnnl-dev, the same oneDNN libtorch itself links). oneDNN
// picks its kernels from the CPU's own features (AVX-512 brgemm on current x86), whereas
// libtorch 1.13's float32 matmul goes to the system BLAS, whose kernel choice may be
// older or pinned (OPENBLAS_CORETYPE): on this project's 2-core AMD EPYC the oneDNN
// products run 1.6-1.9x faster. Everything else (other dtypes, CUDA, a build without
// oneDNN, layouts oneDNN can't read) takes libtorch's own path; results agree to float32
// rounding, not bit for bit.
#include <ATen/ATen.h>

namespace qf {

// True when float32 CPU products below run on oneDNN.
bool cpu_gemm_uses_dnnl();

// out = alpha * a @ b, or out += alpha * a @ b when `accumulate`: out [m, n], a [m, k],
// b [k, n], or batched [batch, m, n] ... alike; one dtype, one device; a and b may be
// transposed views.
void gemm_out(const at::Tensor& out, const at::Tensor& a, const at::Tensor& b,
              bool accumulate = false, double alpha = 1.0);
at::Tensor gemm(const at::Tensor& a, const at::Tensor& b, double alpha = 1.0);

// at::linear (x [..., in] @ weight^T + bias, bias may be undefined) with autograd, its
// three products (forward, input and weight gradients) through gemm_out.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace qf
