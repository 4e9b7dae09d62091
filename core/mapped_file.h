#pragma once
// A whole file mapped read-only into memory. Checkpoint readers hand out views into the
// mapping instead of reading multi-GB files into buffers; the mapping must outlive them.
#include <cstddef>
#include <filesystem>

namespace qf {

class MappedFile {
 public:
  // Throws IoError naming the path when it can't be opened, is not a regular file or can't
  // be mapped. An empty file maps to size() == 0 and data() == nullptr.
  static MappedFile open(const std::filesystem::path& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::filesystem::path& path() const { return path_; }
  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }

  // Drops the pages under [begin, begin + bytes), a range inside this mapping, from the
  // process's resident memory (rounded out to whole pages); reading them again faults them
  // back in from the file, so the bytes stay valid. Readers that copy a tensor out of the
  // file call it so that the copy and the mapping don't both stay resident.
  void release_pages(const void* begin, std::size_t bytes) const noexcept;

 private:
  MappedFile(std::filesystem::path path, const std::byte* data, std::size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  void release() noexcept;

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace qf
