#include "quant_probe/quantized_file.h"

#include <spdlog/spdlog.h>

#include "core/errors.h"
#include "core/torch/tensor_io.h"

namespace qf::quant {

namespace {

constexpr const char* kSuffixes[] = {".codes", ".scales", ".zeros", ".g_idx", ".perm"};

double relative_error(const at::Tensor& w, const at::Tensor& q) {
  const at::Tensor wd = w.to(at::kDouble);
  return (wd - q.to(at::kDouble)).norm().item<double>() / wd.norm().item<double>();
}

}  // namespace

std::size_t write_quantized_file(const std::filesystem::path& in, const std::filesystem::path& out,
                                 const std::regex& pattern, const TensorQuantizer& quantize,
                                 const std::map<std::string, std::string>& metadata) {
  const auto tensors = load_tensors(in);
  std::vector<std::pair<std::string, at::Tensor>> written;
  std::size_t quantized = 0;
  for (const auto& [name, t] : tensors) {
    if (!std::regex_match(name, pattern) || t.dim() != 2 || !at::isFloatingType(t.scalar_type())) {
      written.emplace_back(name, t);
      continue;
    }
    for (const char* suffix : kSuffixes) {
      if (tensors.count(name + suffix)) {
        throw Error(in.string() + ": holds both '" + name + "' and '" + name + suffix +
                    "'; quantizing the first would overwrite the second");
      }
    }
    const QuantizedTensor q = quantize(name, t);
    spdlog::info("{}: relative error {:.6g}", name, relative_error(t, q.dequantized));
    written.emplace_back(name, q.dequantized);
    written.emplace_back(name + ".codes", q.codes);
    written.emplace_back(name + ".scales", q.scales);
    written.emplace_back(name + ".zeros", q.zeros);
    if (q.g_idx.defined()) written.emplace_back(name + ".g_idx", q.g_idx);
    if (q.perm.defined()) written.emplace_back(name + ".perm", q.perm);
    ++quantized;
  }
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  save_safetensors(out, written, meta);
  return quantized;
}

}  // namespace qf::quant
