#pragma once
// Safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON describing each tensor (dtype, shape, byte offsets into
// the data section) plus an optional "__metadata__" object of strings, then the data
// section. Raw bytes + dtype + shape only: the torch bridge lives elsewhere.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace qf {

// The format is little-endian, and the reader hands out the mapped bytes as they are and
// the writer writes the caller's bytes as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; a big-endian host would need byte swapping");

// The reference library refuses larger headers; so do we, before parsing anything.
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// One tensor as the header describes it; offsets are relative to the data section.
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin;
  std::uint64_t end;
};

struct SafetensorsHeader {
  // Sorted by data offset (ties, which only zero-byte tensors can have, by name).
  std::vector<SafetensorsEntry> tensors;
  std::map<std::string, std::string> metadata;
};

// Parses and validates a header against a data section of `data_size` bytes: every rule
// of the format (types, dtypes, shapes matching byte sizes, tensors covering the data
// section exactly, without overlap, gap or leftover) is checked here, so anything it
// returns can be indexed without further checks. Trailing spaces (the writers' padding)
// are accepted. Throws FormatError naming `source_name` and the problem. Pure: no file,
// so the fuzz target calls it directly.
SafetensorsHeader parse_safetensors_header(std::string_view header_json, std::uint64_t data_size,
                                           const std::string& source_name);

// A tensor's bytes inside a mapped file, valid while the SafetensorsFile lives. Native
// byte order is little-endian (checked at compile time), so the bytes can be read as the
// element type directly; `data` is aligned to the element size whenever the header length
// is a multiple of 8 (as every writer pads it), which callers may want to check for files
// from unknown writers.
struct TensorView {
  DType dtype;
  std::vector<std::int64_t> shape;
  const std::byte* data;
  std::size_t nbytes;
};

// A safetensors file mapped read-only into memory; tensors are views into the mapping, so
// opening a multi-GB checkpoint costs one header parse. The file must not be truncated by
// someone else while open (the kernel would kill us with SIGBUS on access).
class SafetensorsFile {
 public:
  // Throws IoError when the file can't be opened or mapped, FormatError when it is not a
  // well-formed safetensors file.
  static SafetensorsFile open(const std::filesystem::path& path);

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;

  const std::filesystem::path& path() const { return map_.path(); }
  // In order of data offset, i.e. the order the tensors lie in the file.
  std::vector<std::string> names() const;
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // Throws Error naming the file, the tensor and some of the names that do exist.
  TensorView info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const MappedFile& mapping() const { return map_; }

 private:
  SafetensorsFile(MappedFile map, std::size_t data_start, SafetensorsHeader header);

  MappedFile map_;
  std::size_t data_start_;  // where the data section begins in the mapping: 8 + header length
  SafetensorsHeader header_;
  std::unordered_map<std::string, std::size_t> index_;  // name -> header_.tensors index
};

// Collects tensors and writes them as one safetensors file, byte for byte as the reference
// Python/Rust library would: JSON header with "__metadata__" first (its keys sorted, where
// the reference's order is arbitrary), then the tensors by descending alignment and then
// name, in the header and in the data section alike, so each starts aligned to its element
// size; the header is padded with spaces to a multiple of 8 bytes.
//
// The writer does not copy tensor data: add() keeps the pointer, and the caller keeps the
// buffer alive and unchanged until write() has returned.
class SafetensorsWriter {
 public:
  // Throws Error when nbytes != product(shape) * dtype_size(dtype), a dimension is
  // negative, the name is empty, starts with "__" (reserved by the format), is not UTF-8
  // or was already added. `data` may be null when nbytes is 0.
  void add(const std::string& name, DType dtype, std::vector<std::int64_t> shape, const void* data,
           std::size_t nbytes);
  // Sets (or replaces) one "__metadata__" entry. Throws Error when not UTF-8.
  void set_metadata(const std::string& key, const std::string& value);
  // Writes `path + ".tmp.<pid>"`, fsyncs it and renames it over `path`, so a crash never
  // leaves a half-written file under the real name; on failure the temporary file is
  // removed. Throws IoError naming the path.
  void write(const std::filesystem::path& path) const;

 private:
  struct Pending {
    DType dtype;
    std::vector<std::int64_t> shape;
    const std::byte* data;
    std::size_t nbytes;
  };
  std::map<std::string, Pending> tensors_;  // by name: finds duplicates, orders ties
  std::map<std::string, std::string> metadata_;
};

}  // namespace qf
