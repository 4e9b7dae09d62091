// The C++ side of gptq_bench.sh (gptq_bench.py runs the authors' reference code):
// sequential GPTQ (int4_asym_g128) of a random-init Pythia-shaped model on N windows of L
// random tokens, the first --layers layers. Prints one JSON object.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "quant_probe/gptq_model.h"

namespace {

long peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6)) / 1024;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string size = "160m";
  int sequences = 128, seq = 2048, layers = 0, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--size") {
      size = v;
    } else if (k == "--sequences") {
      sequences = std::stoi(v);
    } else if (k == "--seq") {
      seq = std::stoi(v);
    } else if (k == "--layers") {
      layers = std::stoi(v);
    } else if (k == "--threads") {
      threads = std::stoi(v);
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  torch::NoGradGuard no_grad;
  qf::model::GptNeoXConfig config = qf::model::GptNeoXConfig::pythia(size);
  config.max_position_embeddings = std::max<std::int64_t>(config.max_position_embeddings, seq);
  qf::model::GptNeoXForCausalLM m(config);
  m->init_pythia(1234);
  const int n = layers > 0 ? layers : static_cast<int>(config.num_hidden_layers);
  const at::Tensor ids = at::randint(config.vocab_size, {sequences, seq},
                                     at::make_generator<at::CPUGeneratorImpl>(1), at::kLong);
  qf::quant::GptqModelOptions o;
  o.include = "^gpt_neox\\.layers\\.(" +
              [&] {
                std::string alt;
                for (int l = 0; l < n; ++l) alt += (l ? "|" : "") + std::to_string(l);
                return alt;
              }() +
              ")\\.(attention\\.query_key_value|attention\\.dense|mlp\\.dense_h_to_4h|mlp\\.dense_"
              "4h_to_h)\\.weight$";
  const auto t0 = std::chrono::steady_clock::now();
  const qf::quant::GptqModelResult r = qf::quant::gptq_model(m, ids, o);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "{\"impl\": \"quantfork\", \"size\": \"%s\", \"layers\": %d, \"sequences\": %d, \"seq\": "
      "%d, \"threads\": %d, \"seconds\": %.3f, \"tensors\": %zu, \"peak_rss_mb\": %ld}\n",
      size.c_str(), n, sequences, seq, threads, seconds, r.tensors.size(), peak_rss_mb());
  return 0;
}
