#include "model/hf_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/logging.h"
#include "core/torch/tensor_io.h"

namespace fs = std::filesystem;

namespace qf::model {
namespace {

// transformers' own file names, in the order it looks for them.
constexpr const char* kSafetensors = "model.safetensors";
constexpr const char* kSafetensorsIndex = "model.safetensors.index.json";
constexpr const char* kTorchSave = "pytorch_model.bin";
constexpr const char* kTorchSaveIndex = "pytorch_model.bin.index.json";

// Every weight file of a checkpoint and which one holds each tensor.
struct Weights {
  fs::path described_by;  // the single file or the index, for messages
  std::vector<TensorFile> files;
  std::map<std::string, std::size_t> file_of;
};

std::string shape_text(at::IntArrayRef shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void add_file(Weights& w, const fs::path& path) {
  w.files.push_back(TensorFile::open(path));
  for (const auto& name : w.files.back().names()) w.file_of.emplace(name, w.files.size() - 1);
}

// A sharded checkpoint: {"weight_map": {"tensor name": "shard file name", ...}}. Shards
// are loaded whole, as transformers does; the map must agree with their contents.
Weights read_index(const fs::path& index) {
  std::ifstream in(index, std::ios::binary);
  if (!in) throw IoError(errno_message("cannot read", index.string()));
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(index.string() + ": not valid JSON: " + e.what());
  }
  if (!root.is_object() || !root.contains("weight_map") || !root["weight_map"].is_object()) {
    throw FormatError(index.string() + ": expected an object with a \"weight_map\" object");
  }
  Weights w{index, {}, {}};
  std::map<std::string, std::size_t> shard_index;
  for (const auto& [name, shard] : root["weight_map"].items()) {
    const std::string file = shard.is_string() ? shard.get<std::string>() : "";
    // Shard names are plain file names beside the index; anything else could point
    // outside the checkpoint.
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
      throw FormatError(index.string() + ": tensor '" + name + "' maps to " + shard.dump() +
                        ", expected a file name in the same directory");
    }
    if (!shard_index.count(file)) {
      add_file(w, index.parent_path() / file);
      shard_index.emplace(file, w.files.size() - 1);
    }
    if (!w.files[shard_index[file]].has(name)) {
      throw FormatError(index.string() + ": lists tensor '" + name + "' in " + file +
                        ", which has no such tensor");
    }
  }
  return w;
}

Weights open_weights(const fs::path& dir) {
  if (fs::exists(dir / kSafetensors)) {
    Weights w{dir / kSafetensors, {}, {}};
    add_file(w, dir / kSafetensors);
    return w;
  }
  if (fs::exists(dir / kSafetensorsIndex)) return read_index(dir / kSafetensorsIndex);
  if (fs::exists(dir / kTorchSave)) {
    Weights w{dir / kTorchSave, {}, {}};
    add_file(w, dir / kTorchSave);
    return w;
  }
  if (fs::exists(dir / kTorchSaveIndex)) return read_index(dir / kTorchSaveIndex);
  throw Error(dir.string() + ": no model weights: expected " + kSafetensors + ", " +
              kSafetensorsIndex + ", " + kTorchSave + " or " + kTorchSaveIndex);
}

bool is_floating(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

const char* hf_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    default:
      throw Error(std::string("cannot save a checkpoint as ") + c10::toString(t) +
                  " (float32, float16 or bfloat16)");
  }
}

}  // namespace

bool is_legacy_buffer(const std::string& name) {
  if (name.rfind("gpt_neox.layers.", 0) != 0) return false;
  for (const char* suffix :
       {".attention.bias", ".attention.masked_bias", ".attention.rotary_emb.inv_freq"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
      return true;
  }
  return false;
}

LoadedModel load_hf_checkpoint(const fs::path& dir, const LoadOptions& options) {
  if (!fs::is_directory(dir)) throw Error("model directory '" + dir.string() + "' does not exist");
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path)) {
    throw Error(dir.string() + ": no config.json (the Hugging Face model configuration)");
  }
  const GptNeoXConfig config = GptNeoXConfig::load(config_path);
  const Weights weights = open_weights(dir);

  LoadedModel out;
  out.model = GptNeoXForCausalLM(config);
  out.model->to(options.device, options.dtype);
  for (const auto& f : weights.files) out.weight_files.push_back(f.path());
  std::set<std::string> expected;
  torch::NoGradGuard no_grad;
  for (auto& item : out.model->named_parameters()) {
    const std::string& name = item.key();
    at::Tensor& param = item.value();
    expected.insert(name);
    auto it = weights.file_of.find(name);
    if (it == weights.file_of.end()) {
      throw FormatError(weights.described_by.string() + ": missing tensor '" + name + "' (shape " +
                        shape_text(param.sizes()) + ")");
    }
    const TensorFile& file = weights.files[it->second];
    const auto shape = file.shape(name);
    if (at::IntArrayRef(shape) != param.sizes()) {
      throw FormatError(file.path().string() + ": tensor '" + name + "' has shape " +
                        shape_text(shape) + ", expected " + shape_text(param.sizes()) +
                        " for this config.json");
    }
    if (!is_floating(file.dtype(name))) {
      throw FormatError(file.path().string() + ": tensor '" + name + "' has dtype " +
                        dtype_name(file.dtype(name)) + ", expected F32, F16, BF16 or F64");
    }
    param.copy_(file.view(name));
    file.release_pages(name);  // else the file's pages stay resident next to the weights
  }
  for (const auto& [name, index] : weights.file_of) {
    if (expected.count(name) || is_legacy_buffer(name)) continue;
    spdlog::warn("{}: ignoring tensor '{}', which GPT-NeoX does not have",
                 weights.files[index].path().string(), name);
    out.unknown_tensors.push_back(name);
  }
  return out;
}

void save_hf_checkpoint(GptNeoXForCausalLM& model, const fs::path& dir,
                        std::optional<at::ScalarType> dtype,
                        const std::map<std::string, std::string>& extra_metadata) {
  const at::ScalarType type = dtype.value_or(model->dtype());
  GptNeoXConfig config = model->config();
  config.torch_dtype = hf_dtype_name(type);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : model->named_parameters()) {
    tensors.emplace_back(item.key(), item.value().detach().to(at::kCPU, type));
  }
  std::map<std::string, std::string> metadata = extra_metadata;
  metadata["format"] = "pt";
  if (fs::exists(dir)) {
    save_safetensors(dir / kSafetensors, tensors, metadata);
    write_text_atomically(dir / "config.json", config.to_json_text());
    return;
  }
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  const fs::path tmp = parent / (dir.filename().string() + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    save_safetensors(tmp / kSafetensors, tensors, metadata);
    write_text_atomically(tmp / "config.json", config.to_json_text());
    fs::rename(tmp, dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  sync_directory(parent);
}

}  // namespace qf::model
