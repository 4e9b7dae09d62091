#include "train/distributed_group.h"

#include <netdb.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>

#include "core/errors.h"

#ifdef QF_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef QF_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace qf::train::detail {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::vector<uint8_t> bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

// Store keys: who claimed each rank, how many joined, and why rank 0 gave up.
std::string rank_key(int r) {
  return "qf/rank/" + std::to_string(r);
}
const char* const kJoined = "qf/joined";
const char* const kVerdict = "qf/rendezvous_failed";

// True once something accepts TCP connections at host:port; `error` says why not. A
// connection attempt lasts at most a second (or up to the deadline).
bool listening(const std::string& host, int port, Clock::time_point deadline, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found)) {
    error = "cannot resolve '" + host + "': " + ::gai_strerror(rc);
    return false;
  }
  bool ok = false;
  for (addrinfo* a = found; a && !ok; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      pollfd p{fd, POLLOUT, 0};
      int soerr = 0;
      socklen_t len = sizeof soerr;
      ok = ::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(left.count(), 1, 1000))) == 1 &&
           ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0;
      if (!ok && soerr) error = std::strerror(soerr);
    } else {
      error = std::strerror(errno);
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return ok;
}

#ifdef QF_WITH_GLOO
// Ranks that all sit on this machine talk over loopback; otherwise Gloo binds to the
// address this host's name resolves to, unless GLOO_SOCKET_IFNAME picks an interface.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  if (master_addr.rfind("127.", 0) == 0 || master_addr == "localhost" || master_addr == "::1") {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}
#endif

}  // namespace

CommGroup::CommGroup(const DistEnv& env, const std::string& backend, milliseconds timeout)
    : rank_(env.rank),
      world_size_(env.world_size),
      where_(env.master_addr + ":" + std::to_string(env.master_port)),
      nccl_(backend == "nccl"),
      timeout_(timeout),
      // A failed collective is followed by a diagnosis that watches two heartbeat
      // intervals, so the backend gets the timeout minus that time: the whole failure stays
      // within `timeout`. Beats at least 200 ms apart: a busy machine's scheduling delays
      // must not pass for a dead rank.
      interval_(std::clamp(timeout / 20, milliseconds(200), milliseconds(1000))),
      backend_timeout_(std::max(timeout - 4 * interval_, timeout / 2)) {
  const auto deadline = Clock::now() + timeout_;
  connect_store(env, deadline);
  join(env, deadline);
  create_backend(env, backend);
  // Diagnoses read the store after a failure; a rank 0 that is frozen must not hold them
  // for long (and a store read that timed out leaves the connection unusable).
  store_->setTimeout(2 * interval_);
  heartbeat_->start(launched_);
  spdlog::debug("[rank {}] joined {} ranks at {} ({})", rank_, world_size_, where_, backend);
}

CommGroup::~CommGroup() {
  heartbeat_.reset();
  // A failed NCCL collective may still occupy the GPU; destroying its communicator would
  // wait for it. Gloo's in-flight work ends with its own timeout, so it is destroyed.
  std::lock_guard<std::mutex> lock(fail_mu_);
  if (nccl_ && !first_error_.empty() && backend_) (void)backend_.release();
  backend_.reset();
  store_.reset();
}

c10::intrusive_ptr<c10d::TCPStore> connect_store(const DistEnv& env, bool host,
                                                 Clock::time_point deadline, milliseconds timeout,
                                                 const std::string& who) {
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  // c10d's client retries a refused connection only once a second, and not at all with
  // less than a second left; ranks usually start together, so wait for the store to
  // listen here, with quick probes, and connect once it does.
  std::string probe_error = "nothing listens there";
  while (!host && !listening(env.master_addr, env.master_port, deadline, probe_error)) {
    if (Clock::now() + milliseconds(50) >= deadline) {
      throw Error(who + " could not reach rank 0's rendezvous store at " + where + " within " +
                  seconds_text(timeout) +
                  ": rank 0 has not started, has died, or MASTER_ADDR/MASTER_PORT point "
                  "elsewhere (" +
                  probe_error + ")");
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<uint16_t>(env.master_port);
  opts.isServer = host;
  opts.waitWorkers = false;  // callers wait themselves, so they can tell who is missing
  opts.timeout = std::max(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()),
                          milliseconds(1000));
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
  } catch (const std::exception& e) {
    throw Error(host ? who + " could not host the rendezvous store on port " +
                           std::to_string(env.master_port) + " (MASTER_PORT; busy?): " + reason(e)
                     : who + " could not connect to the store at " + where + ": " + reason(e));
  }
  store->setTimeout(timeout);
  return store;
}

