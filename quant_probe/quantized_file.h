#pragma once
// The quantized safetensors file `quantfork quantize` writes (docs/formats.md): every
// quantized tensor NAME becomes NAME (dequantized, float32), NAME.codes, NAME.scales and
// NAME.zeros (float32 [rows, groups]), plus NAME.g_idx (int32 [cols], the group of each
// column) and, with act-order, NAME.perm (int32, the processing order) when the
// quantizer was GPTQ; every other tensor is copied as it is.
#include <ATen/ATen.h>

#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <string>

namespace qf::quant {

struct QuantizedTensor {
  at::Tensor dequantized, codes, scales, zeros;
  at::Tensor g_idx, perm;  // undefined when the quantizer has none
};

using TensorQuantizer =
    std::function<QuantizedTensor(const std::string& name, const at::Tensor& weight)>;

// Quantizes the floating 2-D tensors of `in` whose names match `pattern` with `quantize`
// and writes `out` with `metadata` (beside {"format": "pt"}). Error naming the file when
// a NAME.codes (or another suffix) already exists beside NAME. Returns how many tensors
// were quantized.
std::size_t write_quantized_file(const std::filesystem::path& in, const std::filesystem::path& out,
                                 const std::regex& pattern, const TensorQuantizer& quantize,
                                 const std::map<std::string, std::string>& metadata);

}  // namespace qf::quant
