#include "core/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/errors.h"
#include "test_support.h"

namespace fs = std::filesystem;
using qf::ConfigError;
using qf::ConfigLoader;
using qf::ConfigSchema;
using qf::FieldType;
using qf::test::message_of;

namespace {

ConfigSchema test_schema() {
  ConfigSchema s;
  s.optional("train.steps", FieldType::Int, "100", "Optimizer steps to run.")
      .optional("train.lr", FieldType::Float, "6e-4", "Peak learning rate.")
      .optional("train.bf16", FieldType::Bool, "false", "Use bfloat16 autocast.")
      .optional("train.seeds", FieldType::IntList, "[1, 2, 3]", "Seeds of the arms.")
      .optional("data.path", FieldType::Path, "null", "Indexed dataset prefix.")
      .optional("run.name", FieldType::String, "demo", "Name of the run.")
      .optional("schedule", FieldType::Block, "{name: constant, lr: 0.001}",
                "Learning-rate schedule block.")
      .required("model.dir", FieldType::Path, "HF checkpoint directory");
  return s;
}

// Resolves the schema with the given file contents (name -> text) and --set strings.
qf::Config resolve(const ConfigSchema& schema, const qf::test::TempDir& dir,
                   std::vector<std::pair<std::string, std::string>> files,
                   std::vector<std::string> sets = {"model.dir=/m"}) {
  ConfigLoader loader(schema);
  for (const auto& [name, text] : files) {
    qf::test::write_file(dir / name, text);
    loader.add_file(dir / name);
  }
  for (const auto& s : sets) loader.add_override(s);
  return loader.resolve();
}

}  // namespace

TEST(Config, DefaultsFilesThenSetInOrder) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  auto cfg =
      resolve(schema, dir,
              {{"a.yaml", "train:\n  steps: 5\n  lr: 1e-3\n"}, {"b.yaml", "train:\n  steps: 7\n"}},
              {"model.dir=/m", "train.lr=0.5"});
  EXPECT_EQ(cfg.get_int("train.steps"), 7);          // later file wins
  EXPECT_DOUBLE_EQ(cfg.get_float("train.lr"), 0.5);  // --set wins over files
  EXPECT_FALSE(cfg.get_bool("train.bf16"));          // default
  EXPECT_EQ(cfg.get_int_list("train.seeds"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(cfg.origin("train.steps").str(), (dir / "b.yaml").string() + ":2");
  EXPECT_EQ(cfg.origin("train.lr").str(), "--set train.lr=0.5");
  EXPECT_EQ(cfg.origin("train.bf16").str(), "built-in default");
}

TEST(Config, SetValueIsParsedAsYaml) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  auto cfg = resolve(schema, dir, {}, {"model.dir=/m", "train.seeds=[4, 5]", "run.name=oli"});
  EXPECT_EQ(cfg.get_int_list("train.seeds"), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(cfg.get_string("run.name"), "oli");
  EXPECT_EQ(message_of<ConfigError>([&] {
              resolve(schema, dir, {}, {"model.dir=/m", "train.steps=1.5"});
            }),
            "config key 'train.steps' (--set train.steps=1.5): expected an integer, got '1.5'");
}

TEST(Config, UnknownKeyNamesFileLineAndSuggests) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  std::string msg = message_of<ConfigError>([&] {
    resolve(schema, dir, {{"x.yaml", "train:\n  stpes: 3\n"}});
  });
  EXPECT_NE(msg.find("unknown config key 'train.stpes'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("x.yaml:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'train.steps'"), std::string::npos) << msg;
  std::string top = message_of<ConfigError>([&] {
    resolve(schema, dir, {{"y.yaml", "trian: {}\n"}});
  });
  EXPECT_NE(top.find("unknown config key 'trian'"), std::string::npos) << top;
  EXPECT_NE(top.find("did you mean 'train'"), std::string::npos) << top;
}

TEST(Config, WrongTypeNamesKeyAndFile) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  std::string msg = message_of<ConfigError>([&] {
    resolve(schema, dir, {{"t.yaml", "run:\n  name: x\ntrain:\n  bf16: maybe\n"}});
  });
  EXPECT_NE(msg.find("'train.bf16'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t.yaml:4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected a boolean"), std::string::npos) << msg;
  std::string list = message_of<ConfigError>([&] {
    resolve(schema, dir, {{"l.yaml", "train:\n  seeds: [1, two]\n"}});
  });
  EXPECT_NE(list.find("expected a list of integers"), std::string::npos) << list;
  std::string section = message_of<ConfigError>([&] {
    resolve(schema, dir, {{"s.yaml", "train: 5\n"}});
  });
  EXPECT_NE(section.find("expected a section"), std::string::npos) << section;
}

TEST(Config, MissingRequiredValue) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  std::string msg = message_of<ConfigError>([&] { resolve(schema, dir, {}, {}); });
  EXPECT_NE(msg.find("missing required config key 'model.dir'"), std::string::npos) << msg;
}

