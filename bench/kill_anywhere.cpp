// The kill-anywhere stress test (bench/kill_anywhere.sh runs it): `quantfork train` on a
// tiny model that checkpoints, prunes and probes at every update is killed with SIGKILL
// at uniformly random moments of its life (start-up, updates, checkpoint writes, pruning,
// probes, run.h5 appends, shutdown) and started again, over and over, until each run is
// done; then its run.h5 (/train, /probe, /probe_tensors) must equal an uninterrupted
// run's bitwise and every checkpoint must be whole. Rounds repeat until the time is up.
//   bench_kill_anywhere QUANTFORK SCRATCH_DIR SECONDS [SEED]
// Prints one line per round and a summary; exits 1 when anything was lost or damaged.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/run_file.h"
#include "data/indexed_dataset_writer.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kSteps = 40;

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

void make_inputs(const fs::path& dir) {
  qf::data::IndexedDatasetWriter w(dir / "tokens", qf::data::TokenDtype::kUInt16);
  std::mt19937 rng(5);
  for (int i = 0; i < 64; ++i) {
    std::vector<int32_t> t;
    int32_t cur = static_cast<int32_t>(rng() % 64);
    for (int j = 0; j < 65; ++j) {
      t.push_back(cur);
      cur = (rng() % 5 == 0) ? static_cast<int32_t>(rng() % 64) : (cur + 1) % 64;
    }
    w.add_item(t);
    w.end_document();
  }
  w.finalize();
  write(dir / "tiny_config.json",
        R"({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "hidden_size": 64,
  "intermediate_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 64,
  "max_position_embeddings": 64, "rotary_pct": 0.25, "rotary_emb_base": 10000,
  "layer_norm_eps": 1e-05, "hidden_act": "gelu", "use_parallel_residual": true,
  "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "float32"})");
  write(dir / "run.yaml",
        "model: {config: tiny_config.json}\n"
        "train: {steps: " +
            std::to_string(kSteps) +
            ", global_batch: 4, seq_len: 32, seed: 3, threads: 1}\n"
            "schedule: {name: pythia_cosine, max_lr: 1.0e-2, min_lr: 1.0e-3, warmup_steps: 2, "
            "decay_steps: 60, step_offset: 0}\n"
            "data: {dataset: tokens}\n"
            "checkpoint: {every: 1, keep_last: 2}\n"
            "probe: {enabled: true, every: 3, int4_scheme: int4_asym_g32, "
            "eval: {dataset: tokens, sequences: 4, seq_len: 32}}\n");
}

// Runs quantfork in `cwd`, output appended to cwd/log.txt; returns the pid.
pid_t spawn(const fs::path& quantfork, const fs::path& cwd, const std::string& run_dir) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    const std::string cmd = "exec '" + quantfork.string() +
                            "' train --config run.yaml --set run.dir=" + run_dir + " >> " +
                            run_dir + ".log 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

