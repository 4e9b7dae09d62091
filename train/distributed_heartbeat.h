#pragma once
// The heartbeat of one rank, through rank 0's c10d::TCPStore, and what it tells after a
// collective failed. Every interval each rank writes "beat last-launched" under its key;
// a rank whose beat stops moving is dead or frozen, one whose beat moves but that has not
// launched the failed collective is alive but stuck elsewhere. Internal to train/.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

namespace qf::train::detail {

// Text for the distributed code's messages: "1.50 s"; "rank 2" or "ranks 1, 3"; an
// exception's first line (c10 errors carry a C++ backtrace that drowns the reason).
std::string seconds_text(std::chrono::steady_clock::duration d);
std::string ranks_text(const std::vector<int>& ranks);
std::string reason(const std::exception& e);

class Heartbeat {
 public:
  // Writes this rank's first beat at once, so that every rank's key exists by the time
  // all have joined. `where` names the store in messages.
  Heartbeat(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size, std::string where,
            std::chrono::milliseconds interval);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // Beats every interval from now on; `launched` is the rank's count of collectives
  // launched so far (every rank numbers them alike).
  void start(const std::atomic<int64_t>& launched);
  // Why collective number `seq` could have failed, naming ranks: reads every heartbeat
  // twice, two intervals apart.
  std::string diagnose(int64_t seq);

 private:
  struct Beat {
    int64_t beat = 0, launched = 0;
  };
  std::optional<std::vector<Beat>> read_all();
  bool publish(int64_t beat);

  c10::intrusive_ptr<c10d::Store> store_;
  int rank_, world_size_;
  std::string where_;
  std::chrono::milliseconds interval_;
  const std::atomic<int64_t>* launched_ = nullptr;

  std::mutex store_mu_;  // the store's client is shared by the beating thread and diagnose()
  bool store_lost_ = false;

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace qf::train::detail
