// HF checkpoint directories: save and reload, sharded files, what Python sees in our
// files, and every kind of bad input named in the error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "core/errors.h"
#include "model_test_support.h"
#include "python_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;
using model::load_hf_checkpoint;
using model::save_hf_checkpoint;
using ::testing::AllOf;
using ::testing::HasSubstr;
using TensorList = std::vector<std::pair<std::string, at::Tensor>>;

const char* const kModel = "neox-tiny-parallel";

TensorList fixture_tensors() {
  TensorList out;
  for (auto& [name, t] : load_tensors(golden(kModel) / "model.safetensors"))
    out.emplace_back(name, t);
  return out;
}

// A copy of the fixture whose weights are `tensors`.
fs::path model_with(const TempDir& tmp, const TensorList& tensors) {
  const fs::path dir = tmp / "model";
  copy_model(kModel, dir);
  save_safetensors(dir / "model.safetensors", tensors);
  return dir;
}

at::Tensor fixture_ids() {
  return read_ids(golden(kModel) / "input_ids.json");
}

class HfCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { QF_REQUIRE_FIXTURE(std::string("gpt_neox/") + kModel); }
  TempDir tmp;
};

TEST_F(HfCheckpointTest, SaveThenLoadGivesIdenticalLogits) {
  auto original = load_hf_checkpoint(golden(kModel)).model;
  save_hf_checkpoint(original, tmp / "saved");
  EXPECT_FALSE(fs::exists(tmp / ("saved.tmp." + std::to_string(::getpid()))));
  auto reloaded = load_hf_checkpoint(tmp / "saved").model;
  EXPECT_TRUE(at::equal(logits_of(original, fixture_ids()), logits_of(reloaded, fixture_ids())));
  // Saving over an existing checkpoint replaces its files.
  save_hf_checkpoint(reloaded, tmp / "saved", at::kHalf);
  const auto config = nlohmann::json::parse(read_file(tmp / "saved" / "config.json"));
  EXPECT_EQ(config["torch_dtype"], "float16");
  EXPECT_EQ(TensorFile::open(tmp / "saved" / "model.safetensors").dtype("embed_out.weight"),
            DType::F16);
}

