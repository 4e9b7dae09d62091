// DataParallel over real Gloo groups on 127.0.0.1: ranks run as threads (each with its own
// store connection and process group) where all of them are healthy, and as forked
// processes where one has to die, freeze or hang. DistEnv parsing: dist_env_test.cpp.
#include "train/distributed.h"

#include <signal.h>
#include <torch/torch.h>

#include "core/errors.h"
#include "dist_test_support.h"
#include "test_support.h"

namespace qf::train {
namespace {

using qf::test::fork_rank;
using qf::test::free_port;
using qf::test::local_env;
using qf::test::message_of;
using qf::test::run_ranks;
using qf::test::seconds_since;
using Clock = std::chrono::steady_clock;

// ---- DataParallel: one process ---------------------------------------------------------

TEST(DataParallel, WorldOneIsANoOpWithoutSocketsOrThreads) {
  const int sockets = qf::test::open_sockets(), threads = qf::test::live_threads();
  DataParallel dp(DistEnv{}, at::kCPU);
  EXPECT_EQ(qf::test::open_sockets(), sockets);
  EXPECT_EQ(qf::test::live_threads(), threads);
  EXPECT_TRUE(dp.is_root());
  EXPECT_EQ(dp.world_size(), 1);
  EXPECT_EQ(dp.all_reduce_mean(2.5), 2.5);
  EXPECT_EQ(dp.all_reduce_max(-1.0), -1.0);
  auto t = at::full({3}, 4.0);
  dp.all_reduce_sum_(t);
  EXPECT_TRUE(at::equal(t, at::full({3}, 4.0)));
  auto w = at::full({2}, 3.0).requires_grad_();
  dp.broadcast({w});
  dp.attach({w});
  (w * w).sum().backward();
  dp.finish_backward();
  dp.barrier();
  EXPECT_TRUE(at::equal(w.grad(), at::full({2}, 6.0)));  // untouched: its own gradient
  EXPECT_EQ(dp.bucket_count(), 0);
}

TEST(DataParallel, RejectsBadOptions) {
  DataParallelOptions o;
  o.backend = "mpi";
  EXPECT_NE(message_of<ConfigError>([&] { DataParallel(DistEnv{}, at::kCPU, o); }).find("'mpi'"),
            std::string::npos);
  o.backend = "nccl";
  EXPECT_NE(message_of<ConfigError>([&] { DataParallel(DistEnv{}, at::kCPU, o); }).find("CUDA"),
            std::string::npos);
  DistEnv bad;
  bad.rank = 2;
  bad.world_size = 2;
  EXPECT_NE(message_of<ConfigError>([&] { DataParallel(bad, at::kCPU); }).find("rank 2"),
            std::string::npos);
}

// ---- DataParallel: healthy ranks -------------------------------------------------------

TEST(DataParallel, CollectivesOverTwoRanks) {
  const int port = free_port();
  std::vector<std::vector<at::Tensor>> got(2);
  std::vector<std::vector<double>> scalars(2);
  const auto errors = run_ranks(2, [&](int r) {
    DataParallelOptions o;
    o.bucket_bytes = 16;  // several broadcast buckets
    DataParallel dp(local_env(r, 2, port), at::kCPU, o);
    std::vector<at::Tensor> ts = {
        at::arange(12, at::kFloat).reshape({3, 4}) + 100 * r,
        at::full({5}, 1.5 + r, at::kDouble),
        at::full({2}, 7 + r, at::kLong),
        at::full({6}, 0.25 + r, at::kBFloat16),
        (at::arange(6, at::kFloat).reshape({2, 3}) * (r + 1)).t(),  // not contiguous
        at::full({2}, 1.0 + r).requires_grad_()};
    dp.broadcast(ts);
    scalars[r] = {dp.all_reduce_mean(r + 1.0), dp.all_reduce_max(5.0 * r)};
    auto sum = at::full({2, 3}, r + 1.0);
    auto strided = at::full({3, 2}, r + 1.0).t();
    auto half = at::full({4}, r + 1.0, at::kBFloat16);
    dp.all_reduce_sum_(sum);
    dp.all_reduce_sum_(strided);
    dp.all_reduce_sum_(half);
    dp.barrier();
    ts.insert(ts.end(), {sum, strided, half});
    got[r] = ts;
  });
  ASSERT_EQ(errors, std::vector<std::string>(2)) << errors[0] << " | " << errors[1];
  for (size_t i = 0; i < 6; ++i) EXPECT_TRUE(at::equal(got[0][i], got[1][i])) << "tensor " << i;
  EXPECT_TRUE(at::equal(got[1][0], at::arange(12, at::kFloat).reshape({3, 4})));
  EXPECT_TRUE(at::equal(got[1][3], at::full({6}, 0.25, at::kBFloat16)));
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(scalars[r], (std::vector<double>{1.5, 5.0}));
    EXPECT_TRUE(at::equal(got[r][6], at::full({2, 3}, 3.0)));
    EXPECT_TRUE(at::equal(got[r][7], at::full({2, 3}, 3.0)));
    EXPECT_TRUE(at::equal(got[r][8], at::full({4}, 3.0, at::kBFloat16)));
  }
}

// y = tanh(x W1 + b1) W2 + b2 with a mean squared error: four parameters of different
// sizes (140, 28, 84 and 12 bytes), so the bucket size decides how they group.
struct Tiny {
  std::vector<at::Tensor> p;
  explicit Tiny(const std::vector<at::Tensor>& init) {
    for (const auto& t : init) p.push_back(t.clone().requires_grad_());
  }
  at::Tensor loss(const at::Tensor& x, const at::Tensor& y) const {
    return at::mse_loss(at::matmul(at::tanh(at::matmul(x, p[0]) + p[1]), p[2]) + p[3], y);
  }
  std::vector<at::Tensor> grads() const {
    std::vector<at::Tensor> g;
    for (const auto& t : p) g.push_back(t.grad().clone());
    return g;
  }
};

struct Problem {
  std::vector<at::Tensor> init;
  at::Tensor x, y;
  Problem() {
    auto gen = at::detail::createCPUGenerator(1234);
    for (auto shape : std::vector<std::vector<int64_t>>{{5, 7}, {7}, {7, 3}, {3}}) {
      init.push_back(at::randn(shape, gen));
    }
    x = at::randn({8, 5}, gen);
    y = at::randn({8, 3}, gen);
  }
  at::Tensor rows(const at::Tensor& t, int64_t begin, int64_t n) const {
    return t.narrow(0, begin, n);
  }
};

void expect_close(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double scale = want[i].abs().max().item<double>();
    const double err = (got[i] - want[i]).abs().max().item<double>();
    EXPECT_LE(err, 1e-6 * scale) << what << ": parameter " << i;
  }
}

