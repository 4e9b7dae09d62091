#include "experiments/demo.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/run_file.h"
#include "core/subprocess.h"
#include "data/eval_set.h"
#include "data/indexed_dataset.h"
#include "data/indexed_dataset_writer.h"
#include "experiments/fork.h"
#include "experiments/report.h"
#include "experiments/sweep.h"
#include "model/gpt_neox_config.h"
#include "quant_probe/audit.h"
#include "quant_probe/probe.h"
#include "schedules/registry.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace qf::experiments {

void declare_demo_config(ConfigSchema& s) {
  s.optional("demo.out", FieldType::Path, "demo-out", "Folder the demo writes into.")
      .optional("demo.corpus", FieldType::Path, "/usr/share/games/fortunes",
                "Folder of fortune files (Debian's `fortunes` package): records separated "
                "by lines holding only %.")
      .optional("demo.pretrain_steps", FieldType::Int, "3000",
                "Updates of the pretraining run (pythia_cosine decays over all of them).")
      .at_least(1)
      .optional("demo.checkpoint_every", FieldType::Int, "100",
                "Pretraining checkpoints: 1, 2, 4, ..., 512 like Pythia's, then every N.")
      .at_least(1)
      .optional("demo.batch", FieldType::Int, "16", "Pretraining sequences per update.")
      .at_least(1)
      .optional("demo.seq_len", FieldType::Int, "128", "Tokens (bytes) per sequence.")
      .at_least(1)
      .optional("demo.max_lr", FieldType::Float, "2.0e-3",
                "Peak learning rate of the pretraining cosine (floor: a tenth of it).")
      .optional("demo.hidden_size", FieldType::Int, "128",
                "Model width (a multiple of 128, the INT4 probe's group size).")
      .optional("demo.layers", FieldType::Int, "2", "Transformer layers.")
      .at_least(1)
      .optional("demo.heads", FieldType::Int, "4", "Attention heads.")
      .at_least(1)
      .optional("demo.audit_min_step", FieldType::Int, "1000",
                "Phase detection fits checkpoints from this step on (method.md: 1000).")
      .optional("demo.lawa_k", FieldType::Int, "3",
                "The audit also probes the LAWA average of each checkpoint with the k - 1 "
                "before it (audit.lawa.k), shown beside the raw gap in the report; 0: off.")
      .optional("demo.eval_sequences", FieldType::Int, "64",
                "Validation windows of seq_len + 1 bytes for every probe.")
      .at_least(1)
      .optional("demo.fork_steps", FieldType::Int, "600", "Updates of every forked run.")
      .at_least(1)
      .optional("demo.fork_batch", FieldType::Int, "4", "Sequences per update in the forks.")
      .at_least(1)
      .optional("demo.probe_every", FieldType::Int, "100",
                "Fork probes every N updates, besides every arm's phase boundaries and "
                "settled points and the last update.")
      .at_least(1)
      .optional("demo.seeds", FieldType::IntList, "[1, 2, 3]", "Seeds of every arm.")
      .optional("demo.parallel", FieldType::Int, "2", "Forked runs at once.")
      .optional("demo.threads", FieldType::Int, "1",
                "CPU threads of every training process: a model this small gains little from "
                "more, and loses much when other work shares the cores.")
      .at_least(1);
}

