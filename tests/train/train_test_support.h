#pragma once
// Shared by the training tests: a small indexed dataset with structure a model can learn,
// a tiny GPT-NeoX config, run configs, and reading run.h5 back.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/run_file.h"
#include "data/indexed_dataset_writer.h"
#include "test_support.h"

namespace qf::test {

// `items` items of `length` tokens over a vocabulary of `vocab`: a noisy counting
// sequence (next = current + 1 most of the time), so losses fall quickly.
inline std::filesystem::path make_dataset(const std::filesystem::path& dir, int items = 64,
                                          int length = 33, int vocab = 64, uint32_t seed = 5) {
  const auto prefix = dir / "tokens";
  data::IndexedDatasetWriter w(prefix, data::TokenDtype::kUInt16);
  std::mt19937 rng(seed);
  for (int i = 0; i < items; ++i) {
    std::vector<int32_t> t;
    int32_t cur = static_cast<int32_t>(rng() % vocab);
    for (int j = 0; j < length; ++j) {
      t.push_back(cur);
      cur = (rng() % 5 == 0) ? static_cast<int32_t>(rng() % vocab) : (cur + 1) % vocab;
    }
    w.add_item(t);
    w.end_document();
  }
  w.finalize();
  return prefix;
}

// A GPT-NeoX small enough to train in milliseconds per step.
inline std::filesystem::path make_model_config(const std::filesystem::path& dir) {
  const auto path = dir / "tiny_config.json";
  write_file(path, R"({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
  "hidden_size": 32, "intermediate_size": 128, "num_attention_heads": 4,
  "num_hidden_layers": 2, "vocab_size": 64, "max_position_embeddings": 64,
  "rotary_pct": 0.25, "rotary_emb_base": 10000, "layer_norm_eps": 1e-05,
  "hidden_act": "gelu", "use_parallel_residual": true, "tie_word_embeddings": false,
  "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "float32"})");
  return path;
}

// A run config in `dir` (run directory dir/run) training the tiny model from scratch.
// `train` entries replace or add keys of the train block.
inline std::filesystem::path write_run_config(const std::filesystem::path& dir,
                                              const std::string& extra = "",
                                              const std::string& name = "run.yaml",
                                              const std::map<std::string, std::string>& train = {}) {
  std::map<std::string, std::string> t = {{"steps", "12"}, {"global_batch", "4"},
                                          {"seq_len", "16"}, {"seed", "3"}, {"threads", "1"}};
  for (const auto& [k, v] : train) t[k] = v;
  std::string block;
  for (const auto& [k, v] : t) block += (block.empty() ? "" : ", ") + k + ": " + v;
  const auto path = dir / name;
  write_file(path, "run: {dir: run}\n"
                   "model: {config: tiny_config.json}\n"
                   "train: {" + block + "}\n"
                   "schedule: {name: pythia_cosine, max_lr: 1.0e-2, min_lr: 1.0e-3, "
                   "warmup_steps: 2, decay_steps: 20, step_offset: 0}\n"
                   "data: {dataset: tokens}\n" +
                       extra);
  return path;
}

// A test in a fresh directory that holds make_dataset's tokens and make_model_config's
// tiny model, for write_run_config's runs.
class TinyRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    make_dataset(dir_.path());
    make_model_config(dir_.path());
  }
  TempDir dir_;
};

inline std::vector<TrainRow> train_rows(const std::filesystem::path& run_dir) {
  return RunFile::open_read_only((run_dir / "run.h5").string()).read_train();
}

// Starts `quantfork args` in `cwd` as a child process (stdout/stderr to cwd/child.log).
inline pid_t spawn_quantfork(const std::string& args, const std::filesystem::path& cwd,
                             const std::vector<std::string>& env = {}) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    const std::string cmd = "exec '" + quantfork_binary().string() + "' " + args +
                            " >> child.log 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

inline int wait_exit_code(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Polls until `path` exists (true) or `seconds` pass (false).
inline bool wait_for(const std::filesystem::path& path, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (std::filesystem::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace qf::test