void CommGroup::connect_store(const DistEnv& env, Clock::time_point deadline) {
  // torchrun's elastic agent (its c10d rendezvous) already hosts a TCPStore at
  // MASTER_ADDR:MASTER_PORT and says so; every rank, rank 0 included, is then a client.
  // (Its keys are not namespaced per restart: torchrun --max-restarts > 0 is not
  // supported.) A run started by `quantfork experiment` meets at the experiment's store,
  // under its own prefix.
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  const bool host_store =
      rank_ == 0 && env.store_prefix.empty() && !(agent && std::string(agent) == "True");
  auto tcp =
      detail::connect_store(env, host_store, deadline, timeout_, "rank " + std::to_string(rank_));
  if (env.store_prefix.empty()) {
    store_ = tcp;
  } else {
    store_ = c10::make_intrusive<c10d::PrefixStore>(env.store_prefix, tcp);
    where_ += " (keys " + env.store_prefix + ")";
  }
}

void CommGroup::join(const DistEnv& env, Clock::time_point deadline) {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  // Unique per group, also when several groups share a process (tests run ranks as threads).
  static std::atomic<int> groups{0};
  const std::string me = std::string(host) + " pid " + std::to_string(::getpid()) + " group " +
                         std::to_string(groups++);
  // Rank 0 gives up a little early and leaves its verdict in the store for that long, so
  // that the ranks that did join learn who is missing before the store goes away.
  const auto grace = std::min(milliseconds(300), timeout_ / 10);
  try {
    const auto claim = store_->compareSet(rank_key(rank_), {}, bytes(me));
    if (claim != bytes(me)) {
      throw ConfigError("rank " + std::to_string(rank_) + " was given to two processes (" + me +
                        " and " + std::string(claim.begin(), claim.end()) + "): check the " +
                        env.launcher + " rank variables");
    }
    heartbeat_ = std::make_unique<Heartbeat>(store_, rank_, world_size_, where_, interval_);
    store_->add(kJoined, 1);
    auto pause = milliseconds(5);
    while (store_->add(kJoined, 0) < world_size_) {
      if (rank_ != 0 && store_->check({kVerdict})) {
        const auto verdict = store_->get(kVerdict);
        throw Error("rank " + std::to_string(rank_) + ": " +
                    std::string(verdict.begin(), verdict.end()));
      }
      if (Clock::now() >= (rank_ == 0 ? deadline - grace : deadline)) {
        std::vector<int> missing;
        for (int r = 0; r < world_size_; ++r) {
          if (!store_->check({rank_key(r)})) missing.push_back(r);
        }
        std::string msg = "rendezvous at " + where_ + " timed out after " + seconds_text(timeout_) +
                          " on rank " + std::to_string(rank_) + ": " + ranks_text(missing) +
                          " of " + std::to_string(world_size_) +
                          " never joined (not started, crashed first, or given another "
                          "MASTER_ADDR:MASTER_PORT)";
        if (env.launcher == "slurm") msg += "; under Slurm, start every task with srun";
        if (rank_ == 0) {
          store_->set(kVerdict, bytes(msg));
          std::this_thread::sleep_for(grace);
        }
        throw Error(msg);
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(2 * pause, milliseconds(50));
    }
  } catch (const qf::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(rank_) + ": rank 0's rendezvous store at " + where_ +
                " failed during the rendezvous (rank 0 died?): " + reason(e));
  }
}