class GradientBuckets : public ::testing::TestWithParam<std::pair<int64_t, int>> {};

TEST_P(GradientBuckets, AverageEqualsTheFullBatchGradient) {
  const auto [bucket_bytes, buckets] = GetParam();
  const Problem pb;
  Tiny ref(pb.init);
  ref.loss(pb.x, pb.y).backward();
  const int port = free_port();
  std::vector<std::vector<at::Tensor>> grads(2);
  std::vector<int> launched_in_backward(2);
  const auto errors = run_ranks(2, [&](int r) {
    DataParallelOptions o;
    o.bucket_bytes = bucket_bytes;
    DataParallel dp(local_env(r, 2, port), at::kCPU, o);
    Tiny m(pb.init);
    if (r == 1) {
      at::NoGradGuard g;
      for (auto& t : m.p) t.add_(1.0);  // wrong until rank 0's weights arrive
    }
    dp.broadcast(m.p);
    dp.attach(m.p);
    m.loss(pb.rows(pb.x, 4 * r, 4), pb.rows(pb.y, 4 * r, 4)).backward();
    launched_in_backward[r] = dp.launched_bucket_count();
    EXPECT_EQ(dp.bucket_count(), buckets);
    dp.finish_backward();
    grads[r] = m.grads();
  });
  ASSERT_EQ(errors, std::vector<std::string>(2)) << errors[0] << " | " << errors[1];
  for (int r = 0; r < 2; ++r) {
    // Every bucket went out during backward, before finish_backward was called.
    EXPECT_EQ(launched_in_backward[r], buckets);
    expect_close(grads[r], ref.grads(), "rank " + std::to_string(r));
  }
  for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_TRUE(at::equal(grads[0][i], grads[1][i]));
}

INSTANTIATE_TEST_SUITE_P(DataParallel, GradientBuckets,
                         ::testing::Values(std::make_pair(int64_t{1}, 4),  // < one parameter
                                           std::make_pair(int64_t{100}, 2),
                                           std::make_pair(int64_t{1} << 30, 1)));  // > all