TEST(Config, MalformedYamlNamesFileAndLine) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  std::string msg = message_of<ConfigError>([&] {
    resolve(schema, dir, {{"bad.yaml", "train:\n  steps: [1, 2\n"}});
  });
  EXPECT_NE(msg.find("malformed YAML in " + (dir / "bad.yaml").string() + ":"), std::string::npos)
      << msg;
  std::string top = message_of<ConfigError>([&] {
    resolve(schema, dir, {{"list.yaml", "- a\n- b\n"}});
  });
  EXPECT_NE(top.find("must hold a mapping"), std::string::npos) << top;
}

TEST(Config, MissingFileIsConfigError) {
  auto schema = test_schema();
  ConfigLoader loader(schema);
  try {
    loader.add_file("/nonexistent/dir/c.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/c.yaml"), std::string::npos);
    EXPECT_EQ(e.exit_code(), 2);
  }
}

TEST(Config, AFolderGivenAsConfigFileIsAnErrorNotAnEmptyConfig) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  ConfigLoader loader(schema);
  const std::string msg = message_of<ConfigError>([&] { loader.add_file(dir.path()); });
  EXPECT_NE(msg.find(dir.path().string() + "' is a directory"), std::string::npos) << msg;
}

TEST(Config, RequiredKeysMayStayUnsetOnlyWhenAskedFor) {
  auto schema = test_schema();
  ConfigLoader loader(schema);
  EXPECT_THROW(loader.resolve(), ConfigError);
  const qf::Config docs = loader.resolve(/*require_all=*/false);
  EXPECT_TRUE(docs.is_null("model.dir"));
  EXPECT_NE(docs.dump(true).find("# (required)\n  dir: null"), std::string::npos)
      << docs.dump(true);
}

TEST(Config, ABlockStyleListDumpsAsYamlThatLoadsBack) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  const auto cfg = resolve(schema, dir, {{"c.yaml", "train:\n  seeds:\n    - 4\n    - 5\n"}});
  ConfigLoader again(schema);
  again.add_text(cfg.dump(), "dump");
  EXPECT_EQ(again.resolve().get_int_list("train.seeds"), (std::vector<int64_t>{4, 5}))
      << cfg.dump();
}

TEST(Config, BadSetSyntaxIsUsageError) {
  auto schema = test_schema();
  ConfigLoader loader(schema);
  EXPECT_THROW(loader.add_override("train.steps"), qf::UsageError);
  EXPECT_THROW(loader.add_override("=5"), qf::UsageError);
  EXPECT_THROW(loader.add_override("train..steps=5"), qf::UsageError);
}

TEST(Config, PathsAreRelativeToTheirFile) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  fs::create_directory(dir / "sub");
  auto cfg = resolve(schema, dir, {{"sub/c.yaml", "data:\n  path: ../corpus/pile\n"}});
  EXPECT_EQ(cfg.get_path("data.path"), (dir / "corpus/pile").lexically_normal());
  EXPECT_EQ(cfg.get_path("model.dir"), fs::path("/m"));
}