void CommGroup::create_backend(const DistEnv& env, const std::string& backend) {
  auto store = c10::make_intrusive<c10d::PrefixStore>("qf/pg", store_);
  try {
    if (nccl_) {
#ifdef QF_WITH_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      // Our own deadline (wait()) must fire first: NCCL's watchdog may end the process.
      opts->timeout = timeout_ + 4 * interval_;
      backend_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank_, world_size_, opts);
#else
      throw ConfigError(
          "backend 'nccl' asked for, but this quantfork was built without NCCL "
          "(a CUDA libtorch and nccl.h are needed)");
#endif
    } else {
#ifdef QF_WITH_GLOO
      auto opts = c10d::ProcessGroupGloo::Options::create(backend_timeout_);
      opts->devices.push_back(gloo_device(env.master_addr));
      backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank_, world_size_, opts);
#else
      (void)env;
      throw ConfigError(
          "backend 'gloo' asked for, but this quantfork was built without Gloo "
          "(install libgloo-dev, scripts/setup.sh, and reconfigure)");
#endif
    }
  } catch (const qf::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(rank_) + ": connecting the " + backend +
                " process group of " + std::to_string(world_size_) + " ranks failed: " + reason(e));
  }
}

Pending CommGroup::all_reduce(at::Tensor tensor, c10d::ReduceOp op, std::string what) {
  return launch(std::move(what), [&] {
    std::vector<at::Tensor> tensors{tensor};
    c10d::AllreduceOptions opts;
    opts.reduceOp = op;
    return backend_->allreduce(tensors, opts);
  });
}

Pending CommGroup::broadcast(at::Tensor tensor, std::string what) {
  return launch(std::move(what), [&] {
    std::vector<at::Tensor> tensors{tensor};
    c10d::BroadcastOptions opts;
    opts.rootRank = 0;
    return backend_->broadcast(tensors, opts);
  });
}

Pending CommGroup::launch(std::string what,
                          const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
  check_usable();
  Pending p;
  p.seq = ++launched_;
  p.what = std::move(what);
  const auto now = Clock::now();
  try {
    p.work = start();
  } catch (const std::exception& e) {
    fail(p, e, now);
  }
  return p;
}

void CommGroup::wait(const Pending& p) {
  check_usable();
  const auto start = Clock::now();
  try {
    if (nccl_) {
      // NCCL's wait() only orders streams; completion on the GPU is what can hang.
      auto pause = std::chrono::microseconds(20);
      while (!p.work->isCompleted()) {
        if (Clock::now() - start > backend_timeout_) {
          throw std::runtime_error("not finished after " + seconds_text(backend_timeout_));
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(2 * pause, std::chrono::microseconds(1000));
      }
      p.work->wait();
    } else {
      // Gloo fails by itself after backend_timeout_; this bound is a second guard.
      p.work->wait(timeout_);
    }
  } catch (const std::exception& e) {
    fail(p, e, start);
  }
}

void CommGroup::check_usable() const {
  std::lock_guard<std::mutex> lock(fail_mu_);
  if (!first_error_.empty()) throw Error(first_error_);
}

void CommGroup::fail(const Pending& p, const std::exception& cause, Clock::time_point since) {
  const std::string elapsed = seconds_text(Clock::now() - since);
  const std::string blame = heartbeat_->diagnose(p.seq);
  const std::string msg = "rank " + std::to_string(rank_) + ": " + p.what + " (collective #" +
                          std::to_string(p.seq) + ") failed after " + elapsed + ": " + blame +
                          " [" + (nccl_ ? "nccl" : "gloo") + ": " + reason(cause) + "]";
  spdlog::error("{}", msg);
  {
    std::lock_guard<std::mutex> lock(fail_mu_);
    if (first_error_.empty()) first_error_ = msg;
  }
  throw Error(msg);
}

}  // namespace qf::train::detail