TEST_F(HfCheckpointTest, PythonReadsOurFilesWithHfNamesAndShapes) {
  auto m = load_hf_checkpoint(golden(kModel)).model;
  save_hf_checkpoint(m, tmp / "saved");
  // The safetensors header parsed by hand (the safetensors package may be absent), the
  // data compared with the fixture's own file, which HF wrote.
  QF_RUN_PYTHON(R"(
import json, struct, numpy as np
def read(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop('__metadata__', {})
    data = raw[8 + n:]
    types = {'F32': np.float32, 'F16': np.float16}
    return meta, {k: np.frombuffer(data[v['data_offsets'][0]:v['data_offsets'][1]],
                                   types[v['dtype']]).reshape(v['shape']) for k, v in header.items()}
meta, ours = read('saved/model.safetensors')
_, theirs = read(')" +
                    golden(kModel).string() + R"(/model.safetensors')
assert meta == {'format': 'pt'}, meta
assert sorted(ours) == sorted(theirs), set(ours) ^ set(theirs)
for k in theirs:
    assert ours[k].shape == theirs[k].shape, k
    assert np.array_equal(ours[k], theirs[k]), k
config = json.load(open('saved/config.json'))
assert config['model_type'] == 'gpt_neox' and config['architectures'] == ['GPTNeoXForCausalLM']
assert config['num_hidden_layers'] == 2 and config['torch_dtype'] == 'float32'
print(len(ours), 'tensors match')
)",
                tmp.path());
}

TEST_F(HfCheckpointTest, ShardedSafetensorsLoadLikeOneFile) {
  const fs::path dir = tmp / "sharded";
  copy_model(kModel, dir);
  fs::remove(dir / "model.safetensors");
  TensorList first, second;
  nlohmann::json map;
  for (auto& [name, t] : fixture_tensors()) {
    const bool in_first = name.find("layers.1.") == std::string::npos;
    (in_first ? first : second).emplace_back(name, t);
    map[name] = in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  save_safetensors(dir / "model-00001-of-00002.safetensors", first);
  save_safetensors(dir / "model-00002-of-00002.safetensors", second);
  write_file(dir / "model.safetensors.index.json",
             nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump());
  auto sharded = load_hf_checkpoint(dir);
  EXPECT_EQ(sharded.weight_files.size(), 2u);
  auto single = load_hf_checkpoint(golden(kModel)).model;
  EXPECT_TRUE(at::equal(logits_of(sharded.model, fixture_ids()), logits_of(single, fixture_ids())));

  map["embed_out.weight"] = "../elsewhere.safetensors";
  write_file(dir / "model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
  EXPECT_THAT(message_of<FormatError>([&] { load_hf_checkpoint(dir); }),
              AllOf(HasSubstr("embed_out.weight"), HasSubstr("index.json")));
}

TEST_F(HfCheckpointTest, LegacyBuffersAreSkippedAndUnknownTensorsWarned) {
  TensorList tensors = fixture_tensors();
  tensors.emplace_back("gpt_neox.layers.0.attention.bias",
                       at::ones({1, 1, 128, 128}, at::kByte).tril());
  tensors.emplace_back("gpt_neox.layers.1.attention.masked_bias", at::full({}, -1e9));
  tensors.emplace_back("gpt_neox.layers.1.attention.rotary_emb.inv_freq", at::ones({2}));
  tensors.emplace_back("lm_head.extra", at::ones({3}));
  auto loaded = load_hf_checkpoint(model_with(tmp, tensors));
  EXPECT_EQ(loaded.unknown_tensors, std::vector<std::string>{"lm_head.extra"});
  auto reference = load_tensors(golden(kModel) / "reference.safetensors");
  EXPECT_LE(max_abs_diff(logits_of(loaded.model, fixture_ids()), reference.at("logits")), 1e-4);
}

TEST_F(HfCheckpointTest, MissingTensorIsNamed) {
  TensorList tensors = fixture_tensors();
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [](const auto& p) {
                                 return p.first == "gpt_neox.layers.1.mlp.dense_4h_to_h.bias";
                               }),
                tensors.end());
  const fs::path dir = model_with(tmp, tensors);
  EXPECT_THAT(message_of<FormatError>([&] { load_hf_checkpoint(dir); }),
              AllOf(HasSubstr("missing tensor 'gpt_neox.layers.1.mlp.dense_4h_to_h.bias'"),
                    HasSubstr((dir / "model.safetensors").string()), HasSubstr("[64]")));
}

TEST_F(HfCheckpointTest, WrongShapeIsNamed) {
  TensorList tensors = fixture_tensors();
  for (auto& [name, t] : tensors) {
    if (name == "gpt_neox.layers.0.attention.query_key_value.weight")
      t = t.narrow(0, 0, 96).clone();
  }
  const fs::path dir = model_with(tmp, tensors);
  EXPECT_THAT(message_of<FormatError>([&] { load_hf_checkpoint(dir); }),
              AllOf(HasSubstr("'gpt_neox.layers.0.attention.query_key_value.weight'"),
                    HasSubstr("[96, 64]"), HasSubstr("expected [192, 64]"),
                    HasSubstr("model.safetensors")));
}

TEST_F(HfCheckpointTest, NonFloatingDtypeIsNamed) {
  TensorList tensors = fixture_tensors();
  for (auto& [name, t] : tensors) {
    if (name == "gpt_neox.final_layer_norm.bias") t = t.to(at::kLong);
  }
  const fs::path dir = model_with(tmp, tensors);
  EXPECT_THAT(message_of<FormatError>([&] { load_hf_checkpoint(dir); }),
              AllOf(HasSubstr("'gpt_neox.final_layer_norm.bias'"), HasSubstr("I64")));
}

TEST_F(HfCheckpointTest, UnknownDtypeInTheFileIsAFormatErrorNamingIt) {
  const fs::path dir = model_with(tmp, fixture_tensors());
  // Rewrite one dtype in the header to one safetensors defines but we don't read.
  std::string bytes = read_file(dir / "model.safetensors");
  const auto pos = bytes.find("\"F32\"");
  ASSERT_NE(pos, std::string::npos);
  bytes.replace(pos, 5, "\"F8X\"");
  write_file(dir / "model.safetensors", bytes);
  EXPECT_THAT(message_of<FormatError>([&] { load_hf_checkpoint(dir); }),
              AllOf(HasSubstr("F8X"), HasSubstr("model.safetensors")));
}

TEST_F(HfCheckpointTest, TruncatedFileIsNamed) {
  const fs::path dir = model_with(tmp, fixture_tensors());
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 100);
  EXPECT_THAT(message_of<FormatError>([&] { load_hf_checkpoint(dir); }),
              HasSubstr((dir / "model.safetensors").string()));
}

TEST_F(HfCheckpointTest, MissingConfigOrWeightsOrDirectoryIsNamed) {
  const fs::path dir = model_with(tmp, fixture_tensors());
  fs::remove(dir / "config.json");
  EXPECT_THAT(message_of<Error>([&] { load_hf_checkpoint(dir); }),
              AllOf(HasSubstr(dir.string()), HasSubstr("no config.json")));
  copy_model(kModel, tmp / "noweights");
  fs::remove(tmp / "noweights" / "model.safetensors");
  EXPECT_THAT(message_of<Error>([&] { load_hf_checkpoint(tmp / "noweights"); }),
              AllOf(HasSubstr("no model weights"), HasSubstr("pytorch_model.bin")));
  EXPECT_THAT(message_of<Error>([&] { load_hf_checkpoint(tmp / "absent"); }),
              HasSubstr("does not exist"));
}