TEST(Config, BlocksMergeUnlessTheNameChanges) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  auto cfg = resolve(schema, dir, {{"a.yaml", "schedule: {name: sgdr, t0: 100, t_mult: 2}\n"}},
                     {"model.dir=/m", "schedule.t0=50"});
  auto block = cfg.node("schedule");
  EXPECT_EQ(block["name"].as<std::string>(), "sgdr");
  EXPECT_EQ(block["t0"].as<int>(), 50);
  EXPECT_EQ(block["t_mult"].as<int>(), 2);
  EXPECT_EQ(cfg.origin("schedule.t_mult").str(), (dir / "a.yaml").string() + ":1");
  EXPECT_EQ(cfg.origin("schedule.t0").str(), "--set schedule.t0=50");
  // A later file naming another schedule replaces the block: no leftover t0.
  auto cfg2 = resolve(schema, dir,
                      {{"a.yaml", "schedule: {name: sgdr, t0: 100}\n"},
                       {"b.yaml", "schedule:\n  name: oli\n  period: 10\n"}});
  auto b2 = cfg2.node("schedule");
  EXPECT_FALSE(b2["t0"]);
  EXPECT_EQ(b2["period"].as<int>(), 10);
  EXPECT_EQ(cfg2.origin("schedule.period").str(), (dir / "b.yaml").string() + ":3");
}

TEST(Config, DumpRoundTripsAndCarriesDocs) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  auto cfg = resolve(schema, dir, {{"a.yaml", "schedule: {name: sgdr, t0: 100}\n"}},
                     {"model.dir=/m", "train.seeds=[7]", "run.name='123'"});
  std::string plain = cfg.dump();
  std::string docs = cfg.dump(true);
  EXPECT_NE(docs.find("# Optimizer steps to run.\n  steps: 100\n"), std::string::npos) << docs;
  EXPECT_EQ(plain.find('#'), std::string::npos) << plain;
  // Loading the dump gives back the same configuration.
  ConfigLoader again(schema);
  again.add_text(plain, "dump");
  auto cfg2 = again.resolve();
  EXPECT_EQ(cfg2.dump(), plain);
  EXPECT_EQ(cfg2.get_string("run.name"), "123");
  EXPECT_EQ(cfg2.node("schedule")["t0"].as<int>(), 100);
  ConfigLoader with_docs(schema);
  with_docs.add_text(docs, "dump-with-docs");
  EXPECT_EQ(with_docs.resolve().dump(), plain);
}

TEST(Config, SchemaRejectsDoubleDeclaration) {
  ConfigSchema s;
  s.optional("a.b", FieldType::Int, "1", "x");
  EXPECT_THROW(s.optional("a.b", FieldType::Int, "1", "x"), std::logic_error);
  EXPECT_THROW(s.optional("a", FieldType::Int, "1", "x"), std::logic_error);
}

TEST(Config, EmptySectionKeepsDefaultsAndRepeatedKeysAreErrors) {
  auto schema = test_schema();
  qf::test::TempDir dir;
  auto cfg = resolve(schema, dir, {{"empty.yaml", "train:\n  # steps: 3\n"}});
  EXPECT_EQ(cfg.get_int("train.steps"), 100);
  EXPECT_DOUBLE_EQ(cfg.get_float("train.lr"), 6e-4);
  std::string msg = message_of<ConfigError>([&] {
    resolve(schema, dir, {{"dup.yaml", "train:\ntrain:\n  steps: 5\n"}});
  });
  EXPECT_NE(msg.find("duplicate config key 'train' in " + (dir / "dup.yaml").string() + ":2"),
            std::string::npos)
      << msg;
  std::string inner = message_of<ConfigError>([&] {
    resolve(schema, dir, {{"dup2.yaml", "schedule: {name: a, name: b}\n"}});
  });
  EXPECT_NE(inner.find("duplicate config key 'name'"), std::string::npos) << inner;
}

