// The C++ side of quant_bench.sh (quant_bench.py is the plain PyTorch side): quantization
// throughput of every quantizer path on a Pythia-shaped model's Linear weights, and the
// probe of a random-init Pythia-shaped checkpoint on N x T tokens: seconds, evaluation
// tokens/s and peak memory against the FP32 weights. Prints one JSON object per run.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "model/hf_checkpoint.h"
#include "quant_probe/probe.h"
#include "quant_probe/quantize.h"
#include "quant_probe/quantize_reference.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// VmHWM / VmRSS of this process in MB; writing 5 to clear_refs resets the high-water mark,
// so one phase's peak can be measured on its own.
long proc_status_mb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::string(key).size())) / 1024;
  }
  return -1;
}
void reset_peak() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

// Best of `rounds` runs of f, in seconds.
template <class F>
double best_of(int rounds, F&& f) {
  double best = 1e30;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// GB/s of float32 weights read, best of `rounds`, over the tensors the probe quantizes.
int quantize_throughput(const std::string& size, int rounds) {
  std::vector<at::Tensor> weights;
  std::int64_t bytes = 0;
  {
    qf::model::GptNeoXForCausalLM m(qf::model::GptNeoXConfig::pythia(size));
    m->init_pythia(1234);
    for (const auto& s : qf::quant::select_tensors(m, qf::quant::ProbeOptions{})) {
      weights.push_back(s.param.detach().clone());
      bytes += s.param.numel() * 4;
    }
  }
  std::string json;
  for (const char* name : {"int4_asym_g128", "int8_sym_channel"}) {
    const auto scheme = qf::quant::QuantScheme::parse(name);
    std::vector<at::Tensor> outs;
    for (const auto& w : weights) outs.push_back(at::empty_like(w));
    const double fake = best_of(rounds, [&] {
      for (std::size_t i = 0; i < weights.size(); ++i)
        qf::quant::fake_quantize_into(weights[i], outs[i], scheme);
    });
    const auto in_place_pass = [&] {
      for (auto& o : outs) qf::quant::fake_quantize_into(o, o, scheme);
    };
    const double in_place = best_of(rounds, in_place_pass);
    double portable = 0;  // the kernel without AVX2 (what a CPU without it would run)
    {
      const qf::quant::ScopedKernelIsa use(qf::quant::KernelIsa::portable);
      portable = best_of(rounds, in_place_pass);
    }
    const double full = best_of(rounds, [&] {
      for (const auto& w : weights) qf::quant::quantize(w, scheme);
    });
    const double ops = best_of(rounds, [&] {
      for (const auto& w : weights) qf::quant::quantize_torch_ops(w, scheme);
    });
    const at::Tensor& first = weights[0];  // the scalar reference on one tensor: it is slow
    const double reference = best_of(1, [&] {
      qf::quant::quantize_reference(first.data_ptr<float>(), first.size(0), first.size(1), scheme);
    });
    const double gb = static_cast<double>(bytes) / 1e9;
    char text[512];
    std::snprintf(text, sizeof text,
                  "%s\"%s\": {\"fake_quantize_gb_s\": %.3f, \"fake_quantize_in_place_gb_s\": %.3f, "
                  "\"fake_quantize_in_place_portable_gb_s\": %.3f, "
                  "\"quantize_with_codes_gb_s\": %.3f, \"torch_ops_gb_s\": %.3f, "
                  "\"scalar_reference_gb_s\": %.3f}",
                  json.empty() ? "" : ", ", name, gb / fake, gb / in_place, gb / portable, gb / full,
                  gb / ops,
                  static_cast<double>(first.numel() * 4) / 1e9 / reference);
    json += text;
  }
  std::printf(
      "{\"impl\": \"quantfork\", \"mode\": \"quantize\", \"size\": \"%s\", "
      "\"threads\": %d, \"kernel_isa\": \"%s\", \"quantized_weights_mb\": %.1f, \"quantize\": {%s}}\n",
      size.c_str(), at::get_num_threads(), qf::quant::kernel_isa_name(qf::quant::kernel_isa()),
      static_cast<double>(bytes) / 1e6, json.c_str());
  return 0;
}

// Load + probe of one checkpoint on N x T random tokens; peak memory of each part.
int probe_checkpoint(const std::string& dir, int sequences, int seq, int batch, int rounds,
                     int threads, double activation_memory) {
  const long baseline_mb = proc_status_mb("VmRSS:");
  auto t0 = std::chrono::steady_clock::now();
  qf::model::LoadedModel loaded = qf::model::load_hf_checkpoint(dir);
  const double load_s = seconds_since(t0);
  const long load_peak_mb = proc_status_mb("VmHWM:");
  const long loaded_mb = proc_status_mb("VmRSS:");
  std::int64_t weight_bytes = 0;
  for (const auto& p : loaded.model->parameters()) weight_bytes += p.numel() * 4;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor windows =
      at::randint(loaded.model->config().vocab_size, {sequences, seq + 1}, gen, at::kLong);
  qf::quant::ProbeOptions o;
  o.batch_size = batch;
  if (activation_memory >= 0) o.activation_memory = activation_memory;
  reset_peak();
  std::vector<double> probe_s;
  qf::quant::ProbeResult result;
  for (int r = 0; r < rounds; ++r) {
    t0 = std::chrono::steady_clock::now();
    result = qf::quant::probe_model(loaded.model, windows, o);
    probe_s.push_back(seconds_since(t0));
  }
  const long probe_peak_mb = proc_status_mb("VmHWM:");
  const double fp32_s = best_of(rounds, [&] {
    qf::quant::evaluate_layerwise(loaded.model, windows, {batch, batch});
  });
  std::string list;
  for (double s : probe_s) list += (list.empty() ? "" : ", ") + std::to_string(s);
  std::printf(
      "{\"impl\": \"quantfork\", \"mode\": \"probe\", \"threads\": %d, \"sequences\": %d, "
      "\"seq\": %d, \"batch\": %d, \"activation_memory\": %.3f, \"fp32_weights_mb\": %.1f, \"probe_s\": [%s], "
      "\"fp32_eval_s\": %.4f, \"load_s\": %.4f, \"ppl_fp32\": %.2f, \"gap_int4_pct\": %.4f, "
      "\"gap_int8_pct\": %.4f, \"baseline_rss_mb\": %ld, \"load_peak_rss_mb\": %ld, "
      "\"rss_after_load_mb\": %ld, \"probe_peak_rss_mb\": %ld}\n",
      threads, sequences, seq, batch, o.activation_memory, static_cast<double>(weight_bytes) / 1e6, list.c_str(), fp32_s,
      load_s, result.fp32.ppl, result.gap_int4_pct, result.gap_int8_pct, baseline_mb, load_peak_mb,
      loaded_mb, probe_peak_mb);
  return 0;
}

}  // namespace

