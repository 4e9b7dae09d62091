// quantfork's side of bench/gpu.sh, on one CUDA GPU. Prints one JSON object.
//   --mode train: the training step of a Pythia-shaped model (random init), as the trainer
//     takes it: forward + loss under bf16 autocast on float32 weights, backward, gradient
//     clipping at 1.0, AdamW (Pythia's betas, eps and decay). --optimizer quantfork is
//     train/'s AdamW (fused CUDA kernel, Pythia's parameter groups); --optimizer torch is
//     libtorch's torch::optim::AdamW (one kernel per operation and tensor), for reference.
//   --mode probe: quant_probe's probe_model (FP32, INT4, INT8 perplexities and the weight
//     statistics) of a random-init Pythia-shaped model held on the GPU in float32, on
//     --sequences x --seq random tokens (default the paper's 128 x 512, batch 4).
// Times are wall seconds between device synchronizations; gpu_report.py turns them into
// tokens/s and MFU. Built only in CUDA builds (or with -DQF_GPU_BENCH=ON, to compile it).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#if __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#define QF_HAVE_CUDART 1
#endif

#include "core/torch/compat.h"
#include "model/gpt_neox.h"
#include "quant_probe/probe.h"
#include "train/optimizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string json_list(const std::vector<double>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Device memory in use (MB), as nvidia-smi counts it: the CUDA context plus everything
// the caching allocator holds, which after the timed steps is its peak. bench/gpu_hf_bench.py
// reads the same figure (torch.cuda.mem_get_info), so the two compare.
long device_used_mb() {
#ifdef QF_HAVE_CUDART
  std::size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
    return static_cast<long>((total_bytes - free_bytes) >> 20);
#endif
  return -1;
}

