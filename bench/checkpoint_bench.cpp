// Checkpoint save and load of a Pythia-shaped model (random init, float32) with AdamW
// state, as the trainer writes and resumes them, and the trainer's per-update bookkeeping
// (the work Trainer::run does between two training steps). Prints one JSON object; the
// C++ side of train_bench.sh.
//   save:  train::save_checkpoint (config.json + model.safetensors, Adam's moments and
//          the RNG state in trainer_state.safetensors, trainer_state.json; every file
//          fsync'ed, the directory renamed into place), as Trainer::write_checkpoint.
//   load:  model::load_hf_checkpoint + train::load_trainer_state + AdamW::load_state +
//          copying the weights into the training model, as Trainer::resume_from. "warm":
//          the files are in the page cache (a resume right after the save); "cold": their
//          pages were dropped first with posix_fadvise(DONTNEED) (the files are clean
//          after the fsync, so this works without privileges), so they are read from disk.
//   bookkeeping: what Trainer::run does after each update besides checkpoints, on a real
//          Trainer (a tiny model) and its run.h5: the /train row appended (and flushed),
//          the phase-boundary check, on_step of an at_steps hook that never fires, the
//          progress line's fields and Progress::update (to /dev/null), the TensorBoard
//          row (log.tensorboard, core/run_events.h); the run.h5 row alone; the TensorBoard
//          row alone.
//          (run.h5's step_time_s covers only Trainer::train_step, so it cannot show this.)
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/progress.h"
#include "core/run_events.h"
#include "core/run_file.h"
#include "data/batches.h"
#include "data/indexed_dataset_writer.h"
#include "model/gpt_neox.h"
#include "model/hf_checkpoint.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

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

long peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

