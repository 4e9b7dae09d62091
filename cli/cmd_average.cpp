// quantfork average: the uniform average (LAWA) of checkpoints of one model, written as an
// HF checkpoint (method.md, "Beyond the paper": weight averaging; model/checkpoint_average.h).
// Checkpoints are found and ordered as quantfork audit finds them, so the steps averaged
// are recorded in the output's metadata.
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "cli/dtype_option.h"
#include "core/errors.h"
#include "model/checkpoint_average.h"
#include "quant_probe/audit.h"

namespace fs = std::filesystem;

namespace qf::cli {

int run_average(const std::vector<std::string>& args) {
  ArgParser parser(
      "average", "--out DIR [--dtype float32|bfloat16|float16|input] CHECKPOINT_DIR_OR_GLOB...",
      "Writes the uniform average (LAWA) of the checkpoints as a new Hugging Face checkpoint "
      "DIR: each tensor the float64 mean of the inputs' tensors, rounded once to --dtype "
      "(default float32; input: the stored dtype of the first checkpoint). The checkpoints "
      "must be one model (the same config.json architecture); they are named stepN (or see "
      "--step-pattern) and the steps averaged are recorded in model.safetensors' metadata "
      "(quantfork.averaged_steps).");
  parser.option("out", "DIR", "the averaged checkpoint (must not exist)")
      .option("dtype", "TYPE", "float32, bfloat16, float16 or input", "float32")
      .option("step-pattern", "REGEX", "the step in a checkpoint's name (first group)",
              "step([0-9]+)")
      .positional("CHECKPOINT", "checkpoint directories or glob patterns ('run/step*')");
  if (!parser.parse(args)) return 0;
  const fs::path out = parser.get("out");
  if (fs::exists(out)) {
    throw UsageError("quantfork average: --out '" + out.string() +
                     "' exists; give a new directory (it is created, never overwritten)");
  }
  if (parser.positionals().empty()) {
    throw UsageError("quantfork average: no checkpoints given (see --help)");
  }
  // "input": the first input's stored dtype, known only once it is read.
  const bool as_input = parser.get("dtype") == "input";
  const at::ScalarType requested =
      as_input ? at::kFloat : parse_weight_dtype("average", parser.get("dtype"), "input");
  quant::AuditOptions find;
  find.step_pattern = parser.get("step-pattern");
  std::vector<model::AverageInput> inputs;
  for (const auto& c : quant::find_checkpoints(parser.positionals(), find)) {
    inputs.push_back({c.dir, c.step});
  }
  model::AveragedModel average = model::average_checkpoints(inputs);
  // float64 files are saved as float32: HF checkpoints here are float32, bf16 or f16.
  const at::ScalarType dtype = !as_input                            ? requested
                               : average.input_dtype == at::kDouble ? at::kFloat
                                                                    : average.input_dtype;
  model::save_averaged_checkpoint(average, out, dtype);
  std::cout << "averaged " << inputs.size() << " checkpoint(s), steps "
            << inputs.front().step.value() << " to " << inputs.back().step.value() << " -> "
            << out.string() << " (" << c10::toString(dtype) << ")\n";
  return 0;
}

}  // namespace qf::cli