// --mode save: writes a random-init checkpoint of --size to --checkpoint (float16, as
// Pythia publishes them). --mode quantize: throughput of every quantizer path on that
// size's probed weights. --mode probe: loads --checkpoint and probes it, in a process of
// its own so that its memory is measured from a clean start.
int main(int argc, char** argv) {
  std::string size = "160m", mode = "probe", checkpoint;
  int threads = 2, sequences = 8, seq = 512, batch = 4, rounds = 3;
  double activation_memory = -1;  // the probe's default
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h" || i + 1 == argc) {
      std::fprintf(k == "--help" || k == "-h" ? stdout : stderr,
                   "usage: bench_quant --mode save|quantize|probe [--size 160m] [--checkpoint DIR]\n"
                   "  [--threads N] [--sequences N] [--seq T] [--batch B] [--rounds R]\n"
                   "  [--activation-memory F]   (bench/quant_bench.sh runs it)\n");
      return k == "--help" || k == "-h" ? 0 : 2;
    }
    const std::string v = argv[i + 1];
    if (k == "--size")
      size = v;
    else if (k == "--mode")
      mode = v;
    else if (k == "--checkpoint")
      checkpoint = v;
    else if (k == "--threads")
      threads = std::stoi(v);
    else if (k == "--sequences")
      sequences = std::stoi(v);
    else if (k == "--seq")
      seq = std::stoi(v);
    else if (k == "--batch")
      batch = std::stoi(v);
    else if (k == "--activation-memory")
      activation_memory = std::stod(v);
    else if (k == "--rounds")
      rounds = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  torch::NoGradGuard no_grad;
  if ((mode == "save" || mode == "probe") && checkpoint.empty()) {
    std::fprintf(stderr, "bench_quant: --mode %s needs --checkpoint DIR\n", mode.c_str());
    return 2;
  }
  if (mode == "save") {
    qf::model::GptNeoXForCausalLM m(qf::model::GptNeoXConfig::pythia(size));
    m->init_pythia(1234);
    qf::model::save_hf_checkpoint(m, checkpoint, at::kHalf);
    return 0;
  }
  if (mode == "quantize") return quantize_throughput(size, rounds);
  if (mode == "probe") return probe_checkpoint(checkpoint, sequences, seq, batch, rounds, threads,
                                                 activation_memory);
  std::fprintf(stderr, "unknown --mode %s (save, quantize, probe)\n", mode.c_str());
  return 2;
}
