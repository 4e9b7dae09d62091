#pragma once
// Files written by PyTorch's torch.save (>= 1.6: a zip archive holding data.pkl and one
// member per storage), the format of Hugging Face `pytorch_model.bin`. Only state dicts
// are read: a dict (OrderedDict or plain) from names to tensors. The pickle is read by a
// restricted interpreter that knows the handful of callables torch.save emits for that
// (OrderedDict, _rebuild_tensor_v2, _rebuild_parameter, the typed storages) and refuses
// any other, so a hostile file can't run code, unlike Python's own torch.load.
//
// libtorch's torch::pickle_load is not used: in 1.13 it fails on every OrderedDict state
// dict (pytorch/pytorch#100741) and on single-entry dicts (#67902).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace qf {

// One tensor of a state dict: a strided view into a storage's bytes. Several tensors may
// share a storage (tied or sliced weights). Offsets and strides count elements.
struct TorchSaveTensor {
  DType dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;
  std::int64_t storage_offset;
  const std::byte* storage;
  std::size_t storage_nbytes;
};

// Parses a whole torch.save archive held in memory; the returned views point into `data`.
// Every index the views imply is checked to lie inside its storage. Throws FormatError
// naming `source` and the problem (not a zip, legacy pre-1.6 format, not a state dict, an
// unsupported pickle opcode or callable, a tensor outside its storage). Pure: the fuzz
// target calls it directly.
std::map<std::string, TorchSaveTensor> parse_torch_save(const std::byte* data, std::size_t size,
                                                        const std::string& source);

// A torch.save file mapped into memory with its state dict parsed.
class TorchSaveFile {
 public:
  static TorchSaveFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  const std::map<std::string, TorchSaveTensor>& tensors() const { return tensors_; }
  const MappedFile& mapping() const { return file_; }

 private:
  TorchSaveFile(MappedFile file, std::map<std::string, TorchSaveTensor> tensors)
      : file_(std::move(file)), tensors_(std::move(tensors)) {}
  MappedFile file_;
  std::map<std::string, TorchSaveTensor> tensors_;
};

}  // namespace qf
