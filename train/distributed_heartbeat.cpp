#include "train/distributed_heartbeat.h"

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <sstream>

namespace qf::train::detail {
namespace {

std::string beat_key(int r) {
  return "qf/beat/" + std::to_string(r);
}

std::vector<uint8_t> beat_value(int64_t beat, int64_t launched) {
  const std::string s = std::to_string(beat) + " " + std::to_string(launched);
  return {s.begin(), s.end()};
}

}  // namespace

std::string seconds_text(std::chrono::steady_clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", std::chrono::duration<double>(d).count());
  return buf;
}

std::string ranks_text(const std::vector<int>& ranks) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out;
}

std::string reason(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10 ? c10->what_without_backtrace() : e.what();
  text = text.substr(0, text.find('\n'));
  return text.empty() ? "(no message)" : text;
}

Heartbeat::Heartbeat(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size,
                     std::string where, std::chrono::milliseconds interval)
    : store_(std::move(store)),
      rank_(rank),
      world_size_(world_size),
      where_(std::move(where)),
      interval_(interval) {
  store_->set(beat_key(rank_), beat_value(0, 0));
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Heartbeat::start(const std::atomic<int64_t>& launched) {
  launched_ = &launched;
  publish(1);
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    for (int64_t beat = 2;; ++beat) {
      if (cv_.wait_for(lock, interval_, [&] { return stop_; })) return;
      if (!publish(beat)) return;
    }
  });
}

bool Heartbeat::publish(int64_t beat) {
  std::lock_guard<std::mutex> lock(store_mu_);
  if (store_lost_) return false;
  try {
    store_->set(beat_key(rank_), beat_value(beat, launched_->load()));
    return true;
  } catch (const std::exception& e) {
    // Normal when rank 0 finished first and took the store with it.
    spdlog::debug("[rank {}] heartbeat stopped: {}", rank_, reason(e));
    store_lost_ = true;
    return false;
  }
}

std::optional<std::vector<Heartbeat::Beat>> Heartbeat::read_all() {
  std::lock_guard<std::mutex> lock(store_mu_);
  if (store_lost_) return std::nullopt;
  std::vector<Beat> beats(world_size_);
  try {
    for (int r = 0; r < world_size_; ++r) {
      const auto v = store_->get(beat_key(r));
      std::istringstream in(std::string(v.begin(), v.end()));
      in >> beats[r].beat >> beats[r].launched;
    }
  } catch (const std::exception&) {
    store_lost_ = true;  // a timed-out read leaves the connection out of step
    return std::nullopt;
  }
  return beats;
}

std::string Heartbeat::diagnose(int64_t seq) {
  const auto first = read_all();
  if (first) std::this_thread::sleep_for(2 * interval_);
  const auto second = first ? read_all() : std::nullopt;
  if (!second) {
    return rank_ == 0 ? std::string("this rank's own rendezvous store stopped answering")
                      : "rank 0 is unreachable: its rendezvous store at " + where_ +
                            " stopped answering (rank 0 died or is frozen)";
  }
  std::vector<int> dead, behind;
  std::string last;
  for (int r = 0; r < world_size_; ++r) {
    if (r == rank_) continue;
    if ((*second)[r].beat == (*first)[r].beat) {
      dead.push_back(r);
    } else if ((*second)[r].launched < seq) {
      behind.push_back(r);
      last += (last.empty() ? "rank " : ", rank ") + std::to_string(r) + " at #" +
              std::to_string((*second)[r].launched);
    }
  }
  std::string out;
  if (!dead.empty()) {
    out = ranks_text(dead) + " stopped responding (no heartbeat for " +
          seconds_text(2 * interval_) + ": died, was killed, or is frozen)";
  }
  if (!behind.empty()) {
    out += (out.empty() ? "" : "; ") + ranks_text(behind) + (behind.size() == 1 ? " is" : " are") +
           " alive but never reached this collective (last launched: " + last +
           "): hung, or running different code";
  }
  return out.empty() ? "every rank is alive and reached this collective: a network fault?" : out;
}

}  // namespace qf::train::detail
