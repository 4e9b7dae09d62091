#pragma once
// Helpers for the data-parallel tests: free ports, ranks as threads (each with its own
// store connection and process group) or as forked processes, and counting this process's
// sockets and threads.
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "core/run_file.h"
#include "train/dist_env.h"

namespace qf::test {

// A port nobody listens on right now: the kernel's pick for port 0 (ctest -j runs several
// of these tests at once, so fixed ports would collide).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot find a free port";
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline train::DistEnv local_env(int rank, int world, int port) {
  train::DistEnv env;
  env.rank = rank;
  env.world_size = world;
  env.local_rank = rank;
  env.master_addr = "127.0.0.1";
  env.master_port = port;
  env.launcher = "torchrun";
  return env;
}

// The variables torchrun gives one worker of a job of `nodes` × `per_node` ranks on a
// cluster, here with every "node" on 127.0.0.1: node `node` (GROUP_RANK), local rank
// `local`, one rendezvous endpoint at 127.0.0.1:`port`. `agent_store`: torchrun's agent
// hosts the store there (its c10d rendezvous), so no worker does.
inline std::vector<std::string> torchrun_node_env(int node, int local, int nodes, int per_node,
                                                  int port, bool agent_store = false) {
  const auto s = [](int v) { return std::to_string(v); };
  std::vector<std::string> env = {"RANK=" + s(node * per_node + local),
                                  "WORLD_SIZE=" + s(nodes * per_node),
                                  "LOCAL_RANK=" + s(local),
                                  "LOCAL_WORLD_SIZE=" + s(per_node),
                                  "GROUP_RANK=" + s(node),
                                  "GROUP_WORLD_SIZE=" + s(nodes),
                                  "ROLE_RANK=" + s(node * per_node + local),
                                  "MASTER_ADDR=127.0.0.1",
                                  "MASTER_PORT=" + s(port),
                                  "TORCHELASTIC_RESTART_COUNT=0"};
  if (agent_store) env.push_back("TORCHELASTIC_USE_AGENT_STORE=True");
  return env;
}

// Runs fn(rank) for ranks 0..world-1 on threads; returns each rank's exception message
// ("" when it returned).
template <class F>
std::vector<std::string> run_ranks(int world, F fn) {
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (const std::exception& e) {
        errors[r] = e.what();
        if (errors[r].empty()) errors[r] = "(exception without message)";
      }
    });
  }
  for (auto& t : threads) t.join();
  return errors;
}

// Runs `child` (returning an exit status) in a forked process, which never returns into
// the test. The child does only store, Gloo and one-element tensor work: nothing that
// needs the parent's thread pools.
template <class F>
pid_t fork_rank(F child) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 0;
    try {
      code = child();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "forked rank failed: %s\n", e.what());
      code = 3;
    }
    ::_exit(code);
  }
  return pid;
}

inline int entries_of(const std::string& dir, const std::string& link_prefix = "") {
  int n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      if (link_prefix.empty()) {
        ++n;
        continue;
      }
      char target[256] = {0};
      const std::string path = dir + "/" + e->d_name;
      if (::readlink(path.c_str(), target, sizeof target - 1) > 0 &&
          std::string(target).rfind(link_prefix, 0) == 0) {
        ++n;
      }
    }
    ::closedir(d);
  }
  return n;
}
inline int open_sockets() {
  return entries_of("/proc/self/fd", "socket:");
}
inline int live_threads() {
  return entries_of("/proc/self/task");
}

// Two runs' /train rows: 20 each, losses equal to 1e-6 relative and gradient norms to
// 1e-5, update by update; the worst relative loss difference goes into the test's XML.
inline void expect_same_losses(const std::vector<TrainRow>& a, const std::vector<TrainRow>& b) {
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double rel = std::abs(a[i].loss - b[i].loss) / std::abs(a[i].loss);
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-6) << "step " << a[i].step << ": " << a[i].loss << " vs " << b[i].loss;
    EXPECT_NEAR(a[i].grad_norm, b[i].grad_norm, 1e-5 * a[i].grad_norm) << "step " << a[i].step;
  }
  ::testing::Test::RecordProperty("max_rel_loss_difference", std::to_string(worst));
}

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace qf::test
