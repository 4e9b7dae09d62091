// quantfork probe: FP32 / INT4 / INT8 perplexity, gaps and weight statistics of one
// checkpoint (method.md, "The probe"): a readable table on stdout, JSON with --json, an
// audit file holding the one row with --out.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/command.h"
#include "cli/probe_cli.h"
#include "core/errors.h"
#include "core/run_file.h"
#include "core/step_name.h"
#include "quant_probe/audit.h"
#include "quant_probe/gptq_config.h"
#include "quant_probe/probe_report.h"

namespace fs = std::filesystem;

namespace qf::cli {

namespace {

// A YAML single-quoted scalar: the value stays a string whatever it holds.
std::string yaml_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out || !(out << text) || !out.flush())
    throw IoError(errno_message("cannot write", path.string()));
}

}  // namespace

void add_probe_shortcut_options(ArgParser& parser) {
  parser.option("eval", "PREFIX", "indexed dataset of the evaluation set (probe.eval.dataset)")
      .option("device", "DEV", "cpu, cuda, cuda:1, ... (probe.device)");
}

std::vector<std::string> probe_shortcuts(const ArgParser& parser) {
  std::vector<std::string> out;
  if (parser.has("eval")) out.push_back("probe.eval.dataset=" + yaml_quoted(parser.get("eval")));
  if (parser.has("device")) out.push_back("probe.device=" + yaml_quoted(parser.get("device")));
  return out;
}

int run_probe(const std::vector<std::string>& args) {
  ArgParser parser(
      "probe", "--model DIR --eval PREFIX [--json FILE] [--out FILE.h5] [options]",
      "Probes one checkpoint: perplexity on the evaluation set in float32, with the "
      "selected weights quantized to INT4 (probe.int4_scheme, default int4_asym_g128) and to "
      "INT8 (probe.int8_scheme, default int8_sym_channel), the gaps in percent, and per "
      "quantized tensor its excess kurtosis, relative quantization errors, grid residual and "
      "share of outlier-set groups. Prints a table; --json writes the numbers as JSON "
      "('-': to stdout instead of the table); --out writes a quantfork.audit/3 file with "
      "this one row (and /tensors).");
  parser.option("model", "DIR", "Hugging Face GPT-NeoX checkpoint directory")
      .option("json", "FILE", "write the result as JSON ('-' for stdout)")
      .option("out", "FILE.h5", "write an audit file holding this probe (must not exist)")
      .option("step", "N", "the checkpoint's global step (default: from a stepN name, else 0)");
  add_probe_shortcut_options(parser);
  add_config_options(parser);
  if (!parser.parse(args)) return 0;
  ConfigSchema schema;
  quant::declare_probe_config(schema);
  Config cfg;
  if (!load_config(parser, schema, cfg, "", "", probe_shortcuts(parser))) return 0;
  const quant::ProbeOptions options = quant::probe_options(cfg);
  const fs::path dir = parser.get("model");
  std::int64_t step = step_in_name(dir, std::regex("step([0-9]+)")).value_or(0);
  if (parser.has("step")) {
    try {
      step = std::stoll(parser.get("step"));
    } catch (const std::exception&) {
      throw UsageError("quantfork probe: --step '" + parser.get("step") + "' is not an integer");
    }
  }
  if (parser.has("out") && fs::exists(parser.get("out"))) {
    throw UsageError("quantfork probe: --out '" + parser.get("out") +
                     "' exists; not overwriting it");
  }

  const at::Tensor windows =
      quant::windows_tensor(quant::load_eval_set(quant::eval_set_options(cfg)));
  const quant::ProbeResult result =
      quant::probe_checkpoint(dir, windows, options, quant::load_probe_calibration(cfg));

  const std::string json = quant::to_json(result, step).dump(1) + "\n";
  if (parser.has("json") && parser.get("json") == "-") {
    std::cout << json;
  } else {
    std::cout << quant::format_table(result);
    if (parser.has("json")) write_text(parser.get("json"), json);
  }
  if (parser.has("out")) {
    RunAttributes a;
    a.experiment = "probe";
    a.base_checkpoint = dir.string();
    a.start_step = step;
    AuditFile file = AuditFile::create(parser.get("out"), a, cfg.dump());
    AuditRow row;
    static_cast<ProbeRow&>(row) = quant::to_probe_row(result, step);
    file.append_audit(row);
    hdf5::Table tensors =
        hdf5::Table::create(file.file(), "tensors", quant::audit_tensors_schema());
    quant::append_tensor_rows(tensors, result, step);
    file.append_attribution(quant::to_attribution_rows(result, step));
    file.close();
  }
  return 0;
}

}  // namespace qf::cli
