#pragma once
// core's tensor files as libtorch tensors: dtype mapping, reading safetensors and
// torch.save files (`pytorch_model.bin`), writing safetensors.
#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace qf {

class SafetensorsFile;
class TorchSaveFile;

at::ScalarType to_scalar_type(DType dtype);
// Throws Error for a scalar type that files can't hold (complex, quantized, ...).
DType to_dtype(at::ScalarType type);

// One checkpoint file of either format, its tensors handed out as views into the file's
// read-only mapping: opening costs a header parse, reading a tensor costs nothing until
// its bytes are used. The format is told from the content (a zip archive is torch.save,
// anything else must be safetensors), not from the name.
class TensorFile {
 public:
  // Throws IoError / FormatError naming the path.
  static TensorFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  // Every tensor name, in the file's order (safetensors) or sorted (torch.save).
  std::vector<std::string> names() const;
  bool has(const std::string& name) const;
  DType dtype(const std::string& name) const;
  std::vector<std::int64_t> shape(const std::string& name) const;
  // A CPU tensor viewing the file's bytes. It keeps the mapping alive after this object
  // is gone, and it is READ-ONLY: writing into it faults. Copy (or .to()) before changing
  // it. Throws Error naming the file and the tensor when there is none by that name.
  at::Tensor view(const std::string& name) const;
  // Drops the named tensor's pages from resident memory once it has been copied out (see
  // MappedFile::release_pages); its views stay valid and read from the file again.
  void release_pages(const std::string& name) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<const SafetensorsFile> safetensors_;
  std::shared_ptr<const TorchSaveFile> torch_save_;
};

// Every tensor of a file (either format) as owned, contiguous, writable CPU tensors.
std::map<std::string, at::Tensor> load_tensors(const std::filesystem::path& path);

// Writes `tensors` as one safetensors file (atomically: temporary name, then rename).
// Tensors may live on any device, in any layout; they are copied to contiguous CPU memory
// first where needed. Throws Error naming the tensor for a dtype the format can't hold.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace qf