// A single-tensor AdamW step, or train/'s fused one; both after clipping at 1.0.
class Optimizer {
 public:
  Optimizer(qf::model::GptNeoXForCausalLM& model, const std::string& kind, double lr) : lr_(lr) {
    if (kind == "quantfork") {
      std::vector<std::pair<std::string, at::Tensor>> named;
      for (auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
      ours_ = std::make_unique<qf::train::AdamW>(named, qf::train::AdamWOptions{});
    } else if (kind == "torch") {
      params_ = model->parameters();
      torch_ = std::make_unique<torch::optim::AdamW>(params_, torch::optim::AdamWOptions(lr)
                                                                  .betas(std::make_tuple(0.9, 0.95))
                                                                  .eps(1e-8)
                                                                  .weight_decay(0.1));
    } else {
      throw std::invalid_argument("--optimizer must be quantfork or torch, not " + kind);
    }
  }
  void zero_grad() { ours_ ? ours_->zero_grad() : torch_->zero_grad(); }
  void clip_and_step() {
    if (ours_) {
      ours_->clip_gradients();
      ours_->step(lr_);
    } else {
      torch::nn::utils::clip_grad_norm_(params_, 1.0);
      torch_->step();
    }
  }

 private:
  double lr_;
  std::vector<at::Tensor> params_;
  std::unique_ptr<qf::train::AdamW> ours_;
  std::unique_ptr<torch::optim::AdamW> torch_;
};

int train(const std::map<std::string, std::string>& a) {
  const int batch = std::stoi(a.at("batch")), seq = std::stoi(a.at("seq"));
  const int steps = std::stoi(a.at("steps")), warmup = std::stoi(a.at("warmup"));
  qf::model::GptNeoXForCausalLM model(qf::model::GptNeoXConfig::pythia(a.at("size")));
  model->init_pythia(1234);
  model->to(at::kCUDA);
  model->train();
  Optimizer opt(model, a.at("optimizer"), 6e-4);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor ids =
      at::randint(model->config().vocab_size, {batch, seq}, gen, at::kLong).to(at::kCUDA);

  std::vector<double> step_s;
  at::Tensor loss;
  for (int s = 0; s < warmup + steps; ++s) {
    torch::cuda::synchronize();
    const auto t0 = Clock::now();
    opt.zero_grad();
    {
      qf::torch_compat::ScopedCudaBf16Autocast autocast(true);
      loss = model->loss(ids);
    }
    loss.backward();
    opt.clip_and_step();
    torch::cuda::synchronize();
    if (s >= warmup) step_s.push_back(seconds_since(t0));
  }
  std::printf(
      "{\"impl\": \"quantfork\", \"mode\": \"train\", \"variant\": \"optimizer %s\", "
      "\"size\": \"%s\", \"batch\": %d, \"seq\": %d, \"params\": %lld, \"layers\": %lld, "
      "\"hidden\": %lld, \"vocab\": %lld, \"step_s\": %s, \"loss\": %.5f, "
      "\"device_used_mb\": %ld, \"torch\": \"%s\"}\n",
      a.at("optimizer").c_str(), a.at("size").c_str(), batch, seq,
      static_cast<long long>(model->config().num_parameters()),
      static_cast<long long>(model->config().num_hidden_layers),
      static_cast<long long>(model->config().hidden_size),
      static_cast<long long>(model->config().vocab_size), json_list(step_s).c_str(),
      loss.item<double>(), device_used_mb(), TORCH_VERSION);
  return 0;
}

int probe(const std::map<std::string, std::string>& a) {
  const int sequences = std::stoi(a.at("sequences")), seq = std::stoi(a.at("seq"));
  const int rounds = std::stoi(a.at("rounds"));
  torch::NoGradGuard no_grad;
  qf::model::GptNeoXForCausalLM model(qf::model::GptNeoXConfig::pythia(a.at("size")));
  model->init_pythia(1234);
  model->to(at::kCUDA);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor windows =
      at::randint(model->config().vocab_size, {sequences, seq + 1}, gen, at::kLong);
  qf::quant::ProbeOptions o;
  o.batch_size = std::stoi(a.at("batch"));
  o.device = "cuda";
  std::vector<double> probe_s;
  qf::quant::ProbeResult r;
  for (int i = 0; i < rounds + 1; ++i) {  // the first round warms up the kernels
    torch::cuda::synchronize();
    const auto t0 = Clock::now();
    r = qf::quant::probe_model(model, windows, o);
    torch::cuda::synchronize();
    if (i > 0) probe_s.push_back(seconds_since(t0));
  }
  std::printf(
      "{\"impl\": \"quantfork\", \"mode\": \"probe\", \"size\": \"%s\", \"sequences\": %d, "
      "\"seq\": %d, \"batch\": %d, \"probe_s\": %s, \"ppl_fp32\": %.3f, "
      "\"gap_int4_pct\": %.4f, \"gap_int8_pct\": %.4f, \"device_used_mb\": %ld, "
      "\"torch\": \"%s\"}\n",
      a.at("size").c_str(), sequences, seq, static_cast<int>(o.batch_size),
      json_list(probe_s).c_str(), r.fp32.ppl, r.gap_int4_pct, r.gap_int8_pct, device_used_mb(),
      TORCH_VERSION);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a = {{"mode", "train"},
                                          {"size", "160m"},
                                          {"batch", "4"},
                                          {"seq", "2048"},
                                          {"steps", "20"},
                                          {"warmup", "5"},
                                          {"optimizer", "quantfork"},
                                          {"sequences", "128"},
                                          {"rounds", "3"}};
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || !a.count(k.substr(2)) || i + 1 == argc) {
      std::fprintf(stderr, "usage: bench_gpu_train [--KEY VALUE]..., KEY one of:");
      for (const auto& kv : a)
        std::fprintf(stderr, " %s (%s)", kv.first.c_str(), kv.second.c_str());
      std::fprintf(stderr, "\n");
      return 2;
    }
    a[k.substr(2)] = argv[++i];
  }
  try {
    if (!torch::cuda::is_available())
      throw std::runtime_error(std::string("libtorch ") + TORCH_VERSION + " sees no CUDA device");
    return a["mode"] == "probe" ? probe(a) : train(a);
  } catch (const std::exception& e) {  // no GPU, out of memory, bad option: a JSON line still
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    for (char& c : msg)
      if (c == '"' || c == '\\') c = '\'';
    std::fprintf(stderr, "bench_gpu_train: %s\n", e.what());
    const std::string variant = a["mode"] == "train" ? "optimizer " + a["optimizer"] : "";
    std::printf(
        "{\"impl\": \"quantfork\", \"mode\": \"%s\", \"variant\": \"%s\", \"batch\": %d, "
        "\"seq\": %d, \"error\": \"%s\"}\n",
        a["mode"].c_str(), variant.c_str(), std::atoi(a["batch"].c_str()),
        std::atoi(a["seq"].c_str()), msg.c_str());
    return 1;
  }
}
