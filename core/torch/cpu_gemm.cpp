#include "core/torch/cpu_gemm.h"

#include <torch/torch.h>

#ifndef QF_WITH_DNNL
#define QF_WITH_DNNL 0
#endif
#if QF_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace qf {
namespace {

// Whether oneDNN can take this product: float32 on the CPU, 2-D or batched 3-D, no empty
// dimension, each matrix with a unit stride in one of its last two dimensions (plain or
// transposed; batch strides are free).
bool dnnl_can(const at::Tensor& out, const at::Tensor& a, const at::Tensor& b) {
  if (!QF_WITH_DNNL || out.dim() < 2 || out.dim() > 3) return false;
  for (const at::Tensor* t : {&out, &a, &b}) {
    if (t->dim() != out.dim() || t->scalar_type() != at::kFloat || !t->device().is_cpu() ||
        t->numel() == 0 || (t->stride(-1) != 1 && t->stride(-2) != 1)) {
      return false;
    }
  }
  return out.stride(-1) == 1;
}

#if QF_WITH_DNNL
dnnl::memory::desc describe(const at::Tensor& t) {
  return dnnl::memory::desc(t.sizes().vec(), dnnl::memory::data_type::f32, t.strides().vec());
}

// out (+)= alpha * a @ b (+ bias row). Creating the primitive is cheap after the first
// call with the same shapes: oneDNN keeps a cache of compiled primitives.
void dnnl_gemm(const at::Tensor& out, const at::Tensor& a, const at::Tensor& b,
               const at::Tensor& bias, double alpha, bool accumulate) {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  thread_local dnnl::stream stream(engine);
  const auto a_md = describe(a), b_md = describe(b), out_md = describe(out);
  dnnl::primitive_attr attr;
  if (alpha != 1.0) attr.set_output_scales(0, {static_cast<float>(alpha)});
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, dnnl::memory(a_md, engine, a.data_ptr())},
      {DNNL_ARG_WEIGHTS, dnnl::memory(b_md, engine, b.data_ptr())},
      {DNNL_ARG_DST, dnnl::memory(out_md, engine, out.data_ptr())}};
  dnnl::memory::desc bias_md;
  if (bias.defined()) {
    std::vector<std::int64_t> dims(out.dim(), 1);
    dims.back() = bias.size(0);
    std::vector<std::int64_t> strides(out.dim(), bias.size(0));
    strides.back() = 1;
    bias_md = dnnl::memory::desc(dims, dnnl::memory::data_type::f32, strides);
    args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_md, engine, bias.data_ptr()));
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, bias_md, out_md), attr,
                                        engine);
  dnnl::matmul(pd).execute(stream, args);
  stream.wait();
}
#endif

void product(const at::Tensor& out, const at::Tensor& a, const at::Tensor& b,
             const at::Tensor& bias, double alpha, bool accumulate) {
  if (dnnl_can(out, a, b) && (!bias.defined() || bias.is_contiguous())) {
#if QF_WITH_DNNL
    return dnnl_gemm(out, a, b, bias, alpha, accumulate);
#endif
  }
  at::Tensor o = out;
  const bool batched = out.dim() == 3;
  if (accumulate && batched) {
    o.baddbmm_(a, b, 1.0, alpha);
  } else if (accumulate) {
    o.addmm_(a, b, 1.0, alpha);
  } else if (bias.defined()) {
    at::addmm_out(o, bias, a, b, 1.0, alpha);
  } else {
    batched ? at::bmm_out(o, a, b) : at::mm_out(o, a, b);
    if (alpha != 1.0) o.mul_(alpha);
  }
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class Linear : public torch::autograd::Function<Linear> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias) {
    const at::Tensor x2 = x.reshape({-1, x.size(-1)});
    at::Tensor y = at::empty({x2.size(0), weight.size(0)}, x.options());
    const bool has_bias = bias.numel() > 0;
    product(y, x2, weight.t(), has_bias ? bias : at::Tensor(), 1.0, false);
    ctx->save_for_backward({x2, weight});
    ctx->saved_data["bias"] = has_bias;
    std::vector<std::int64_t> sizes = x.sizes().vec();
    sizes.back() = weight.size(0);
    return y.view(sizes);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x2 = saved[0], &weight = saved[1];
    at::Tensor g = grads[0].reshape({-1, weight.size(0)});
    if (g.stride(0) != 1 && g.stride(1) != 1) g = g.contiguous();
    variable_list out(3);
    if (ctx->needs_input_grad(0)) {
      std::vector<std::int64_t> sizes = grads[0].sizes().vec();
      sizes.back() = x2.size(1);
      out[0] = gemm(g, weight).view(sizes);
    }
    if (ctx->needs_input_grad(1)) out[1] = gemm(g.t(), x2);
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) out[2] = g.sum(0);
    return out;
  }
};

}  // namespace

bool cpu_gemm_uses_dnnl() {
  return QF_WITH_DNNL != 0;
}

void gemm_out(const at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate,
              double alpha) {
  product(out, a, b, at::Tensor(), alpha, accumulate);
}

at::Tensor gemm(const at::Tensor& a, const at::Tensor& b, double alpha) {
  std::vector<std::int64_t> sizes = a.sizes().vec();
  sizes.back() = b.size(-1);
  at::Tensor out = at::empty(sizes, a.options());
  gemm_out(out, a, b, false, alpha);
  return out;
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const bool fast = QF_WITH_DNNL && weight.scalar_type() == at::kFloat &&
                    x.scalar_type() == at::kFloat && weight.device().is_cpu() &&
                    x.device().is_cpu() && x.numel() > 0;
  if (!fast) return at::linear(x, weight, bias);
  // 1.13's custom functions can't take an undefined tensor: no bias is an empty one.
  return Linear::apply(x, weight, bias.defined() ? bias : at::empty({0}, weight.options()));
}

}  // namespace qf
