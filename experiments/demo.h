#pragma once
// `quantfork demo`: the whole study in miniature on this machine, with no download
// (docs/method.md):
//   1. a corpus: the English texts of Debian's `fortunes` package (installed by
//      scripts/setup.sh), one document per fortune, bytes as tokens (vocabulary 256,
//      EOD 0), split into training and validation sets;
//   2. a tiny GPT-NeoX pretrained from scratch with pythia_cosine well past the point
//      where its validation loss stops improving, checkpoints spaced like Pythia's (1, 2,
//      4, ..., 512, then every demo.checkpoint_every);
//   3. the audit of those checkpoints with phase detection (audit.h5);
//   4. the fork from the pre-divergence checkpoint (or, when the audit finds no
//      divergence, the FP32 convergence checkpoint, saying so) under cosine
//      continuation, SGDR and OLI, three seeds each;
//   5. analyze (the paired t-test and the rest) and
//   6. the report, whose path it prints.
// Every stage's config is written into demo.out, so each can be rerun by hand with the
// matching command; rerunning the demo reuses finished stages.
#include <filesystem>
#include <string>
#include <utility>

#include "core/config.h"

namespace qf::experiments {

void declare_demo_config(ConfigSchema& schema);

struct DemoResult {
  std::filesystem::path report;  // report.md
  std::string base_reason;
};

// Stage 1 alone: writes (unless there already) and returns the training and validation
// datasets demo.out/data/train and demo.out/data/val.
std::pair<std::filesystem::path, std::filesystem::path> make_demo_corpus(const Config& config);

// `program` is the quantfork binary (stages run as its subcommands).
DemoResult run_demo(const Config& config, const std::filesystem::path& program);

}  // namespace qf::experiments
