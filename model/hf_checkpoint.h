#pragma once
// Hugging Face model directories for GPT-NeoX: `config.json` plus the weights as
// `model.safetensors`, sharded safetensors (`model.safetensors.index.json`),
// `pytorch_model.bin` (torch.save) or sharded .bin (`pytorch_model.bin.index.json`), in
// that order of preference, as transformers picks them. Saving writes `config.json` +
// `model.safetensors` with HF's names, which transformers loads unchanged.
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/gpt_neox.h"

namespace qf::model {

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;  // weights are converted to this on load
  at::Device device = at::kCPU;
};

struct LoadedModel {
  GptNeoXForCausalLM model{nullptr};
  std::vector<std::filesystem::path> weight_files;
  // Tensors in the files that the model doesn't have, other than the legacy buffers
  // every old Pythia file carries (skipped silently). Each was also logged as a warning.
  std::vector<std::string> unknown_tensors;
};

// Throws ConfigError for a bad config.json, Error when the directory, config.json or the
// weights are missing, and FormatError / Error naming the tensor and the file for a
// missing tensor, a wrong shape or a non-floating dtype.
LoadedModel load_hf_checkpoint(const std::filesystem::path& dir, const LoadOptions& options = {});

// Writes `dir` (created if absent) with config.json and model.safetensors in `dtype`
// (default: the model's), HF key names, metadata {"format": "pt"} plus `metadata` (what
// made the weights, e.g. an average's inputs). A new directory is
// written under a temporary name and renamed into place; an existing one has its files
// swapped atomically in turn (weights first), so a crash never leaves a half-written file.
void save_hf_checkpoint(GptNeoXForCausalLM& model, const std::filesystem::path& dir,
                        std::optional<at::ScalarType> dtype = std::nullopt,
                        const std::map<std::string, std::string>& metadata = {});

// True for the buffers old transformers versions saved with Pythia (the causal mask
// attention.bias, attention.masked_bias, attention.rotary_emb.inv_freq): not weights.
bool is_legacy_buffer(const std::string& name);

}  // namespace qf::model