namespace {

struct DemoSettings {
  fs::path out, corpus;
  int64_t pretrain_steps, checkpoint_every, batch, seq_len, hidden, layers, heads;
  int64_t audit_min_step, eval_sequences, fork_steps, fork_batch, probe_every, parallel;
  int64_t threads, lawa_k;
  double max_lr;
  std::vector<int64_t> seeds;
};

DemoSettings settings_of(const Config& c) {
  DemoSettings d;
  d.out = fs::absolute(c.get_path("demo.out"));
  d.corpus = c.get_path("demo.corpus");
  d.pretrain_steps = c.get_int("demo.pretrain_steps");
  d.checkpoint_every = c.get_int("demo.checkpoint_every");
  d.batch = c.get_int("demo.batch");
  d.seq_len = c.get_int("demo.seq_len");
  d.max_lr = c.get_float("demo.max_lr");
  d.hidden = c.get_int("demo.hidden_size");
  d.layers = c.get_int("demo.layers");
  d.heads = c.get_int("demo.heads");
  d.audit_min_step = c.get_int("demo.audit_min_step");
  d.eval_sequences = c.get_int("demo.eval_sequences");
  d.fork_steps = c.get_int("demo.fork_steps");
  d.fork_batch = c.get_int("demo.fork_batch");
  d.probe_every = c.get_int("demo.probe_every");
  d.parallel = std::max<int64_t>(1, c.get_int("demo.parallel"));
  d.seeds = c.get_int_list("demo.seeds");
  d.threads = c.get_int("demo.threads");
  d.lawa_k = c.get_int("demo.lawa_k");
  if (d.lawa_k != 0 && d.lawa_k < 2) {
    throw ConfigError("config " + c.where("demo.lawa_k") +
                      ": expected 0 (off) or at least 2 checkpoints");
  }
  if (d.hidden < 128 || d.hidden % 128 != 0 || d.hidden % d.heads != 0) {
    throw ConfigError("config " + c.where("demo.hidden_size") +
                      ": must be a multiple of 128 (the INT4 group size) and of demo.heads");
  }
  if (d.seeds.empty()) throw ConfigError("config " + c.where("demo.seeds") + ": empty");
  return d;
}

// One document per fortune, its bytes as tokens, followed by EOD (0); every 20th
// document goes to the validation set.
void make_corpus(const fs::path& corpus, const fs::path& train, const fs::path& val) {
  if (!fs::is_directory(corpus)) {
    throw Error("the demo's corpus folder '" + corpus.string() +
                "' does not exist: install Debian's `fortunes` package (scripts/setup.sh does) "
                "or set demo.corpus to a folder of %-separated text files");
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(corpus)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.find('.') == std::string::npos) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  data::IndexedDatasetWriter tw(train, data::TokenDtype::kUInt16);
  data::IndexedDatasetWriter vw(val, data::TokenDtype::kUInt16);
  int64_t docs = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    std::string all = text.str();
    size_t start = 0;
    while (start < all.size()) {
      size_t end = all.find("\n%\n", start);
      if (end == std::string::npos) end = all.size();
      std::vector<int32_t> tokens;
      for (size_t i = start; i < end; ++i) {
        const auto b = static_cast<unsigned char>(all[i]);
        if (b != 0) tokens.push_back(b);
      }
      start = end + 3;
      if (tokens.size() < 8) continue;
      tokens.push_back(0);
      auto& w = (++docs % 20 == 0) ? vw : tw;
      w.add_item(tokens);
      w.end_document();
    }
  }
  tw.finalize();
  vw.finalize();
  spdlog::info("demo corpus: {} documents from {} files in {} ({} training tokens)", docs,
               files.size(), corpus.string(), tw.num_tokens());
}

void write_model_config(const DemoSettings& d, const fs::path& path) {
  std::ostringstream j;
  j << R"({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "hidden_size": )"
    << d.hidden << R"(, "intermediate_size": )" << 4 * d.hidden << R"(, "num_attention_heads": )"
    << d.heads << R"(, "num_hidden_layers": )" << d.layers
    << R"(, "vocab_size": 256, "max_position_embeddings": )" << std::max<int64_t>(256, d.seq_len)
    << R"(, "rotary_pct": 0.25, "rotary_emb_base": 10000, "layer_norm_eps": 1e-05, )"
    << R"("hidden_act": "gelu", "use_parallel_residual": true, "tie_word_embeddings": false, )"
    << R"("bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "float32"})"
    << "\n";
  write_text_atomically(path, j.str());
}

// A number as the shortest text that reads back as it ("0.0002", not 0.00020000000000000001).
YAML::Node number(double v) {
  return YAML::Node(shortest_number_text(v));
}

