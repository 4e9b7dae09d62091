// AdamW and gradient clipping against the real reference: Debian's python3-torch runs
// torch.optim.AdamW with Pythia's parameter groups and torch.nn.utils.clip_grad_norm_ on
// the same tensors; our steps must be bitwise its steps (same libtorch kernels, same order
// of operations).
#include <torch/torch.h>

#include "core/torch/tensor_io.h"
#include "python_support.h"
#include "test_support.h"
#include "train/optimizer.h"

namespace qf::train {
namespace {

using test::TempDir;

// Parameters of GPT-NeoX's kinds: a weight matrix, a bias, a LayerNorm weight, an
// embedding; gradients per step, scaled so that clipping is active on some steps only.
std::vector<std::pair<std::string, at::Tensor>> make_params() {
  at::manual_seed(7);
  return {{"layers.0.attention.dense.weight", at::randn({8, 16})},
          {"layers.0.attention.dense.bias", at::randn({8})},
          {"layers.0.input_layernorm.weight", at::ones({16}) + 0.1 * at::randn({16})},
          {"embed_in.weight", at::randn({32, 16})}};
}

constexpr int kSteps = 6;
const double kLr[kSteps] = {0.0, 6e-4, 3e-4, 1e-3, 2.5e-4, 6e-5};
const double kGradScale[kSteps] = {0.01, 1.0, 5.0, 0.05, 20.0, 0.3};

TEST(AdamW, ParameterGroupsArePythias) {
  EXPECT_TRUE(decays("x.weight", at::zeros({4, 4})));
  EXPECT_FALSE(decays("x.bias", at::zeros({4})));
  EXPECT_FALSE(decays("gpt_neox.final_layer_norm.weight", at::zeros({4})));
}

TEST(AdamW, StepsAreBitwiseTorchOptimAdamWWithClipping) {
  TempDir dir;
  auto params = make_params();
  std::vector<std::pair<std::string, at::Tensor>> saved;
  at::manual_seed(11);
  for (int s = 0; s < kSteps; ++s) {
    for (auto& [name, p] : params) {
      saved.emplace_back("grad" + std::to_string(s) + "/" + name, at::randn(p.sizes()) * kGradScale[s]);
    }
  }
  for (auto& [name, p] : params) saved.emplace_back("init/" + name, p.clone());
  save_safetensors(dir / "in.safetensors", saved);

  AdamWOptions o;  // Pythia's: (0.9, 0.95), 1e-8, wd 0.1, clip 1.0
  for (auto& [name, p] : params) p.set_requires_grad(true);
  AdamW opt(params, o);
  std::vector<double> norms;
  for (int s = 0; s < kSteps; ++s) {
    for (size_t i = 0; i < params.size(); ++i) {
      params[i].second.mutable_grad() =
          saved[static_cast<size_t>(s) * params.size() + i].second.clone();
    }
    norms.push_back(opt.clip_gradients());
    opt.step(kLr[s]);
    opt.zero_grad();
  }
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& [name, p] : params) out.emplace_back(name, p.detach().clone());
  for (auto& kv : opt.state_tensors()) out.push_back(kv);
  out.emplace_back("norms", at::tensor(norms, at::kDouble));
  save_safetensors(dir / "ours.safetensors", out);

  std::string lrs;
  char buf[32];
  for (int s = 0; s < kSteps; ++s) {
    std::snprintf(buf, sizeof buf, "%.17g,", kLr[s]);
    lrs += buf;
  }
  std::string order;
  for (auto& [name, p] : params) order += "'" + name + "',";
  QF_RUN_PYTHON(R"(
import json, struct, numpy as np, torch
def load(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n]); body = raw[8 + n:]
    out = {}
    for k, v in header.items():
        if k == '__metadata__': continue
        a, b = v['data_offsets']
        dt = {'F32': np.float32, 'F64': np.float64}[v['dtype']]
        out[k] = torch.from_numpy(np.frombuffer(body[a:b], dtype=dt).reshape(v['shape']).copy())
    return out
t = load('in.safetensors'); ours = load('ours.safetensors')
names = [)" + order + R"(]  # the C++ order: clip_grad_norm_ stacks the norms in it
params = {n: torch.nn.Parameter(t['init/' + n].clone()) for n in names}
decay = [p for n, p in params.items() if p.dim() >= 2]
no_decay = [p for n, p in params.items() if p.dim() < 2]
opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1},
                         {'params': no_decay, 'weight_decay': 0.0}],
                        lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
lrs = [)" + lrs + R"(]
norms = []
for s, lr in enumerate(lrs):
    for n, p in params.items(): p.grad = t['grad%d/%s' % (s, n)].clone()
    norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)))
    for g in opt.param_groups: g['lr'] = lr
    opt.step(); opt.zero_grad()
bad = []
for n, p in params.items():
    if not torch.equal(p.detach(), ours[n]): bad.append((n, float((p.detach() - ours[n]).abs().max())))
    st = opt.state[p]
    if not torch.equal(st['exp_avg'], ours['exp_avg/' + n]): bad.append(('exp_avg/' + n, 0))
    if not torch.equal(st['exp_avg_sq'], ours['exp_avg_sq/' + n]): bad.append(('exp_avg_sq/' + n, 0))
for a, b in zip(norms, ours['norms'].tolist()):
    if a != b: bad.append(('norm', a - b))
assert not bad, bad
print('ok')
)",
                 dir.path());
}

TEST(AdamW, ClippingScalesOnlyAboveTheThreshold) {
  auto w = at::zeros({2, 2}).set_requires_grad(true);
  AdamW opt({{"w", w}}, AdamWOptions{});
  w.mutable_grad() = at::full({2, 2}, 3.0);  // norm 6
  EXPECT_NEAR(opt.clip_gradients(), 6.0, 1e-6);
  EXPECT_NEAR(opt.gradient_norm(), 1.0, 1e-5);
  w.mutable_grad() = at::full({2, 2}, 0.1);  // norm 0.2: untouched
  EXPECT_NEAR(opt.clip_gradients(), 0.2, 1e-6);
  EXPECT_NEAR(opt.gradient_norm(), 0.2, 1e-6);
}

TEST(AdamW, StateRoundTripsAndMismatchesAreNamed) {
  auto w = at::randn({3, 4}).set_requires_grad(true);
  AdamW a({{"w", w}}, AdamWOptions{});
  w.mutable_grad() = at::randn({3, 4});
  a.step(1e-3);
  std::map<std::string, at::Tensor> state;
  for (auto& [k, v] : a.state_tensors()) state[k] = v.clone();
  auto w2 = w.detach().clone().set_requires_grad(true);
  AdamW b({{"w", w2}}, AdamWOptions{});
  b.load_state(state, a.steps_taken(), "test");
  EXPECT_EQ(b.steps_taken(), 1);
  EXPECT_TRUE(at::equal(b.state_tensors()[0].second, a.state_tensors()[0].second));
  state["exp_avg/w"] = at::zeros({4, 3});
  const std::string msg = test::message_of<FormatError>([&] { b.load_state(state, 1, "ckpt"); });
  EXPECT_NE(msg.find("exp_avg/w"), std::string::npos) << msg;
  state["exp_avg/w"] = at::zeros({3, 4});
  state.erase("exp_avg_sq/w");
  EXPECT_NE(test::message_of<FormatError>([&] { b.load_state(state, 1, "ckpt"); }).find("missing"),
            std::string::npos);
}

}  // namespace
}  // namespace qf::train
