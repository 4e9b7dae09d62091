#include "core/torch/tensor_io.h"

#include <algorithm>
#include <cstring>

#include "core/errors.h"
#include "core/safetensors.h"
#include "core/torch_save_file.h"

namespace qf {

namespace {

struct DTypePair {
  DType dtype;
  at::ScalarType type;
};
constexpr DTypePair kDTypes[] = {{DType::BOOL, at::kBool},  {DType::U8, at::kByte},
                                 {DType::I8, at::kChar},    {DType::I16, at::kShort},
                                 {DType::F16, at::kHalf},   {DType::BF16, at::kBFloat16},
                                 {DType::I32, at::kInt},    {DType::F32, at::kFloat},
                                 {DType::F64, at::kDouble}, {DType::I64, at::kLong}};

[[noreturn]] void no_such_tensor(const std::filesystem::path& path, const std::string& name) {
  throw Error(path.string() + ": no tensor named '" + name + "'");
}

// A tensor over bytes that `owner` keeps alive. The mapping is read-only, which libtorch
// can't express; the const_cast is the documented contract of TensorFile::view.
at::Tensor wrap(const std::byte* data, DType dtype, at::IntArrayRef sizes, at::IntArrayRef strides,
                std::int64_t offset, std::shared_ptr<const void> owner) {
  const auto options = at::TensorOptions().dtype(to_scalar_type(dtype)).device(at::kCPU);
  auto* base = const_cast<std::byte*>(data) + offset * static_cast<std::int64_t>(dtype_size(dtype));
  // Data from unknown writers may be misaligned for its element type, which vectorized
  // kernels don't allow: such a tensor gets its own aligned copy instead.
  if (reinterpret_cast<std::uintptr_t>(base) % dtype_size(dtype) != 0) {
    return at::from_blob(base, sizes, strides, options).clone(at::MemoryFormat::Contiguous);
  }
  return at::from_blob(
      base, sizes, strides, [owner](void*) {}, options);
}

at::IntArrayRef dims(const std::vector<std::int64_t>& v) {
  return at::IntArrayRef(v);
}

std::vector<std::int64_t> contiguous_strides(const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (std::size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

bool is_zip(const std::filesystem::path& path) {
  // The first local header's signature "PK\3\4"; read without mapping the whole file.
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw IoError(errno_message("cannot open", path.string()));
  char magic[4] = {};
  const std::size_t n = std::fread(magic, 1, sizeof magic, f);
  std::fclose(f);
  return n == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0;
}

}  // namespace

at::ScalarType to_scalar_type(DType dtype) {
  for (const auto& p : kDTypes) {
    if (p.dtype == dtype) return p.type;
  }
  throw Error(std::string("no libtorch type for dtype ") + dtype_name(dtype));
}

DType to_dtype(at::ScalarType type) {
  for (const auto& p : kDTypes) {
    if (p.type == type) return p.dtype;
  }
  throw Error(std::string("tensor files can't hold libtorch type ") + c10::toString(type));
}

TensorFile TensorFile::open(const std::filesystem::path& path) {
  TensorFile f;
  f.path_ = path;
  if (is_zip(path)) {
    f.torch_save_ = std::make_shared<const TorchSaveFile>(TorchSaveFile::open(path));
  } else {
    f.safetensors_ = std::make_shared<const SafetensorsFile>(SafetensorsFile::open(path));
  }
  return f;
}

std::vector<std::string> TensorFile::names() const {
  if (safetensors_) return safetensors_->names();
  std::vector<std::string> out;
  for (const auto& [name, t] : torch_save_->tensors()) out.push_back(name);
  return out;
}

bool TensorFile::has(const std::string& name) const {
  return safetensors_ ? safetensors_->has(name) : torch_save_->tensors().count(name) != 0;
}

DType TensorFile::dtype(const std::string& name) const {
  if (safetensors_) return safetensors_->info(name).dtype;
  auto it = torch_save_->tensors().find(name);
  if (it == torch_save_->tensors().end()) no_such_tensor(path_, name);
  return it->second.dtype;
}

std::vector<std::int64_t> TensorFile::shape(const std::string& name) const {
  if (safetensors_) return safetensors_->info(name).shape;
  auto it = torch_save_->tensors().find(name);
  if (it == torch_save_->tensors().end()) no_such_tensor(path_, name);
  return it->second.shape;
}

at::Tensor TensorFile::view(const std::string& name) const {
  if (safetensors_) {
    const TensorView v = safetensors_->info(name);
    return wrap(v.data, v.dtype, dims(v.shape), dims(contiguous_strides(v.shape)), 0, safetensors_);
  }
  auto it = torch_save_->tensors().find(name);
  if (it == torch_save_->tensors().end()) no_such_tensor(path_, name);
  const TorchSaveTensor& t = it->second;
  return wrap(t.storage, t.dtype, dims(t.shape), dims(t.strides), t.storage_offset, torch_save_);
}

void TensorFile::release_pages(const std::string& name) const {
  const at::Tensor v = view(name);
  std::int64_t extent = 1;  // elements from the first to one past the last, strides >= 0
  for (std::int64_t d = 0; d < v.dim(); ++d) {
    if (v.size(d) == 0) return;
    extent += (v.size(d) - 1) * v.stride(d);
  }
  const MappedFile& map = safetensors_ ? safetensors_->mapping() : torch_save_->mapping();
  map.release_pages(v.data_ptr(), static_cast<std::size_t>(extent) * v.element_size());
}

std::map<std::string, at::Tensor> load_tensors(const std::filesystem::path& path) {
  const TensorFile file = TensorFile::open(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& name : file.names()) {
    out.emplace(name, file.view(name).clone(at::MemoryFormat::Contiguous));
  }
  return out;
}

void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter writer;
  // The writer keeps pointers, not copies: the CPU tensors must live until write().
  std::vector<at::Tensor> keep;
  keep.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    DType dtype;
    try {
      dtype = to_dtype(tensor.scalar_type());
    } catch (const Error& e) {
      throw Error(path.string() + ": tensor '" + name + "': " + e.what());
    }
    keep.push_back(tensor.detach().to(at::kCPU).contiguous());
    const at::Tensor& t = keep.back();
    writer.add(name, dtype, t.sizes().vec(), t.data_ptr(), t.nbytes());
  }
  for (const auto& [key, value] : metadata) writer.set_metadata(key, value);
  writer.write(path);
}

}  // namespace qf