// A YAML mapping {k: v, ...} in the given order.
YAML::Node mapping(const std::vector<std::pair<std::string, YAML::Node>>& entries) {
  YAML::Node m(YAML::NodeType::Map);
  for (const auto& [k, v] : entries) m[k] = v;
  return m;
}

// The pretraining schedule; continued from the fork's base with the default offset.
YAML::Node cosine_block(const DemoSettings& d,
                        const YAML::Node& offset = YAML::Node("$base_step")) {
  return mapping({{"name", YAML::Node("pythia_cosine")},
                  {"max_lr", number(d.max_lr)},
                  {"min_lr", number(d.max_lr / 10)},
                  {"warmup_steps", YAML::Node(std::max<int64_t>(1, d.pretrain_steps / 100))},
                  {"decay_steps", YAML::Node(d.pretrain_steps)},
                  {"step_offset", offset}});
}

// Writes the config of one of the demo's stages: every value a layer of a ConfigLoader over
// the stage command's schema, so it is checked here (a ConfigError names the key) and
// written by the YAML emitter, which quotes what needs quoting (paths with spaces or
// colons).
void write_stage_config(const ConfigSchema& schema,
                        const std::vector<std::pair<std::string, YAML::Node>>& values,
                        const fs::path& path, const std::string& what) {
  ConfigLoader loader(schema);
  const Origin origin{"the demo's " + what, 0, path.parent_path()};
  for (const auto& [key, value] : values) loader.add_value(key, value, origin);
  write_text_atomically(path,
                        "# written by quantfork demo: " + what + "\n" + loader.resolve().dump());
}

void run_stage(const fs::path& program, const std::vector<std::string>& args,
               const std::string& what) {
  const int code = run_to_end(program, args);
  if (code != 0) {
    throw Error("demo: " + what + " failed (exit status " + std::to_string(code) +
                "); rerun the demo to go on from where it stopped");
  }
}

// The fork's base: the audit's pre-divergence checkpoint; else its FP32 convergence
// checkpoint when FP32 perplexity converged inside the trajectory; else the checkpoint
// two thirds of the way. The reason goes to the report.
std::pair<int64_t, std::string> choose_base(const fs::path& audit_path,
                                            const std::vector<int64_t>& steps, int64_t total) {
  AuditFile audit = AuditFile::open_read_only(audit_path.string());
  const auto lm = audit.landmarks();
  if (lm && lm->pre_divergence_step) {
    return {*lm->pre_divergence_step, "the audit's pre-divergence checkpoint"};
  }
  const bool converged = audit.file().int_attribute("converged_inside").value_or(0) == 1;
  if (lm && lm->fp32_convergence_step && converged) {
    return {*lm->fp32_convergence_step,
            "the FP32 convergence checkpoint: the audit found no divergence phase at this "
            "scale, so there is no pre-divergence checkpoint"};
  }
  int64_t pick = steps.front();
  for (int64_t s : steps) {
    if (s <= total * 2 / 3) pick = s;
  }
  return {pick,
          "the checkpoint two thirds of the way through pretraining: FP32 perplexity had not "
          "converged inside the trajectory and the audit found no divergence phase, so there "
          "is no pre-divergence checkpoint"};
}

// The pretraining run's config (pretrain.yaml); checkpoints at `at`.
void write_pretrain_config(const DemoSettings& d, const std::vector<int64_t>& at,
                           const fs::path& train_data) {
  YAML::Node at_steps(YAML::NodeType::Sequence);
  for (const int64_t s : at) at_steps.push_back(s);
  ConfigSchema train_schema;
  declare_run_config(train_schema);
  write_stage_config(train_schema,
                     {{"run.dir", YAML::Node((d.out / "pretrain").string())},
                      {"model.config", YAML::Node((d.out / "model/config.json").string())},
                      {"train.steps", YAML::Node(d.pretrain_steps)},
                      {"train.global_batch", YAML::Node(d.batch)},
                      {"train.seq_len", YAML::Node(d.seq_len)},
                      {"train.seed", YAML::Node(1234)},
                      {"train.threads", YAML::Node(d.threads)},
                      {"schedule", cosine_block(d, YAML::Node(0))},
                      {"data.dataset", YAML::Node(train_data.string())},
                      {"data.order", YAML::Node("seeded")},
                      {"checkpoint.at_steps", at_steps},
                      {"checkpoint.keep_last", YAML::Node(1)}},
                     d.out / "pretrain.yaml", "the pretraining run");
}

