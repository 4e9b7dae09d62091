#pragma once
// The files `quantfork quantize` writes (docs/formats.md). A quantized safetensors file:
// every quantized tensor NAME becomes NAME (dequantized, float32), NAME.codes,
// NAME.scales and NAME.zeros (float32 [rows, groups]), plus NAME.g_idx (int32 [cols], the
// group of each column) and, with act-order, NAME.perm (int32, the processing order) when
// the quantizer was GPTQ; every other tensor is copied as it is. A quantized checkpoint:
// the Hugging Face checkpoint with its matching weights fake-quantized (float32), and
// with GPTQ also quantization.safetensors holding each weight's codes and grids.
#include <ATen/ATen.h>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <string>

#include "data/token_rows.h"
#include "quant_probe/gptq.h"
#include "quant_probe/quant_scheme.h"

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

// FILE -> FILE: by round to nearest, or by GPTQ with each tensor's Hessian H = 2/n sum
// X^T X read from the safetensors file `hessians` under the tensor's name (UsageError
// naming a tensor it lacks). `metadata` records the scheme and the method.
std::size_t quantize_safetensors_file(const std::filesystem::path& in,
                                      const std::filesystem::path& out, const QuantScheme& scheme,
                                      const std::regex& pattern,
                                      const std::optional<GptqOptions>& gptq,
                                      const std::optional<std::filesystem::path>& hessians);

// DIR -> DIR: the weights of the HF checkpoint `in` whose names match `pattern` (2-D)
// fake-quantized and saved in float32 (a float16 copy would round them off the grid
// again). GPTQ calibrates the model layer by layer on `calibration` (required with it).
// UsageError when nothing matches.
std::size_t quantize_hf_checkpoint(const std::filesystem::path& in,
                                   const std::filesystem::path& out, const QuantScheme& scheme,
                                   const std::string& pattern,
                                   const std::optional<GptqOptions>& gptq,
                                   const data::TokenRows* calibration);

}  // namespace qf::quant
