#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "core/errors.h"

namespace qf {

MappedFile MappedFile::open(const std::filesystem::path& path) {
  const std::string p = path.string();
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(errno_message("cannot open", p));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const std::string msg = errno_message("cannot stat", p);
    ::close(fd);
    throw IoError(msg);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError("cannot read '" + p + "': not a regular file");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* addr = nullptr;
  if (size > 0) {
    addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  // The mapping keeps its own reference to the file: the descriptor is not needed after.
  const std::string map_error = addr == MAP_FAILED ? errno_message("cannot map", p) : "";
  ::close(fd);
  if (addr == MAP_FAILED) throw IoError(map_error);
  return MappedFile(path, static_cast<const std::byte*>(addr), size);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  release();
}

void MappedFile::release_pages(const void* begin, std::size_t bytes) const noexcept {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto lo = std::max(reinterpret_cast<std::uintptr_t>(begin),
                           reinterpret_cast<std::uintptr_t>(data_));
  const auto hi = std::min(reinterpret_cast<std::uintptr_t>(begin) + bytes,
                           reinterpret_cast<std::uintptr_t>(data_) + size_);
  if (!data_ || lo >= hi) return;
  const std::uintptr_t first = lo / page * page, last = (hi + page - 1) / page * page;
  // Advice only: a failure leaves the pages resident, which is what not calling does.
  ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void MappedFile::release() noexcept {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace qf