// The audit of the pretraining checkpoints at `at` into audit.h5, its phases printed.
void audit_pretraining(const Config& config, const DemoSettings& d, const std::vector<int64_t>& at,
                       const fs::path& val_data, const fs::path& audit_path) {
  std::vector<quant::AuditCheckpoint> checkpoints;
  for (int64_t s : at) {
    checkpoints.push_back({d.out / "pretrain/checkpoints" / ("step" + std::to_string(s)), s});
  }
  const at::Tensor windows = quant::windows_tensor(data::eval_set_from_dataset(
      data::IndexedDataset::open(val_data), d.eval_sequences, d.seq_len));
  quant::AuditOptions audit_options;
  audit_options.phases.min_step = d.audit_min_step;
  // LAWA beside the raw checkpoints: the report shows whether averaging the last few
  // checkpoints changes the INT4 gap along the trajectory.
  audit_options.lawa_k = d.lawa_k;
  const quant::AuditSummary audit = quant::run_audit(checkpoints, windows, quant::ProbeOptions{},
                                                     audit_options, audit_path, config);
  std::cerr << quant::format_phases(audit.phases);
}

// The fork experiment's config (fork.yaml): the four arms from `base_step`.
void write_fork_config(const DemoSettings& d, int64_t base_step, const fs::path& train_data,
                       const fs::path& val_data) {
  YAML::Node seeds(YAML::NodeType::Sequence);
  for (const int64_t s : d.seeds) seeds.push_back(s);
  const YAML::Node continuation = cosine_block(d);
  const YAML::Node oli = mapping({{"name", YAML::Node("oli")},
                                  {"envelope", YAML::Clone(continuation)},
                                  {"period", YAML::Node(std::max<int64_t>(2, d.fork_steps / 4))}});
  YAML::Node arms(YAML::NodeType::Sequence);
  arms.push_back(
      mapping({{"name", YAML::Node("cosine")}, {"schedule", YAML::Clone(continuation)}}));
  // SGDR restarts at the continuation's rate at the fork, as in the paper's setup.
  arms.push_back(
      mapping({{"name", YAML::Node("sgdr")},
               {"schedule", mapping({{"name", YAML::Node("sgdr")},
                                     {"max_lr", YAML::Node("$continuation_lr")},
                                     {"min_lr", number(d.max_lr / 10)},
                                     {"t0", YAML::Node(std::max<int64_t>(1, d.fork_steps / 8))},
                                     {"t_mult", YAML::Node(2)}})}}));
  arms.push_back(mapping({{"name", YAML::Node("oli")}, {"schedule", YAML::Clone(oli)}}));
  arms.push_back(mapping({{"name", YAML::Node("cosine_matched")},
                          {"schedule", mapping({{"name", YAML::Node("matched_mean")},
                                                {"schedule", YAML::Clone(continuation)},
                                                {"match", YAML::Clone(oli)}})}}));
  ConfigSchema experiment_schema;
  declare_experiment_config(experiment_schema);
  write_stage_config(
      experiment_schema,
      {{"experiment.name", YAML::Node("fork")},
       {"experiment.out", YAML::Node(d.out.string())},
       {"experiment.base",
        YAML::Node(
            (d.out / "pretrain/checkpoints" / ("step" + std::to_string(base_step))).string())},
       {"experiment.base_step", YAML::Node(base_step)},
       {"experiment.seeds", seeds},
       {"experiment.parallel", YAML::Node(d.parallel)},
       {"experiment.threads_per_run", YAML::Node(d.threads)},
       // The miniature trains ~100 epochs over its corpus: every window has been seen, so
       // the fork samples the whole corpus (Pythia's forks read unseen items instead).
       {"experiment.data_start_item", YAML::Node(0)},
       {"experiment.continuation", continuation},
       {"experiment.arms", arms},
       {"train.steps", YAML::Node(d.fork_steps)},
       {"train.global_batch", YAML::Node(d.fork_batch)},
       {"train.seq_len", YAML::Node(d.seq_len)},
       {"data.dataset", YAML::Node(train_data.string())},
       {"data.order", YAML::Node("seeded")},
       {"checkpoint.keep_last", YAML::Node(1)},
       {"probe.enabled", YAML::Node(true)},
       {"probe.every", YAML::Node(d.probe_every)},
       {"probe.eval.dataset", YAML::Node(val_data.string())},
       {"probe.eval.sequences", YAML::Node(d.eval_sequences)},
       {"probe.eval.seq_len", YAML::Node(d.seq_len)}},
      d.out / "fork.yaml", "the fork experiment (quantfork experiment --config)");
}

}  // namespace