int wait_code(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

template <class Row>
bool same_size(const std::vector<Row>& a, const std::vector<Row>& b, const char* what,
               std::string& why) {
  if (a.size() != b.size()) {
    why = std::string(what) + ": " + std::to_string(a.size()) + " rows, expected " +
          std::to_string(b.size());
    return false;
  }
  return true;
}

struct Tables {
  std::vector<qf::TrainRow> train;
  std::vector<qf::ProbeRow> probe;
  std::vector<qf::ProbeTensorRow> tensors;
};

Tables read_tables(const fs::path& run_h5) {
  const qf::RunFile f = qf::RunFile::open_read_only(run_h5.string());
  return {f.read_train(), f.read_probe(), f.read_probe_tensors()};
}

// Empty when `got` equals `want` in every logged value; otherwise what differs.
std::string compare(const Tables& got, const Tables& want) {
  std::string why;
  if (!same_size(got.train, want.train, "/train", why) ||
      !same_size(got.probe, want.probe, "/probe", why) ||
      !same_size(got.tensors, want.tensors, "/probe_tensors", why)) {
    return why;
  }
  for (size_t i = 0; i < want.train.size(); ++i) {
    const auto &g = got.train[i], &w = want.train[i];
    if (g.step != w.step || g.loss != w.loss || g.grad_norm != w.grad_norm || g.lr != w.lr ||
        g.tokens != w.tokens) {
      return "/train row " + std::to_string(i) + " differs";
    }
  }
  for (size_t i = 0; i < want.probe.size(); ++i) {
    const auto &g = got.probe[i], &w = want.probe[i];
    if (g.step != w.step || g.ppl_fp32 != w.ppl_fp32 || g.ppl_int4 != w.ppl_int4 ||
        g.ppl_int8 != w.ppl_int8 || g.kurtosis_mean != w.kurtosis_mean || g.phase != w.phase) {
      return "/probe row " + std::to_string(i) + " differs";
    }
  }
  for (size_t i = 0; i < want.tensors.size(); ++i) {
    const auto &g = got.tensors[i], &w = want.tensors[i];
    if (g.step != w.step || g.tensor != w.tensor || g.kurtosis != w.kurtosis ||
        g.rel_error_int4 != w.rel_error_int4) {
      return "/probe_tensors row " + std::to_string(i) + " differs";
    }
  }
  return "";
}

// Names every step<N> under `checkpoints` that is not whole.
std::string damaged_checkpoints(const fs::path& checkpoints) {
  std::string out;
  std::error_code ec;
  if (!fs::is_directory(checkpoints, ec)) return out;
  for (const auto& e : fs::directory_iterator(checkpoints)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step", 0) != 0) continue;  // hidden leftovers are cleared at start-up
    for (const char* f :
         {"config.json", "model.safetensors", "trainer_state.safetensors", "trainer_state.json"}) {
      if (!fs::exists(e.path() / f)) out += " " + name + " lacks " + f + ";";
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s QUANTFORK SCRATCH_DIR SECONDS [SEED]\n", argv[0]);
    return 2;
  }
  const fs::path quantfork = fs::absolute(argv[1]), dir = argv[2];
  const double seconds = std::atof(argv[3]);
  std::mt19937_64 rng(argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 20261204);
  fs::create_directories(dir);
  make_inputs(dir);

  const auto t0 = Clock::now();
  if (wait_code(spawn(quantfork, dir, "straight")) != 0) {
    std::fprintf(stderr, "the uninterrupted run failed: see %s/straight.log\n", dir.c_str());
    return 1;
  }
  const double life = std::chrono::duration<double>(Clock::now() - t0).count();
  const Tables want = read_tables(dir / "straight/run.h5");
  std::printf(
      "uninterrupted run: %d updates, %zu probes, %.2f s; kills at uniform times in "
      "[0, %.2f s] of each start\n",
      kSteps, want.probe.size(), life, life);

  int rounds = 0, kills = 0, starts = 0, broken_h5 = 0, bad_rounds = 0, failed_starts = 0;
  int damaged = 0;
  std::uniform_real_distribution<double> when(0.0, life);
  while (std::chrono::duration<double>(Clock::now() - t0).count() < seconds) {
    const std::string run = "round" + std::to_string(rounds);
    int round_kills = 0;
    for (;;) {
      const pid_t pid = spawn(quantfork, dir, run);
      ++starts;
      std::this_thread::sleep_for(std::chrono::duration<double>(when(rng)));
      ::kill(pid, SIGKILL);
      const int code = wait_code(pid);
      if (code == 0) break;
      if (code != 128 + SIGKILL) {
        ++failed_starts;
        std::printf("round %d: a start exited %d (see %s/%s.log)\n", rounds, code, dir.c_str(),
                    run.c_str());
        break;
      }
      ++kills;
      ++round_kills;
      const std::string bad = damaged_checkpoints(dir / run / "checkpoints");
      if (!bad.empty()) {
        ++damaged;
        std::printf("round %d: damaged checkpoint after a kill:%s\n", rounds, bad.c_str());
      }
      if (fs::exists(dir / run / "run.h5")) {
        try {
          read_tables(dir / run / "run.h5");
        } catch (const std::exception&) {
          ++broken_h5;  // the journal must make up for it at the next start
        }
      }
    }
    std::string why;
    try {
      why = compare(read_tables(dir / run / "run.h5"), want);
    } catch (const std::exception& e) {
      why = e.what();
    }
    const std::string bad = damaged_checkpoints(dir / run / "checkpoints");
    if (!why.empty() || !bad.empty()) {
      ++bad_rounds;
      std::printf("round %d: LOST OR DAMAGED: %s%s (log: %s/%s.log)\n", rounds, why.c_str(),
                  bad.c_str(), dir.c_str(), run.c_str());
    } else {
      std::error_code ec;
      fs::remove_all(dir / run, ec);
      fs::remove(dir / (run + ".log"), ec);
    }
    ++rounds;
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("round %d done: %d kill(s); total %d kills in %d starts, %.0f s\n", rounds,
                round_kills, kills, starts, elapsed);
    std::fflush(stdout);
  }
  std::printf(
      "summary: %d rounds, %d starts, %d kills (SIGKILL at random times), %d kills left "
      "run.h5 unreadable until the next start rebuilt it, %d rounds with lost or differing "
      "rows, %d damaged checkpoints, %d starts that failed\n",
      rounds, starts, kills, broken_h5, bad_rounds, damaged, failed_starts);
  return bad_rounds || damaged || failed_starts ? 1 : 0;
}
