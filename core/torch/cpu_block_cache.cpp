#include "core/torch/cpu_block_cache.h"

#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

#include "core/torch/compat.h"

namespace qf {
namespace {

std::size_t mapped_length(std::size_t n) {
  static const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

// One process-wide instance, never destroyed: a tensor may die after main returns, and its
// deleter still finds the books here.
class BlockCache final : public torch_compat::CpuAllocator {
 public:
  static BlockCache& instance() {
    static auto* cache = new BlockCache();
    return *cache;
  }

  c10::DataPtr allocate_bytes(std::size_t n) const override {
    return instance().take(n);
  }
  c10::DeleterFnPtr raw_deleter() const override { return &give_back; }

  // Returns false (and changes nothing) when a scope is already open.
  bool open(std::size_t min_bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (open_) return false;
    open_ = true;
    min_bytes_ = min_bytes;
    fallback_ = c10::GetCPUAllocator();
    return true;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = false;
    unmap_free_locked();
  }
  c10::Allocator* fallback() const { return fallback_; }
  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    unmap_free_locked();
  }
  std::size_t cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    return free_bytes_;
  }
  std::size_t in_use() {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_bytes_;
  }

 private:
  c10::DataPtr take(std::size_t n) {
    c10::Allocator* fallback = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!open_ || n < min_bytes_) {
        fallback = fallback_;
      } else {
        void* p = nullptr;
        auto it = free_.find(n);
        if (it != free_.end()) {
          p = it->second;
          free_.erase(it);
          free_bytes_ -= n;
        } else {
          p = ::mmap(nullptr, mapped_length(n), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          if (p == MAP_FAILED) throw std::bad_alloc();
        }
        live_.emplace(p, n);
        live_bytes_ += n;
        return {p, p, &give_back, c10::Device(c10::DeviceType::CPU)};
      }
    }
    // Outside the lock: the fallback may call back into libtorch.
    return fallback->allocate(n);
  }

  static void give_back(void* p) {
    BlockCache& c = instance();
    std::lock_guard<std::mutex> lock(c.mutex_);
    auto it = c.live_.find(p);
    if (it == c.live_.end()) return;  // not ours: cannot happen, see raw_deleter's contract
    const std::size_t n = it->second;
    c.live_.erase(it);
    c.live_bytes_ -= n;
    if (c.open_) {
      c.free_.emplace(n, p);
      c.free_bytes_ += n;
    } else {
      ::munmap(p, mapped_length(n));
    }
  }

  void unmap_free_locked() {
    for (const auto& [n, p] : free_) ::munmap(p, mapped_length(n));
    free_.clear();
    free_bytes_ = 0;
  }

  std::mutex mutex_;
  bool open_ = false;
  std::size_t min_bytes_ = 0;
  c10::Allocator* fallback_ = nullptr;
  std::unordered_map<void*, std::size_t> live_;  // from this cache, in use: size
  std::multimap<std::size_t, void*> free_;       // waiting for reuse, by size
  std::size_t live_bytes_ = 0, free_bytes_ = 0;
};

// The priority libtorch registers its own CPU allocator with; an equal one replaces it.
constexpr std::uint8_t kPriority = 0;

}  // namespace

ScopedCpuBlockCache::ScopedCpuBlockCache(std::size_t min_bytes) {
  BlockCache& cache = BlockCache::instance();
  if (!cache.open(min_bytes)) return;
  c10::SetCPUAllocator(&cache, kPriority);
  active_ = c10::GetCPUAllocator() == &cache;
  if (!active_) cache.close();
}

ScopedCpuBlockCache::~ScopedCpuBlockCache() {
  if (!active_) return;
  BlockCache& cache = BlockCache::instance();
  c10::SetCPUAllocator(cache.fallback(), kPriority);
  cache.close();
}

void ScopedCpuBlockCache::release() {
  BlockCache::instance().release();
}

std::size_t ScopedCpuBlockCache::cached_bytes() {
  return BlockCache::instance().cached();
}

std::size_t ScopedCpuBlockCache::in_use_bytes() {
  return BlockCache::instance().in_use();
}

}  // namespace qf
