// LAWA: `quantfork average` and model/checkpoint_average.h. The average of k checkpoints
// is the float64 mean of their tensors rounded once to float32, whatever their stored
// dtype; the steps are recorded; other models and bad options are clear errors.
#include "model/checkpoint_average.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/safetensors.h"
#include "model_test_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

model::GptNeoXConfig tiny_config() {
  model::GptNeoXConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.intermediate_size = 96;
  c.max_position_embeddings = 64;
  return c;
}

// A checkpoint of `config` with weights drawn from `seed`, saved as `dtype`.
fs::path write_checkpoint(const fs::path& dir, std::uint64_t seed,
                          at::ScalarType dtype = at::kFloat,
                          const model::GptNeoXConfig& config = tiny_config()) {
  torch::manual_seed(seed);
  model::GptNeoXForCausalLM m(config);
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.copy_(at::randn_like(p));
  model::save_hf_checkpoint(m, dir, dtype);
  return dir;
}

// The reference: every input tensor widened to float64, summed in input order, divided by
// k, rounded to float32.
std::map<std::string, at::Tensor> float64_mean(const std::vector<fs::path>& dirs) {
  std::map<std::string, at::Tensor> sum;
  for (const auto& dir : dirs) {
    for (const auto& [name, t] : load_tensors(dir / "model.safetensors")) {
      const at::Tensor wide = t.to(at::kDouble);
      auto it = sum.find(name);
      if (it == sum.end()) {
        sum.emplace(name, wide.clone());
      } else {
        it->second.add_(wide);
      }
    }
  }
  for (auto& [name, t] : sum) t = (t / static_cast<double>(dirs.size())).to(at::kFloat);
  return sum;
}

TEST(CheckpointAverage, IsTheFloat64MeanOfTheTensors) {
  TempDir tmp;
  // Mixed stored dtypes: bfloat16 widens to float32 exactly, so it averages as stored.
  const std::vector<fs::path> dirs = {write_checkpoint(tmp / "step100", 1),
                                      write_checkpoint(tmp / "step200", 2, at::kBFloat16),
                                      write_checkpoint(tmp / "step300", 3)};
  model::AveragedModel average =
      model::average_checkpoints({{dirs[0], 100}, {dirs[1], 200}, {dirs[2], 300}});
  const auto expected = float64_mean(dirs);
  std::size_t compared = 0;
  for (const auto& item : average.model->named_parameters()) {
    SCOPED_TRACE(item.key());
    ASSERT_EQ(item.value().scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(item.value(), expected.at(item.key())));
    ++compared;
  }
  EXPECT_EQ(compared, expected.size());
  // Not trivially one of the inputs: the mean of three draws is none of them.
  const auto first = load_tensors(dirs[0] / "model.safetensors");
  EXPECT_FALSE(at::equal(first.at("embed_out.weight"), expected.at("embed_out.weight")));
  EXPECT_EQ(average.input_dtype, at::kFloat);
}

TEST(CheckpointAverage, OneCheckpointIsItself) {
  TempDir tmp;
  const fs::path dir = write_checkpoint(tmp / "step5", 9);
  model::AveragedModel average = model::average_checkpoints({{dir, 5}});
  for (const auto& [name, t] : load_tensors(dir / "model.safetensors")) {
    EXPECT_TRUE(at::equal(average.model->named_parameters()[name], t)) << name;
  }
}

TEST(CheckpointAverage, CommandWritesTheAverageWithItsStepsAndDtype) {
  TempDir tmp;
  std::vector<fs::path> dirs;
  for (int k = 1; k <= 4; ++k) {
    dirs.push_back(write_checkpoint(tmp / "run" / ("step" + std::to_string(10 * k)),
                                    static_cast<std::uint64_t>(k), at::kBFloat16));
  }
  // A glob, and the checkpoints in step order whatever the shell gives.
  const auto r = run_quantfork("average --out avg 'run/step*'", tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("averaged 4 checkpoint(s), steps 10 to 40"), std::string::npos) << r.out;
  const auto expected = float64_mean(dirs);
  const auto written = load_tensors(tmp / "avg" / "model.safetensors");
  ASSERT_EQ(written.size(), expected.size());
  for (const auto& [name, t] : written) EXPECT_TRUE(at::equal(t, expected.at(name))) << name;
  const auto file = SafetensorsFile::open(tmp / "avg" / "model.safetensors");
  EXPECT_EQ(file.metadata().at("quantfork.average"), "lawa");
  EXPECT_EQ(nlohmann::json::parse(file.metadata().at("quantfork.averaged_steps")),
            nlohmann::json({10, 20, 30, 40}));
  EXPECT_EQ(nlohmann::json::parse(file.metadata().at("quantfork.averaged_checkpoints")).size(), 4u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(nlohmann::json::parse(read_file(tmp / "avg" / "config.json"))["torch_dtype"],
            "float32");
  // It loads as any checkpoint does.
  EXPECT_NO_THROW(model::load_hf_checkpoint(tmp / "avg"));

  // --dtype input: as the inputs were stored.
  const auto b =
      run_quantfork("average --dtype input --out avg16 run/step10 run/step20", tmp.path());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(TensorFile::open(tmp / "avg16" / "model.safetensors").dtype("embed_out.weight"),
            DType::BF16);
  EXPECT_TRUE(at::equal(load_tensors(tmp / "avg16" / "model.safetensors").at("embed_out.weight"),
                        float64_mean({dirs[0], dirs[1]}).at("embed_out.weight").to(at::kBFloat16)));
}

TEST(CheckpointAverage, OtherModelsAndBadOptionsAreClearErrors) {
  TempDir tmp;
  write_checkpoint(tmp / "step1", 1);
  model::GptNeoXConfig wider = tiny_config();
  wider.hidden_size = 64;
  write_checkpoint(tmp / "step2", 2, at::kFloat, wider);
  model::GptNeoXConfig sequential = tiny_config();
  sequential.use_parallel_residual = false;
  write_checkpoint(tmp / "step3", 3, at::kFloat, sequential);
  fs::create_directories(tmp / "exists");
  fs::create_directories(tmp / "nameless");
  const struct {
    const char* args;
    int exit_code;
    const char* message;
  } cases[] = {
      {"average --out a step1 step2", 2, "hidden_size 64"},
      {"average --out a step1 step3", 2, "use_parallel_residual"},
      {"average --out a step1 nameless", 2, "no step in the name"},
      {"average --out exists step1", 2, "'exists' exists"},
      {"average --out a --dtype int8 step1", 2,
       "--dtype 'int8': expected float32, bfloat16, float16 or input"},
      {"average --out a", 2, "no checkpoints given"},
      {"average --out a 'none*'", 2, "none*"},
      {"average --out a step9", 1, "step9"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const auto r = run_quantfork(c.args, tmp.path());
    EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp / "a"));
  }
}

}  // namespace
}  // namespace qf::test