TEST_F(HfCheckpointTest, TokenIdsOutsideTheVocabularyOrTooLongAreNamed) {
  auto m = load_hf_checkpoint(golden(kModel)).model;
  at::Tensor ids = fixture_ids();
  ids[1][7] = 512;
  EXPECT_THAT(message_of<Error>([&] { logits_of(m, ids); }),
              AllOf(HasSubstr("token id 512 at [1, 7]"), HasSubstr("[0, 512)")));
  ids[1][7] = -3;
  EXPECT_THAT(message_of<Error>([&] { logits_of(m, ids); }), HasSubstr("token id -3"));
  EXPECT_THAT(message_of<Error>([&] {
                logits_of(m, at::zeros({1, 129}, at::kLong));
              }),
              AllOf(HasSubstr("129"), HasSubstr("max_position_embeddings (128)")));
  EXPECT_EQ(logits_of(m, at::zeros({1, 128}, at::kLong)).size(1), 128);
}

// Loading copies each tensor out of the mapped file and lets the file's pages go: a
// float16 checkpoint (half the float32 weights) and the weights are never resident
// together, so the peak is the weights plus about one tensor of the file, not 1.5x.
TEST(HfCheckpointLoadTest, TheFilesPagesDoNotStayResidentNextToTheWeights) {
  if (!memory_peaks_measurable()) GTEST_SKIP() << "peak memory not measurable under ASan";
  model::GptNeoXConfig c = model::GptNeoXConfig::pythia("14m");
  c.vocab_size = 8192;
  c.hidden_size = 512;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 8;
  c.intermediate_size = 2048;
  TempDir tmp;
  std::int64_t weight_bytes = 0;
  {
    model::GptNeoXForCausalLM m(c);
    m->init_pythia(3);
    for (const auto& p : m->parameters()) weight_bytes += p.numel() * 4;
    save_hf_checkpoint(m, tmp / "model", at::kHalf);
  }
  reset_peak_memory();
  const std::int64_t before = resident_bytes();
  const model::LoadedModel loaded = load_hf_checkpoint(tmp / "model");
  const double grown = static_cast<double>(peak_resident_bytes() - before);
  EXPECT_LT(grown, 1.2 * static_cast<double>(weight_bytes))
      << "peak " << grown / 1e6 << " MB while loading " << static_cast<double>(weight_bytes) / 1e6
      << " MB of float32 weights from a float16 file";
  RecordProperty("load_peak_over_weights", std::to_string(grown / static_cast<double>(weight_bytes)));
  // And the weights are the file's.
  const TensorFile file = TensorFile::open(tmp / "model" / "model.safetensors");
  EXPECT_TRUE(at::equal(loaded.model->named_parameters()["embed_out.weight"],
                        file.view("embed_out.weight").to(at::kFloat)));
}

TEST(PythiaInitTest, DrawsPythiasStdsDeterministically) {
  model::GptNeoXConfig c = model::GptNeoXConfig::pythia("14m");
  model::GptNeoXForCausalLM a(c), b(c), other(c);
  a->init_pythia(7);
  b->init_pythia(7);
  other->init_pythia(8);
  const auto pa = a->named_parameters();
  const double small = std::sqrt(2.0 / (5.0 * 128)), wang = 2.0 / 6 / std::sqrt(128.0);
  EXPECT_NEAR(pa["gpt_neox.embed_in.weight"].std().item<double>(), small, small * 0.01);
  EXPECT_NEAR(pa["embed_out.weight"].std().item<double>(), small, small * 0.01);
  EXPECT_NEAR(pa["gpt_neox.layers.2.attention.query_key_value.weight"].std().item<double>(), small,
              small * 0.02);
  EXPECT_NEAR(pa["gpt_neox.layers.2.attention.dense.weight"].std().item<double>(), wang,
              wang * 0.03);
  EXPECT_NEAR(pa["gpt_neox.layers.5.mlp.dense_4h_to_h.weight"].std().item<double>(), wang,
              wang * 0.02);
  EXPECT_EQ(pa["gpt_neox.layers.0.mlp.dense_h_to_4h.bias"].abs().max().item<double>(), 0.0);
  EXPECT_TRUE(at::equal(pa["gpt_neox.final_layer_norm.weight"], at::ones({128})));
  EXPECT_TRUE(at::equal(pa["embed_out.weight"], b->named_parameters()["embed_out.weight"]));
  EXPECT_FALSE(at::equal(pa["embed_out.weight"], other->named_parameters()["embed_out.weight"]));
}

}  // namespace
}  // namespace qf::test