std::pair<fs::path, fs::path> make_demo_corpus(const Config& config) {
  const DemoSettings d = settings_of(config);
  fs::create_directories(d.out / "data");
  const fs::path train_data = d.out / "data/train", val_data = d.out / "data/val";
  if (!fs::exists(train_data.string() + ".idx") || !fs::exists(val_data.string() + ".idx")) {
    make_corpus(d.corpus, train_data, val_data);
  }
  return {train_data, val_data};
}

DemoResult run_demo(const Config& config, const fs::path& program) {
  const DemoSettings d = settings_of(config);
  fs::create_directories(d.out / "model");

  spdlog::info("demo 1/6: corpus");
  const auto [train_data, val_data] = make_demo_corpus(config);

  spdlog::info("demo 2/6: pretraining a tiny GPT-NeoX for {} updates", d.pretrain_steps);
  write_model_config(d, d.out / "model/config.json");
  const std::vector<int64_t> at = pythia_like_checkpoints(d.pretrain_steps, d.checkpoint_every);
  write_pretrain_config(d, at, train_data);
  if (!run_finished(d.out / "pretrain", d.pretrain_steps)) {
    run_stage(program, {"train", "--config", (d.out / "pretrain.yaml").string()}, "pretraining");
  }

  spdlog::info("demo 3/6: audit of {} checkpoints", at.size());
  const fs::path audit_path = d.out / "audit.h5";
  audit_pretraining(config, d, at, val_data, audit_path);

  const auto [base_step, reason] = choose_base(audit_path, at, d.pretrain_steps);
  spdlog::info(
      "demo 4/6: fork from step {} ({}) into cosine, SGDR, OLI and the matched-rate control "
      "x {} seeds",
      base_step, reason, d.seeds.size());
  write_fork_config(d, base_step, train_data, val_data);
  run_stage(program, {"experiment", "--config", (d.out / "fork.yaml").string()},
            "the fork experiment");

  spdlog::info("demo 5/6 and 6/6: analyze and report");
  ReportOptions report;
  report.audit = audit_path;
  report.runs = {(d.out / "fork").string()};
  report.analyze.phase_filter["oli"] = parse_phase_filter({"settled"}, "demo");
  report.caveat = scale_caveat(
      model::GptNeoXConfig::load(d.out / "model/config.json").num_parameters(), "byte");
  const ReportFiles files = write_report(report, d.out / "report");
  std::ofstream note(files.markdown, std::ios::app);
  note << "\n## The demo's fork base\n\nThe arms forked from step " << base_step << ", " << reason
       << ". Whether the three phases of the Pythia-160m study appear at this "
       << "scale is a finding of this run, read off the audit section above.\n";
  return {files.markdown, "step " + std::to_string(base_step) + ": " + reason};
}

}  // namespace qf::experiments
