// quantfork logits: runs a GPT-NeoX checkpoint on token ids and writes the logits and the
// mean next-token loss (interfaces.md), the layout of the golden fixtures' reference files.
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/dtype_option.h"
#include "core/errors.h"
#include "core/torch/tensor_io.h"
#include "model/hf_checkpoint.h"

namespace qf::cli {
namespace {

// `[[id, ...], ...]`: a non-empty list of equally long, non-empty lists of integers.
at::Tensor read_ids(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(errno_message("cannot read token ids", path));
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": not valid JSON: " + e.what());
  }
  const auto bad = [&](const std::string& what) {
    return FormatError(path + ": " + what +
                       "; expected [[id, ...], ...] with rows of equal length");
  };
  if (!root.is_array() || root.empty()) throw bad("not a non-empty list of rows");
  const std::size_t rows = root.size(), cols = root[0].is_array() ? root[0].size() : 0;
  std::vector<std::int64_t> ids;
  ids.reserve(rows * cols);
  for (std::size_t r = 0; r < rows; ++r) {
    const auto& row = root[r];
    if (!row.is_array() || row.empty())
      throw bad("row " + std::to_string(r) + " is not a non-empty list");
    if (row.size() != cols) {
      throw bad("row " + std::to_string(r) + " has " + std::to_string(row.size()) +
                " ids, row 0 has " + std::to_string(cols));
    }
    for (std::size_t c = 0; c < cols; ++c) {
      if (!row[c].is_number_integer() ||
          (row[c].is_number_unsigned() && row[c].get<std::uint64_t>() > INT64_MAX)) {
        throw bad("[" + std::to_string(r) + "][" + std::to_string(c) + "] is " + row[c].dump() +
                  ", not a token id");
      }
      ids.push_back(row[c].get<std::int64_t>());
    }
  }
  return at::tensor(ids, at::kLong)
      .view({static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)});
}

}  // namespace

int run_logits(const std::vector<std::string>& args) {
  ArgParser parser(
      "logits",
      "--model DIR --ids FILE.json --out FILE.safetensors [--dtype float32] [--device cpu]",
      "Runs a GPT-NeoX model (a Hugging Face directory: config.json and "
      "model.safetensors, sharded safetensors or pytorch_model.bin) on token ids and "
      "writes `logits` (float32 [B, T, V]) and `loss` (float32 scalar: mean "
      "next-token cross-entropy) to a safetensors file.");
  parser.option("model", "DIR", "the model directory")
      .option("ids", "FILE.json", "token ids: [[id, ...], ...], rows of equal length")
      .option("out", "FILE.safetensors", "where to write logits and loss")
      .option("dtype", "TYPE", "compute in float32, bfloat16 or float16", "float32")
      .option("device", "DEVICE", "cpu, cuda, cuda:1, ...", "cpu");
  if (!parser.parse(args)) return 0;
  const at::ScalarType dtype = parse_weight_dtype("logits", parser.get("dtype"));
  const std::string device_name = parser.get("device");
  at::Device device = at::kCPU;
  try {
    device = at::Device(device_name);
  } catch (const c10::Error&) {
    throw UsageError("quantfork logits: --device '" + device_name + "' is not a device name");
  }
  const at::Tensor ids = read_ids(parser.get("ids"));
  if (ids.size(1) < 2)
    throw Error(parser.get("ids") + ": the loss needs rows of at least 2 tokens");

  model::LoadedModel loaded = model::load_hf_checkpoint(parser.get("model"), {dtype, device});
  loaded.model->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor logits = loaded.model->forward(ids.to(device)).to(at::kFloat);
  const at::Tensor loss = model::next_token_loss(logits, ids);
  save_safetensors(parser.get("out"), {{"logits", logits}, {"loss", loss}});
  return 0;
}

}  // namespace qf::cli