TEST(DataParallel, AccumulationWithoutSyncMatchesOneProcess) {
  const Problem pb;
  Tiny ref(pb.init);  // one process, two micro-batches of 4 rows
  for (int k = 0; k < 2; ++k)
    (ref.loss(pb.rows(pb.x, 4 * k, 4), pb.rows(pb.y, 4 * k, 4)) / 2).backward();
  const int port = free_port();
  std::vector<std::vector<at::Tensor>> grads(2);
  std::vector<int> launched(2, -1);
  const auto errors = run_ranks(2, [&](int r) {
    DataParallelOptions o;
    o.bucket_bytes = 100;
    DataParallel dp(local_env(r, 2, port), at::kCPU, o);
    Tiny m(pb.init);
    dp.attach(m.p);
    for (int k = 0; k < 2; ++k) {  // rank r: rows 4r..4r+3, two micro-batches of 2 rows
      dp.set_sync(k == 1);
      (m.loss(pb.rows(pb.x, 4 * r + 2 * k, 2), pb.rows(pb.y, 4 * r + 2 * k, 2)) / 2).backward();
      if (k == 0) launched[r] = dp.launched_bucket_count();
    }
    dp.finish_backward();
    grads[r] = m.grads();
  });
  ASSERT_EQ(errors, std::vector<std::string>(2)) << errors[0] << " | " << errors[1];
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(launched[r], 0) << "set_sync(false) must not communicate";
    expect_close(grads[r], ref.grads(), "rank " + std::to_string(r));
  }
}

TEST(DataParallel, UnusedParametersCountAsZero) {
  const int port = free_port();
  std::vector<std::vector<at::Tensor>> grads(2);
  const auto errors = run_ranks(2, [&](int r) {
    DataParallelOptions o;
    o.bucket_bytes = 1;
    DataParallel dp(local_env(r, 2, port), at::kCPU, o);
    auto w = at::full({3}, 2.0).requires_grad_();
    auto unused = at::full({2}, 5.0).requires_grad_();
    auto only_rank1 = at::full({4}, 3.0).requires_grad_();
    dp.attach({w, unused, only_rank1});
    auto loss = (w * w).sum() * (r + 1);
    if (r == 1) loss = loss + (only_rank1 * only_rank1).sum();
    loss.backward();
    dp.finish_backward();
    grads[r] = {w.grad(), unused.grad(), only_rank1.grad()};
  });
  ASSERT_EQ(errors, std::vector<std::string>(2)) << errors[0] << " | " << errors[1];
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(at::equal(grads[r][0], at::full({3}, 6.0)));  // (4 + 8) / 2
    EXPECT_TRUE(at::equal(grads[r][1], at::zeros({2})));
    EXPECT_TRUE(at::equal(grads[r][2], at::full({4}, 3.0)));  // (0 + 6) / 2
  }
}

TEST(DataParallel, SecondSyncedBackwardIsAnError) {
  const int port = free_port();
  std::vector<std::string> second(2);
  const auto errors = run_ranks(2, [&](int r) {
    DataParallel dp(local_env(r, 2, port), at::kCPU);
    auto w = at::full({3}, 1.0).requires_grad_();
    dp.attach({w});
    (w * w).sum().backward();
    second[r] = message_of<Error>([&] { (w * w).sum().backward(); });
    dp.finish_backward();
  });
  ASSERT_EQ(errors, std::vector<std::string>(2)) << errors[0] << " | " << errors[1];
  for (const auto& msg : second) EXPECT_NE(msg.find("set_sync(false)"), std::string::npos) << msg;
}

// ---- DataParallel: dead, hung and missing ranks ----------------------------------------

DataParallelOptions with_timeout(int ms) {
  DataParallelOptions o;
  o.timeout = std::chrono::milliseconds(ms);
  return o;
}