namespace {

enum class Mode { kFast, kExact };
const qf::EnumNames<Mode> kModes = {{"fast", Mode::kFast}, {"exact", Mode::kExact}};

ConfigSchema constrained_schema() {
  ConfigSchema s;
  s.optional("train.mode", FieldType::String, "fast", "How to train.")
      .one_of(kModes)
      .optional("train.steps", FieldType::Int, "10", "Updates.")
      .at_least(1)
      .optional("train.beta", FieldType::Float, "0.9", "A decay.")
      .at_least(0)
      .below(1)
      .defines_result()
      .optional("train.at", FieldType::IntList, "[0]", "Steps.")
      .at_least(0)
      .optional("train.ratio", FieldType::Float, "null", "Off when null.")
      .above(0);
  return s;
}

}  // namespace

TEST(Config, ChoicesAndRangesAreCheckedNamingTheKeyAndWhereItWasSet) {
  const ConfigSchema schema = constrained_schema();
  qf::test::TempDir dir;
  const auto error = [&](const std::string& yaml) {
    return message_of<ConfigError>([&] { resolve(schema, dir, {{"c.yaml", yaml}}, {}); });
  };
  const std::string at = (dir / "c.yaml").string();
  EXPECT_EQ(error("train: {mode: slow}"),
            "config key 'train.mode' (" + at + ":1): expected one of fast, exact, got 'slow'");
  EXPECT_EQ(error("train: {steps: 0}"),
            "config key 'train.steps' (" + at + ":1): must be >= 1, got 0");
  EXPECT_EQ(error("train: {beta: 1}"),
            "config key 'train.beta' (" + at + ":1): must be in [0, 1), got 1");
  EXPECT_EQ(error("train: {beta: .nan}"),
            "config key 'train.beta' (" + at + ":1): must be in [0, 1), got .nan");
  EXPECT_EQ(error("train: {at: [3, -1]}"),
            "config key 'train.at.1' (" + at + ":1): must be >= 0, got -1");
  EXPECT_EQ(error("train: {ratio: 0}"),
            "config key 'train.ratio' (" + at + ":1): must be > 0, got 0");
  // In range, and null where the default is null: accepted; the enum reads typed.
  const auto cfg =
      resolve(schema, dir, {{"ok.yaml", "train: {mode: exact, steps: 1, beta: 0}"}}, {});
  EXPECT_EQ(cfg.get_enum("train.mode", kModes), Mode::kExact);
  EXPECT_TRUE(cfg.is_null("train.ratio"));
  EXPECT_TRUE(schema.find("train.beta")->defines_result);
  EXPECT_FALSE(schema.find("train.steps")->defines_result);
}

TEST(Config, DumpWithDocsShowsTheChoicesAndRanges) {
  const ConfigSchema schema = constrained_schema();
  const std::string docs = ConfigLoader(schema).resolve(false).dump(true);
  EXPECT_NE(docs.find("  # How to train.\n  # (one of fast, exact)\n  mode: fast\n"),
            std::string::npos)
      << docs;
  EXPECT_NE(docs.find("  # (>= 1)\n  steps: 10\n"), std::string::npos) << docs;
  EXPECT_NE(docs.find("  # (in [0, 1))\n  # (defines the result)\n  beta: 0.9\n"),
            std::string::npos)
      << docs;
  EXPECT_NE(docs.find("  # (each >= 0)\n  at: [0]\n"), std::string::npos) << docs;
}

TEST(Config, RefinementsMustFitTheFieldDeclaredLast) {
  ConfigSchema s;
  EXPECT_THROW(s.at_least(0), std::logic_error);  // no field yet
  s.optional("a.n", FieldType::Int, "1", "n");
  EXPECT_THROW(s.one_of({"x"}), std::logic_error);  // choices on an integer
  s.optional("a.name", FieldType::String, "x", "name");
  EXPECT_THROW(s.at_least(0), std::logic_error);  // a range on a string
  // A default outside its own constraint fails the first resolve (every test builds it).
  s.one_of({"y"});
  EXPECT_THROW(ConfigLoader(s).resolve(), ConfigError);
}
