#pragma once
// The --dtype option of the commands that load or write model weights: the floating
// types HF checkpoints hold, by their torch names.
#include <ATen/ATen.h>

#include <string>

#include "core/errors.h"

namespace qf::cli {

// float32, bfloat16 or float16; UsageError naming `command`, the value and what is
// expected (`other_choice`: a value the command handles itself, e.g. "input") otherwise.
inline at::ScalarType parse_weight_dtype(const std::string& command, const std::string& name,
                                         const std::string& other_choice = "") {
  if (name == "float32") return at::kFloat;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  throw UsageError(
      "quantfork " + command + ": --dtype '" + name + "': expected float32, " +
      (other_choice.empty() ? "bfloat16 or float16" : "bfloat16, float16 or " + other_choice));
}

}  // namespace qf::cli
