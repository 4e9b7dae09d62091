#pragma once
// Large CPU tensor buffers kept for reuse by exact size while a scope lives. A loop that
// runs the same layer on batch after batch allocates and frees the same few buffers of a
// few to a few tens of MB each time. glibc serves those from its heap (its mmap threshold
// rises to 32 MB as they come and go) and fragments it: for the probe of Pythia-160m about
// 100 MB of freed memory stays resident next to the live tensors, and handing it back
// (malloc_trim, a fixed mmap threshold) makes every buffer fault its pages in again, which
// costs 10-40% of the evaluation's time. Here a freed buffer of N bytes waits, mapped and
// resident, for the next request of N bytes: after the first batch nothing is faulted in
// and nothing fragments, and the memory held is the largest set of buffers alive at once.
//
// While a ScopedCpuBlockCache lives, libtorch's CPU allocator (c10::GetCPUAllocator) is
// this cache for requests of at least `min_bytes`; smaller ones, and everything after the
// scope, go to the allocator that was there before. Buffers still alive when the scope
// ends are unmapped when their tensors die. One scope at a time: a nested one does
// nothing. Scopes are opened and closed by one thread; tensors may be allocated and freed
// by any thread while one is open.
#include <cstddef>

namespace qf {

class ScopedCpuBlockCache {
 public:
  explicit ScopedCpuBlockCache(std::size_t min_bytes = std::size_t{1} << 20);
  ~ScopedCpuBlockCache();
  ScopedCpuBlockCache(const ScopedCpuBlockCache&) = delete;
  ScopedCpuBlockCache& operator=(const ScopedCpuBlockCache&) = delete;

  // False when this scope is nested in another, or libtorch kept a higher-priority
  // allocator: then allocations go on as before.
  bool active() const { return active_; }
  // Unmaps the buffers waiting for reuse (not those in use), e.g. between two phases
  // whose buffer sizes differ; whichever scope is open. Nothing when none is.
  static void release();

  // Bytes of buffers waiting for reuse, and of buffers from the cache in use.
  static std::size_t cached_bytes();
  static std::size_t in_use_bytes();

 private:
  bool active_ = false;
};

}  // namespace qf
