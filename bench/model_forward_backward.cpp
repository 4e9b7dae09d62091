// Forward and forward+backward tokens/s of a Pythia-shaped GPT-NeoX in quantfork, the
// C++ side of run_model_bench.sh (model_forward_backward.py is the Python side). Prints
// one JSON object.
#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "model/gpt_neox.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string json_list(const std::vector<double>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// CPU seconds of the whole process (all threads): less disturbed than wall time when
// other work shares the machine, so the script reports both.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

long peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

}  // namespace

int main(int argc, char** argv) {
  std::string size = "160m";
  int batch = 4, seq = 512, steps = 3, warmup = 1, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--size")
      size = v;
    else if (k == "--batch")
      batch = std::stoi(v);
    else if (k == "--seq")
      seq = std::stoi(v);
    else if (k == "--steps")
      steps = std::stoi(v);
    else if (k == "--warmup")
      warmup = std::stoi(v);
    else if (k == "--threads")
      threads = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  qf::model::GptNeoXForCausalLM model(qf::model::GptNeoXConfig::pythia(size));
  model->init_pythia(1234);
  model->train();
  const at::Tensor ids = at::randint(model->config().vocab_size, {batch, seq},
                                     at::make_generator<at::CPUGeneratorImpl>(1), at::kLong);

  std::vector<double> forward_s, forward_cpu_s;
  for (int s = 0; s < warmup + steps; ++s) {
    torch::NoGradGuard no_grad;
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    const at::Tensor logits = model->forward(ids);
    if (s >= warmup) {
      forward_s.push_back(seconds_since(t0));
      forward_cpu_s.push_back(cpu_seconds() - c0);
    }
  }
  const long forward_rss = peak_rss_mb();
  std::vector<double> train_s, train_cpu_s;
  double loss = 0;
  for (int s = 0; s < warmup + steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
    const at::Tensor l = model->loss(ids);
    l.backward();
    loss = l.item<double>();
    if (s >= warmup) {
      train_s.push_back(seconds_since(t0));
      train_cpu_s.push_back(cpu_seconds() - c0);
    }
  }
  std::printf(
      "{\"impl\": \"quantfork\", \"size\": \"%s\", \"batch\": %d, \"seq\": %d, \"threads\": %d, "
      "\"forward_step_s\": %s, \"train_step_s\": %s, \"forward_cpu_s\": %s, "
      "\"train_cpu_s\": %s, \"loss\": %.6f, "
      "\"peak_rss_forward_mb\": %ld, \"peak_rss_mb\": %ld}\n",
      size.c_str(), batch, seq, threads, json_list(forward_s).c_str(), json_list(train_s).c_str(),
      json_list(forward_cpu_s).c_str(), json_list(train_cpu_s).c_str(), loss, forward_rss,
      peak_rss_mb());
  return 0;
}