// Drops the page-cache pages of every file under `dir` (clean pages only: the checkpoint
// files were fsync'ed when written).
void drop_cached_pages(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const int fd = ::open(e.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

uintmax_t file_size_or_zero(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a = {
      {"size", "160m"}, {"threads", "2"}, {"dir", ""}, {"repeats", "2"}, {"updates", "2000"}};
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || !a.count(k.substr(2)) || i + 1 == argc) {
      std::fprintf(stderr, "usage: bench_checkpoint --dir SCRATCH [--KEY VALUE]..., KEY one of:");
      for (const auto& kv : a) std::fprintf(stderr, " %s (%s)", kv.first.c_str(), kv.second.c_str());
      std::fprintf(stderr, "\n");
      return 2;
    }
    a[k.substr(2)] = argv[++i];
  }
  if (a["dir"].empty()) {
    std::fprintf(stderr, "bench_checkpoint: --dir SCRATCH is required\n");
    return 2;
  }
  const int threads = std::stoi(a["threads"]), repeats = std::stoi(a["repeats"]);
  const int updates = std::stoi(a["updates"]);
  at::set_num_threads(threads);
  const fs::path scratch = fs::path(a["dir"]) / "checkpoint_bench";
  fs::remove_all(scratch);
  fs::create_directories(scratch);

  // The model and an optimizer that has taken one update (moments filled in), from
  // random gradients: what the trainer holds when it writes a checkpoint.
  qf::model::GptNeoXForCausalLM model(qf::model::GptNeoXConfig::pythia(a["size"]));
  model->init_pythia(1234);
  model->train();
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  qf::train::AdamW optimizer(named, qf::train::AdamWOptions{});
  for (auto& [name, p] : named) p.mutable_grad() = at::randn_like(p) * 1e-3;
  optimizer.clip_gradients();
  optimizer.step(6e-4);
  optimizer.zero_grad();
  const long rss_before_mb = peak_rss_mb();

  qf::train::TrainerState state;
  state.cursor = qf::data::BatchCursor{}.to_json();
  state.schedule = "{name: pythia_cosine}";
  state.fingerprint_keys = nlohmann::json::object();
  state.fingerprint = qf::train::fingerprint_of(state.fingerprint_keys);
  state.optimizer_steps = optimizer.steps_taken();

  std::vector<double> save_s, load_warm_s, load_cold_s;
  uintmax_t model_bytes = 0, state_bytes = 0, total_bytes = 0;
  fs::path last;
  for (int r = 0; r < repeats; ++r) {
    state.global_step = state.run_steps = r + 1;
    auto tensors = optimizer.state_tensors();
    tensors.emplace_back("rng/cpu", at::detail::getDefaultCPUGenerator().get_state());
    auto t0 = Clock::now();
    const fs::path dir = qf::train::save_checkpoint(scratch / "checkpoints", model, tensors, state);
    save_s.push_back(seconds_since(t0));
    tensors.clear();
    if (!last.empty()) fs::remove_all(last);
    last = dir;
    model_bytes = file_size_or_zero(dir / "model.safetensors");
    state_bytes = file_size_or_zero(dir / "trainer_state.safetensors");
    total_bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file()) total_bytes += e.file_size();

    for (const bool cold : {false, true}) {
      if (cold) drop_cached_pages(dir);
      t0 = Clock::now();
      qf::model::GptNeoXForCausalLM saved = qf::model::load_hf_checkpoint(dir).model;
      const qf::train::LoadedTrainerState loaded = qf::train::load_trainer_state(dir);
      optimizer.load_state(loaded.tensors, loaded.state.optimizer_steps,
                           (dir / "trainer_state.safetensors").string());
      {
        torch::NoGradGuard no_grad;
        auto dst = model->named_parameters();
        for (const auto& item : saved->named_parameters()) dst[item.key()].copy_(item.value());
      }
      (cold ? load_cold_s : load_warm_s).push_back(seconds_since(t0));
    }
  }
  const long rss_after_checkpoints_mb = peak_rss_mb();
  fs::remove_all(scratch / "checkpoints");

  // Per-update bookkeeping of Trainer::run, `updates` times, on a real Trainer (a tiny
  // model, so that building it costs nothing) and its run.h5.
  std::vector<double> bookkeeping_us, append_only_us, tensorboard_only_us;
  {
    const fs::path tiny = scratch / "tiny";
    fs::create_directories(tiny);
    {
      qf::data::IndexedDatasetWriter w(tiny / "tokens", qf::data::TokenDtype::kUInt16);
      for (int i = 0; i < 16; ++i) {
        std::vector<int32_t> t(33);
        for (int j = 0; j < 33; ++j) t[j] = (i + j) % 64;
        w.add_item(t);
        w.end_document();
      }
      w.finalize();
    }
    {
      std::ofstream cfg(tiny / "tiny_config.json");
      cfg << R"({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
  "hidden_size": 32, "intermediate_size": 128, "num_attention_heads": 4,
  "num_hidden_layers": 2, "vocab_size": 64, "max_position_embeddings": 64,
  "rotary_pct": 0.25, "rotary_emb_base": 10000, "layer_norm_eps": 1e-05,
  "hidden_act": "gelu", "use_parallel_residual": true, "tie_word_embeddings": false,
  "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "float32"})";
    }
    qf::ConfigSchema schema;
    qf::train::declare_train_config(schema);
    qf::ConfigLoader loader(schema);
    loader.add_text("run: {dir: run}\nmodel: {config: tiny_config.json}\n"
                    "train: {steps: " + std::to_string(3 * updates) + ", seq_len: 16, threads: " +
                        std::to_string(threads) + "}\ndata: {dataset: tokens}\n",
                    "checkpoint_bench", tiny);
    const qf::Config config = loader.resolve();
    qf::train::Trainer trainer(config, qf::train::train_options(config));
    qf::RunFile& run_file = *trainer.run_file();
    auto never = qf::train::at_steps({-1}, [](qf::train::Trainer&, const qf::train::StepInfo&) {
      std::abort();  // never called: no update has index -1
    });
    std::vector<std::shared_ptr<qf::train::TrainerHooks>> hooks = {never};
    FILE* devnull = std::fopen("/dev/null", "w");
    qf::Progress progress("train", updates, "step", devnull);
    const auto& schedule = trainer.schedule();
    for (int round = 0; round < 3; ++round) {
      const bool full = round == 0, tensorboard_only = round == 2;
      const auto t0 = Clock::now();
      for (int s = 0; s < updates; ++s) {
        const int64_t step = static_cast<int64_t>(round) * updates + s;
        qf::TrainRow row;
        row.step = step;
        row.tokens = (step + 1) * 2048;
        row.loss = 10.5f;
        row.lr = schedule.lr(step);
        row.grad_norm = 1.5f;
        row.step_time_s = 7.0f;
        row.tokens_per_s = 2048 / 7.0f;
        if (tensorboard_only) {
          qf::log_train_row(*trainer.events(), row);
          continue;
        }
        run_file.append_train(row);
        if (!full) continue;
        qf::log_train_row(*trainer.events(), row);
        qf::train::StepInfo info;
        info.step = step;
        info.phase = schedule.phase(step);
        if (step == 0 || schedule.phase(step) != schedule.phase(step - 1)) {
          for (auto& h : hooks) h->on_phase_boundary(trainer, info);
        }
        for (auto& h : hooks) h->on_step(trainer, info);
        char lr[32], gn[32], loss[32];
        std::snprintf(loss, sizeof loss, "%.4f", 10.5);
        std::snprintf(lr, sizeof lr, "%.3e", row.lr);
        std::snprintf(gn, sizeof gn, "%.3f", 1.5);
        progress.update(s + 1, {{"loss", loss}, {"lr", lr}, {"gnorm", gn},
                                {"tok/s", qf::format_rate(2048 / 7.0)}});
      }
      (full ? bookkeeping_us : tensorboard_only ? tensorboard_only_us : append_only_us)
          .push_back(1e6 * seconds_since(t0) / updates);
    }
    progress.finish();
    std::fclose(devnull);
  }
  fs::remove_all(scratch);

  std::printf(
      "{\"impl\": \"quantfork\", \"size\": \"%s\", \"threads\": %d, \"params\": %lld, "
      "\"save_s\": %s, \"load_warm_s\": %s, \"load_cold_s\": %s, \"model_bytes\": %ju, "
      "\"trainer_state_bytes\": %ju, \"checkpoint_bytes\": %ju, \"rss_before_mb\": %ld, "
      "\"peak_rss_mb\": %ld, \"updates\": %d, \"bookkeeping_us_per_update\": %s, "
      "\"append_train_us_per_update\": %s, \"tensorboard_row_us_per_update\": %s, "
      "\"torch\": \"%s\"}\n",
      a["size"].c_str(), threads, static_cast<long long>(model->config().num_parameters()),
      json_list(save_s).c_str(), json_list(load_warm_s).c_str(), json_list(load_cold_s).c_str(),
      model_bytes, state_bytes, total_bytes, rss_before_mb, rss_after_checkpoints_mb, updates,
      json_list(bookkeeping_us).c_str(), json_list(append_only_us).c_str(),
      json_list(tensorboard_only_us).c_str(), TORCH_VERSION);
  return 0;
}
