// core/torch/cpu_block_cache.h: large CPU buffers reused by exact size inside a scope,
// everything else (small requests, life after the scope) as libtorch does it.
#include "core/torch/cpu_block_cache.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <thread>
#include <vector>

#include "test_support.h"

namespace qf::test {
namespace {

constexpr std::int64_t kMiB = 1 << 20;

at::Tensor floats(std::int64_t bytes) {
  return at::empty({bytes / 4}, at::kFloat);
}

TEST(CpuBlockCacheTest, ABufferFreedIsReusedForTheSameSizeOnly) {
  ScopedCpuBlockCache cache;
  ASSERT_TRUE(cache.active());
  at::Tensor a = floats(4 * kMiB);
  a.fill_(1.5f);
  const void* where = a.data_ptr();
  EXPECT_EQ(ScopedCpuBlockCache::in_use_bytes(), 4u * kMiB);
  a.reset();
  EXPECT_EQ(ScopedCpuBlockCache::in_use_bytes(), 0u);
  EXPECT_EQ(ScopedCpuBlockCache::cached_bytes(), 4u * kMiB);

  const at::Tensor other = floats(2 * kMiB);  // another size: a new buffer
  EXPECT_NE(other.data_ptr(), where);
  EXPECT_EQ(ScopedCpuBlockCache::cached_bytes(), 4u * kMiB);
  at::Tensor b = floats(4 * kMiB);
  EXPECT_EQ(b.data_ptr(), where);
  EXPECT_EQ(ScopedCpuBlockCache::cached_bytes(), 0u);
  b.fill_(2.0f);  // writable, and what was there does not matter
  EXPECT_EQ(b.sum().item<double>(), 2.0 * static_cast<double>(b.numel()));
}

TEST(CpuBlockCacheTest, SmallRequestsGoToLibtorchsAllocator) {
  ScopedCpuBlockCache cache;
  const at::Tensor small = floats(64 * 1024);
  EXPECT_EQ(ScopedCpuBlockCache::in_use_bytes(), 0u);
  ScopedCpuBlockCache::release();
  EXPECT_EQ(ScopedCpuBlockCache::cached_bytes(), 0u);
}

TEST(CpuBlockCacheTest, ReleaseUnmapsOnlyTheBuffersNotInUse) {
  ScopedCpuBlockCache cache;
  at::Tensor kept = floats(3 * kMiB), freed = floats(5 * kMiB);
  kept.fill_(7.0f);
  freed.reset();
  EXPECT_EQ(ScopedCpuBlockCache::cached_bytes(), 5u * kMiB);
  ScopedCpuBlockCache::release();
  EXPECT_EQ(ScopedCpuBlockCache::cached_bytes(), 0u);
  EXPECT_EQ(ScopedCpuBlockCache::in_use_bytes(), 3u * kMiB);
  EXPECT_EQ(kept.max().item<float>(), 7.0f);
}

TEST(CpuBlockCacheTest, TensorsOutliveTheScopeAndLaterRequestsBypassIt) {
  at::Tensor survivor;
  {
    ScopedCpuBlockCache cache;
    survivor = floats(2 * kMiB);
    survivor.fill_(3.0f);
    floats(6 * kMiB);  // freed at once: cached, then unmapped when the scope ends
  }
  EXPECT_EQ(ScopedCpuBlockCache::cached_bytes(), 0u);
  EXPECT_EQ(ScopedCpuBlockCache::in_use_bytes(), 2u * kMiB);
  EXPECT_EQ(survivor.min().item<float>(), 3.0f);
  const at::Tensor after = floats(4 * kMiB);
  EXPECT_EQ(ScopedCpuBlockCache::in_use_bytes(), 2u * kMiB);  // not from the cache
  survivor.reset();
  EXPECT_EQ(ScopedCpuBlockCache::in_use_bytes(), 0u);
  EXPECT_EQ(ScopedCpuBlockCache::cached_bytes(), 0u);  // unmapped, not kept
}

TEST(CpuBlockCacheTest, ANestedScopeChangesNothing) {
  ScopedCpuBlockCache outer;
  {
    ScopedCpuBlockCache inner;
    EXPECT_FALSE(inner.active());
  }
  floats(2 * kMiB);
  EXPECT_EQ(ScopedCpuBlockCache::cached_bytes(), 2u * kMiB);  // the outer scope still caches
}

TEST(CpuBlockCacheTest, ThreadsAllocateAndFreeConcurrently) {
  ScopedCpuBlockCache cache;
  std::vector<std::thread> threads;
  std::vector<double> sums(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &sums] {
      for (int i = 0; i < 50; ++i) {
        at::Tensor x = at::full({(1 + (i + t) % 3) * kMiB / 4}, static_cast<float>(t + 1));
        sums[static_cast<std::size_t>(t)] += x.sum().item<double>() / static_cast<double>(x.numel());
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(sums[static_cast<std::size_t>(t)], 50.0 * (t + 1));
  EXPECT_EQ(ScopedCpuBlockCache::in_use_bytes(), 0u);
  // At most four buffers of each of the three sizes were ever alive at once.
  EXPECT_LE(ScopedCpuBlockCache::cached_bytes(), 4u * (1 + 2 + 3) * kMiB);
}

// The point of it: a loop over same-sized temporaries reuses one set of buffers, however
// many times it runs (here three 4 MB temporaries alive at once, 40 times).
TEST(CpuBlockCacheTest, ALoopOfTemporariesReusesOneSetOfBuffers) {
  ScopedCpuBlockCache cache;
  const at::Tensor x = at::randn({512, 2048});
  at::Tensor acc = at::zeros_like(x);
  std::set<const void*> buffers;
  for (int i = 0; i < 40; ++i) {
    const at::Tensor t = (x * static_cast<double>(i)).tanh() + x;
    buffers.insert(t.data_ptr());
    acc.add_(t);
  }
  EXPECT_LE(buffers.size(), 3u);
  EXPECT_LE(ScopedCpuBlockCache::cached_bytes(), 3u * 4 * kMiB);
  EXPECT_GT(acc.abs().sum().item<double>(), 0);
}

}  // namespace
}  // namespace qf::test
