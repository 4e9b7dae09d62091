// at::parallel_for from our own code really runs on several threads: with an OpenMP
// libtorch it is an `omp parallel` region compiled into the caller, so a library built
// without -fopenmp would quietly run it on one (core/torch/compat.h refuses to build
// that; this checks the result at run time).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "core/torch/compat.h"

namespace qf::test {
namespace {

TEST(ParallelForTest, ChunksRunOnEveryThreadAskedFor) {
  const int saved = at::get_num_threads();
  at::set_num_threads(2);
  std::mutex m;
  std::set<int> threads;
  std::int64_t covered = 0;
  at::parallel_for(0, 1000, 1, [&](std::int64_t begin, std::int64_t end) {
    std::lock_guard<std::mutex> lock(m);
    threads.insert(at::get_thread_num());
    covered += end - begin;
  });
  at::set_num_threads(saved);
  EXPECT_EQ(covered, 1000);
  EXPECT_EQ(threads.size(), 2u) << "at::parallel_for ran its chunks on one thread";
}

}  // namespace
}  // namespace qf::test