int exit_status(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(DataParallelFailure, DeadRankIsNamedQuickly) {
  const int port = free_port();
  const pid_t child = fork_rank([&] {
    DataParallel dp(local_env(1, 2, port), at::kCPU, with_timeout(3000));
    dp.barrier();
    ::_exit(0);  // dies without a word, sockets closed by the kernel
    return 0;
  });
  auto dp = std::make_unique<DataParallel>(local_env(0, 2, port), at::kCPU, with_timeout(3000));
  dp->barrier();
  const auto start = Clock::now();
  const auto msg = message_of<Error>([&] { dp->all_reduce_mean(1.0); });
  const double elapsed = seconds_since(start);
  EXPECT_LT(elapsed, 3.0) << msg;
  EXPECT_NE(msg.find("rank 1 stopped responding"), std::string::npos) << msg;
  // Later calls fail at once with the same message; the object still dies promptly.
  const auto again = Clock::now();
  EXPECT_EQ(message_of<Error>([&] { dp->barrier(); }), msg);
  EXPECT_LT(seconds_since(again), 0.1);
  const auto destroy = Clock::now();
  dp.reset();
  EXPECT_LT(seconds_since(destroy), 1.0);
  EXPECT_EQ(exit_status(child), 0);
}

// Rank 0 hosts the store the diagnosis reads: killed, it refuses connections; frozen
// (SIGSTOP), it accepts them and never answers. Either way rank 1 names it in time.
class RootLost : public ::testing::TestWithParam<int> {};

TEST_P(RootLost, IsNamedWithinTheTimeout) {
  const int port = free_port();
  const pid_t child = fork_rank([&] {
    DataParallel dp(local_env(0, 2, port), at::kCPU, with_timeout(2000));
    dp.barrier();
    ::raise(GetParam());
    return 0;
  });
  {
    DataParallel dp(local_env(1, 2, port), at::kCPU, with_timeout(2000));
    dp.barrier();
    const auto start = Clock::now();
    const auto msg = message_of<Error>([&] { dp.all_reduce_mean(1.0); });
    EXPECT_LT(seconds_since(start), 2.0 + 0.5) << msg;  // the timeout, plus scheduling slack
    EXPECT_NE(msg.find("rank 0 is unreachable"), std::string::npos) << msg;
  }
  ::kill(child, SIGKILL);
  EXPECT_EQ(exit_status(child), 128 + SIGKILL);
}

INSTANTIATE_TEST_SUITE_P(DataParallelFailure, RootLost, ::testing::Values(SIGKILL, SIGSTOP));

TEST(DataParallelFailure, HungRankIsNamedWithinTheTimeout) {
  const int port = free_port();
  const pid_t child = fork_rank([&] {
    DataParallel dp(local_env(1, 2, port), at::kCPU, with_timeout(2000));
    dp.barrier();
    std::this_thread::sleep_for(std::chrono::seconds(30));  // alive, heartbeat running
    return 0;
  });
  auto dp = std::make_unique<DataParallel>(local_env(0, 2, port), at::kCPU, with_timeout(2000));
  dp->barrier();
  auto w = at::full({4}, 1.0).requires_grad_();
  dp->attach({w});
  const auto start = Clock::now();
  (w * w).sum().backward();  // launches the gradient all-reduce
  const auto msg = message_of<Error>([&] { dp->finish_backward(); });
  const double elapsed = seconds_since(start);
  EXPECT_LT(elapsed, 2.0 + 0.5) << msg;  // the timeout, plus scheduling slack
  EXPECT_GT(elapsed, 1.0) << msg;
  EXPECT_NE(msg.find("rank 1 is alive but never reached"), std::string::npos) << msg;
  const auto destroy = Clock::now();
  dp.reset();  // the peer is still alive and connected
  EXPECT_LT(seconds_since(destroy), 1.0);
  ::kill(child, SIGKILL);
  EXPECT_EQ(exit_status(child), 128 + SIGKILL);
}

TEST(DataParallelFailure, RendezvousNamesMissingAndDoubledRanks) {
  const int port = free_port();
  const std::vector<int> ranks = {0, 1, 1};  // world 3: rank 2 never starts, 1 twice
  const auto start = Clock::now();
  const auto errors = run_ranks(3, [&](int i) {
    DataParallel dp(local_env(ranks[i], 3, port), at::kCPU, with_timeout(1500));
  });
  EXPECT_LT(seconds_since(start), 1.5 + 0.5);
  int doubled = 0, missing = 0;
  for (const auto& e : errors) {
    doubled += e.find("rank 1 was given to two processes") != std::string::npos;
    missing += e.find("rank 2 of 3 never joined") != std::string::npos;
  }
  EXPECT_EQ(doubled, 1) << errors[0] << " | " << errors[1] << " | " << errors[2];
  EXPECT_EQ(missing, 2) << errors[0] << " | " << errors[1] << " | " << errors[2];
}

TEST(DataParallelFailure, RendezvousWithoutRankZero) {
  const auto start = Clock::now();
  const auto msg = message_of<Error>(
      [&] { DataParallel dp(local_env(1, 2, free_port()), at::kCPU, with_timeout(1000)); });
  EXPECT_LT(seconds_since(start), 1.0 + 0.5);
  EXPECT_NE(msg.find("could not reach rank 0"), std::string::npos) << msg;
}

}  // namespace
}  // namespace qf::train
