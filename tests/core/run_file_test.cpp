#include "core/run_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "test_support.h"

namespace qf {
namespace {

using test::message_of;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using json = nlohmann::json;

RunAttributes sample_attributes() {
  RunAttributes a;
  a.experiment = "fork";
  a.arm = "wsd";
  a.seed = 3;
  a.schedule = "wsd";
  a.base_checkpoint = "pythia-14m/step1000";
  a.start_step = 1000;
  return a;
}

const char* const kYaml = "experiment: fork\ntrain:\n  steps: 100\n";

TrainRow train_row(std::int64_t step) {
  return {step,
          step * 2048,
          3.25f + static_cast<float>(step) / 8,
          6e-4 / static_cast<double>(step),
          0.75f,
          0.125f,
          16384.0f};
}

ProbeRow probe_row(std::int64_t step) {
  ProbeRow r;
  r.step = step;
  r.phase = step < 1005 ? "warmup" : "stable";
  r.phase_index = step < 1005 ? 0 : 1;
  r.loss_fp32 = 3.0 + 1.0 / static_cast<double>(step);
  r.ppl_fp32 = std::exp(r.loss_fp32);
  r.ppl_int4 = r.ppl_fp32 * 1.07;
  r.ppl_int8 = r.ppl_fp32 * 1.001;
  r.gap_int4_pct = 7.0;
  r.gap_int8_pct = 0.1;
  r.kurtosis_mean = 4.5;
  r.grid_residual_mean = 0.01;
  r.tokens_evaluated = 65536;
  return r;
}

ProbeTensorRow tensor_row(std::int64_t step, int layer) {
  return {
      step,        "gpt_neox.layers." + std::to_string(layer) + ".attention.query_key_value.weight",
      3.0 + layer, 0.05,
      0.001,       0.2};
}

// What h5py, and nothing else, makes of a file: every dataset's field names, numpy
// dtypes, layout and rows; the root attributes with their Python types.
const char* const kH5pyDump = R"PY(
import json, sys
import h5py, numpy as np

def plain(v):
    if isinstance(v, bytes): return v.decode()
    if isinstance(v, np.generic): v = v.item()
    if isinstance(v, float) and v != v: return None  # NaN: JSON has no literal for it
    return v

with h5py.File(sys.argv[1], "r") as f:
    out = {"attrs": {k: [plain(v), type(v).__name__] for k, v in f.attrs.items()},
           "config": plain(f["config"][()]), "config_type": type(f["config"][()]).__name__,
           "tables": {}}
    for name, ds in f.items():
        if name == "config": continue
        a = ds[:]
        out["tables"][name] = {
            "ndarray": isinstance(a, np.ndarray), "shape": list(a.shape),
            "names": list(a.dtype.names), "dtypes": [a.dtype[n].str for n in a.dtype.names],
            "chunks": list(ds.chunks), "maxshape": list(ds.maxshape),
            "compression": ds.compression, "shuffle": ds.shuffle,
            "rows": [[plain(x) for x in row] for row in a.tolist()]}
    print(json.dumps(out))
)PY";

// Runs kH5pyDump on `file` with Debian's python (the one with h5py), not the first
// python3 on PATH.
json h5py_dump(const test::TempDir& dir, const std::string& file) {
  const auto script = dir / "dump.py";
  test::write_file(script, kH5pyDump);
  const std::string command = "/usr/bin/python3 " + script.string() + " " + file + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + command);
  std::string output;
  char buffer[4096];
  while (std::size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  if (status != 0) {
    ADD_FAILURE() << command << " failed (is python3-h5py installed? scripts/setup.sh "
                  << "installs it):\n"
                  << output;
    return json::object();
  }
  return json::parse(output);
}

// "2024-05-01T12:34:56Z": digits where the pattern has 9, the rest verbatim. (Not
// std::regex: GCC 12 warns falsely inside it under -O2 with the sanitizers.)
bool looks_like_utc_iso8601(const std::string& s) {
  const std::string pattern = "9999-99-99T99:99:99Z";
  if (s.size() != pattern.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool digit = s[i] >= '0' && s[i] <= '9';
    if (pattern[i] == '9' ? !digit : s[i] != pattern[i]) return false;
  }
  return true;
}

std::vector<std::string> names_of(const hdf5::Schema& s) {
  std::vector<std::string> names;
  for (const auto& c : s) names.push_back(c.name);
  return names;
}

class RunFileTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name = "run.h5") const { return (dir_ / name).string(); }
  test::TempDir dir_;
};

TEST_F(RunFileTest, SchemasAreTheInterfaceColumns) {
  EXPECT_THAT(names_of(train_schema()), ElementsAre("step", "tokens", "loss", "lr", "grad_norm",
                                                    "step_time_s", "tokens_per_s"));
  const std::vector<std::string> probe = {
      "step",         "phase",         "phase_index",        "loss_fp32",
      "ppl_fp32",     "ppl_int4",      "ppl_int8",           "gap_int4_pct",
      "gap_int8_pct", "kurtosis_mean", "grid_residual_mean", "tokens_evaluated"};
  // interfaces.md's columns (schema version 1), then those added since, in both tables.
  const std::vector<std::string> added = {"ppl_int4_gptq", "gap_int4_gptq_pct"};
  std::vector<std::string> probe_now = probe;
  probe_now.insert(probe_now.end(), added.begin(), added.end());
  probe_now.push_back("weights");  // version 3, /probe only
  EXPECT_THAT(names_of(probe_schema()), ElementsAreArray(probe_now));
  EXPECT_THAT(names_of(events_schema()), ElementsAre("step", "kind", "metric", "value", "gap_rise",
                                                     "fp32_change_pct", "detail"));
  std::vector<std::string> audit = probe;
  audit.push_back("lr");
  audit.insert(audit.end(), added.begin(), added.end());
  EXPECT_THAT(names_of(audit_schema()), ElementsAreArray(audit));
  EXPECT_THAT(names_of(attribution_schema()),
              ElementsAre("step", "unit", "layer", "gap_int4_pct", "gap_int4_gptq_pct"));
  EXPECT_THAT(names_of(probe_tensors_schema()),
              ElementsAre("step", "tensor", "kurtosis", "rel_error_int4", "rel_error_int8",
                          "grid_residual"));
  EXPECT_THAT(names_of(phases_schema()), ElementsAre("phase", "start_step", "end_step", "slope"));
}

TEST_F(RunFileTest, H5pyReadsTheRunFileAsTheInterfaceSays) {
  {
    RunFile run = RunFile::create(path(), sample_attributes(), kYaml);
    run.append_train(train_row(1001));
    run.append_train(train_row(1002));
    run.append_probe(probe_row(1000));
    run.append_probe(probe_row(1010));
    run.append_probe_tensors({tensor_row(1000, 0), tensor_row(1000, 1)});
    run.append_probe_tensor(tensor_row(1010, 0));
    run.close();
  }
  const json d = h5py_dump(dir_, path());
  ASSERT_FALSE(d.empty());

  const json& attrs = d["attrs"];
  EXPECT_EQ(attrs["schema"], json({"quantfork.run/3", "str"}));
  EXPECT_EQ(attrs["experiment"], json({"fork", "str"}));
  EXPECT_EQ(attrs["arm"], json({"wsd", "str"}));
  EXPECT_EQ(attrs["schedule"], json({"wsd", "str"}));
  EXPECT_EQ(attrs["base_checkpoint"], json({"pythia-14m/step1000", "str"}));
  EXPECT_EQ(attrs["seed"], json({3, "int64"}));
  EXPECT_EQ(attrs["start_step"], json({1000, "int64"}));
  EXPECT_TRUE(looks_like_utc_iso8601(attrs["created"][0].get<std::string>())) << attrs["created"];
  EXPECT_THAT(attrs["version"][0].get<std::string>(), HasSubstr("("));
  EXPECT_EQ(attrs.size(), 9u);
  EXPECT_EQ(d["config"], kYaml);
  EXPECT_EQ(d["config_type"], "bytes");

  const json& train = d["tables"]["train"];
  EXPECT_EQ(train["names"], json(names_of(train_schema())));
  EXPECT_EQ(train["dtypes"], json({"<i8", "<i8", "<f4", "<f8", "<f4", "<f4", "<f4"}));
  EXPECT_EQ(train["rows"][1][0], 1002);
  EXPECT_EQ(train["rows"][1][1], 1002 * 2048);
  EXPECT_EQ(train["rows"][1][2].get<double>(), static_cast<double>(train_row(1002).loss));
  EXPECT_EQ(train["rows"][1][3].get<double>(), 6e-4 / 1002);

  const json& probe = d["tables"]["probe"];
  EXPECT_TRUE(probe["ndarray"].get<bool>());
  EXPECT_EQ(probe["names"], json(names_of(probe_schema())));
  EXPECT_EQ(probe["dtypes"], json({"<i8", "|S32", "<i4", "<f8", "<f8", "<f8", "<f8", "<f8", "<f8",
                                   "<f8", "<f8", "<i8", "<f8", "<f8", "|S32"}));
  EXPECT_EQ(probe["shape"], json::array({2}));
  EXPECT_EQ(probe["maxshape"], json::array({nullptr}));
  EXPECT_EQ(probe["chunks"], json::array({256}));
  EXPECT_EQ(probe["compression"], "gzip");
  EXPECT_TRUE(probe["shuffle"].get<bool>());
  EXPECT_EQ(probe["rows"][1][1], "stable");
  EXPECT_EQ(probe["rows"][1][2], 1);
  EXPECT_EQ(probe["rows"][1][4].get<double>(), probe_row(1010).ppl_fp32);
  EXPECT_EQ(probe["rows"][1][14], "raw");

  const json& tensors = d["tables"]["probe_tensors"];
  EXPECT_EQ(tensors["names"], json(names_of(probe_tensors_schema())));
  EXPECT_EQ(tensors["dtypes"], json({"<i8", "|S64", "<f8", "<f8", "<f8", "<f8"}));
  EXPECT_EQ(tensors["rows"].size(), 3u);
  EXPECT_EQ(tensors["rows"][1][1], "gpt_neox.layers.1.attention.query_key_value.weight");
  EXPECT_EQ(tensors["rows"][2][0], 1010);
}

TEST_F(RunFileTest, H5pyReadsTheAuditFileAsTheInterfaceSays) {
  {
    AuditFile audit = AuditFile::create(path("audit.h5"), sample_attributes(), kYaml);
    AuditRow row;
    static_cast<ProbeRow&>(row) = probe_row(1000);
    row.lr = 3e-4;
    audit.append_audit(row);
    audit.write_phases({{"warmup", 0, 1000, -0.5}, {"stable", 1000, 5000, 0.01}});
    audit.write_landmarks({1200, std::nullopt, 900});
  }
  const json d = h5py_dump(dir_, path("audit.h5"));
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d["attrs"]["schema"], json({"quantfork.audit/3", "str"}));
  EXPECT_EQ(d["attrs"]["fp32_convergence_step"], json({1200, "int64"}));
  EXPECT_EQ(d["attrs"]["divergence_onset_step"], json({-1, "int64"}));
  EXPECT_EQ(d["attrs"]["pre_divergence_step"], json({900, "int64"}));
  const json& audit = d["tables"]["audit"];
  EXPECT_EQ(audit["names"], json(names_of(audit_schema())));
  EXPECT_EQ(audit["dtypes"].back(), "<f8");
  // lr follows version 1's probe columns; the GPTQ columns (NaN here: null) come last.
  // (/probe's version-3 `weights` column is not in /audit.)
  const std::size_t lr = names_of(probe_schema()).size() - 3;
  EXPECT_EQ(audit["names"][lr], "lr");
  EXPECT_EQ(audit["rows"][0][lr], 3e-4);
  EXPECT_TRUE(audit["rows"][0].back().is_null());
  const json& phases = d["tables"]["phases"];
  EXPECT_EQ(phases["dtypes"], json({"|S32", "<i8", "<i8", "<f8"}));
  EXPECT_EQ(phases["rows"], json({{"warmup", 0, 1000, -0.5}, {"stable", 1000, 5000, 0.01}}));
}

TEST_F(RunFileTest, RowsAndAttributesReadBackAsWritten) {
  {
    RunFile run = RunFile::create(path(), sample_attributes(), kYaml);
    run.append_train(train_row(1001));
    run.append_probe(probe_row(1000));
    run.append_probe_tensor(tensor_row(1000, 5));
  }
  const RunFile run = RunFile::open_read_only(path());
  const auto train = run.read_train();
  ASSERT_EQ(train.size(), 1u);
  EXPECT_EQ(train[0].tokens, 1001 * 2048);
  EXPECT_EQ(train[0].loss, train_row(1001).loss);
  EXPECT_EQ(train[0].lr, train_row(1001).lr);
  EXPECT_EQ(train[0].tokens_per_s, 16384.0f);
  const auto probe = run.read_probe();
  ASSERT_EQ(probe.size(), 1u);
  EXPECT_EQ(probe[0].phase, "warmup");
  EXPECT_EQ(probe[0].ppl_fp32, probe_row(1000).ppl_fp32);
  EXPECT_EQ(probe[0].tokens_evaluated, 65536);
  const auto tensors = run.read_probe_tensors();
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(tensors[0].tensor, tensor_row(1000, 5).tensor);
  EXPECT_EQ(tensors[0].kurtosis, 8.0);
  const RunAttributes a = run.attributes();
  EXPECT_EQ(a.arm, "wsd");
  EXPECT_EQ(a.base_checkpoint, "pythia-14m/step1000");
  EXPECT_EQ(a.seed, 3);
  EXPECT_EQ(a.start_step, 1000);
  EXPECT_EQ(run.config_yaml(), kYaml);
}

TEST_F(RunFileTest, ResumeTruncatesEveryTableThenAppends) {
  {
    RunFile run = RunFile::create(path(), sample_attributes(), kYaml);
    for (std::int64_t s = 1001; s <= 1010; ++s) run.append_train(train_row(s));
    for (std::int64_t s : {1005, 1010}) {
      run.append_probe(probe_row(s));
      run.append_probe_tensors({tensor_row(s, 0), tensor_row(s, 1)});
    }
  }
  RunFile run = RunFile::open_for_append(path());
  EXPECT_EQ(run.truncate_after(1006), 4u + 1u + 2u);
  run.append_train(train_row(1007));
  run.close();

  const RunFile back = RunFile::open_read_only(path());
  EXPECT_THAT(back.train().read_ints("step"),
              ElementsAre(1001, 1002, 1003, 1004, 1005, 1006, 1007));
  EXPECT_THAT(back.probe().read_ints("step"), ElementsAre(1005));
  EXPECT_THAT(back.probe_tensors().read_ints("step"), ElementsAre(1005, 1005));
  EXPECT_EQ(back.attributes().start_step, 1000);
}

TEST_F(RunFileTest, TooLongTensorNameIsRefusedAndNothingIsWritten) {
  RunFile run = RunFile::create(path(), sample_attributes(), kYaml);
  ProbeTensorRow row = tensor_row(1000, 0);
  row.tensor = std::string(65, 'w');
  EXPECT_THAT(message_of<Error>([&] {
                run.append_probe_tensors({tensor_row(1000, 1), row});
              }),
              AllOf(HasSubstr("/probe_tensors"), HasSubstr("'tensor' str64"), HasSubstr(row.tensor),
                    HasSubstr("65 bytes")));
  EXPECT_EQ(run.probe_tensors().size(), 0u);
}

TEST_F(RunFileTest, OpeningAnotherKindOfFileNamesTheFileAndTheSchema) {
  AuditFile::create(path("audit.h5"), sample_attributes(), kYaml).close();
  EXPECT_THAT(message_of<FormatError>([&] { RunFile::open_for_append(path("audit.h5")); }),
              AllOf(HasSubstr(path("audit.h5")), HasSubstr("not a quantfork.run/3 file"),
                    HasSubstr("'quantfork.audit/3'")));
  hdf5::File::create(path("plain.h5")).close();
  EXPECT_THAT(message_of<FormatError>([&] { RunFile::open_read_only(path("plain.h5")); }),
              AllOf(HasSubstr(path("plain.h5")), HasSubstr("missing")));
  test::write_file(dir_ / "text.h5", kYaml);
  EXPECT_THAT(message_of<FormatError>([&] { AuditFile::open_read_only(path("text.h5")); }),
              AllOf(HasSubstr(path("text.h5")), HasSubstr("expected a quantfork.audit/3 file")));
  EXPECT_THROW(RunFile::open_for_append(path("absent.h5")), IoError);
}

TEST_F(RunFileTest, ChangedColumnsAreAFormatErrorNamingTheColumn) {
  {
    hdf5::File f = hdf5::File::create(path());
    f.set_string_attribute("schema", kRunSchema);
    hdf5::Schema old_train = train_schema();
    old_train[2] = hdf5::f8("loss");
    hdf5::Table::create(f, "train", old_train);
  }
  EXPECT_THAT(message_of<FormatError>([&] { RunFile::open_for_append(path()); }),
              AllOf(HasSubstr(path()), HasSubstr("/train"), HasSubstr("'loss' f8"),
                    HasSubstr("expected 'loss' f4"), HasSubstr("quantfork.run/3")));
}

TEST_F(RunFileTest, CreateWhereNoFileCanBeIsAnIoErrorAndLeavesNothing) {
  test::write_file(dir_ / "plain", "");
  const std::string p = path("plain/run.h5");
  EXPECT_THAT(message_of<IoError>([&] { RunFile::create(p, sample_attributes(), kYaml); }),
              AllOf(HasSubstr(p), HasSubstr("Not a directory")));
  EXPECT_THROW(AuditFile::create(path("none/audit.h5"), sample_attributes(), kYaml), IoError);
  RunFile::create(path(), sample_attributes(), kYaml).close();
  EXPECT_THAT(message_of<IoError>([&] { RunFile::create(path(), sample_attributes(), kYaml); }),
              HasSubstr("exists"));
  EXPECT_NO_THROW(RunFile::open_read_only(path()));  // the refused create left it whole
}

TEST_F(RunFileTest, LandmarksAreAbsentUntilWrittenAndMinusOneWhenNotFound) {
  AuditFile audit = AuditFile::create(path("audit.h5"), sample_attributes(), kYaml);
  EXPECT_EQ(audit.landmarks(), std::nullopt);
  EXPECT_FALSE(audit.file().int_attribute("divergence_onset_step"));
  audit.write_landmarks({1200, std::nullopt, 900});
  const auto found = audit.landmarks();
  ASSERT_TRUE(found);
  EXPECT_EQ(found->fp32_convergence_step, 1200);
  EXPECT_EQ(found->divergence_onset_step, std::nullopt);
  EXPECT_EQ(found->pre_divergence_step, 900);
  EXPECT_EQ(audit.file().int_attribute("divergence_onset_step"), AuditLandmarks::kNotFound);
}

TEST_F(RunFileTest, AuditResumeKeepsRowsAndReplacesPhases) {
  {
    AuditFile audit = AuditFile::create(path("audit.h5"), sample_attributes(), kYaml);
    for (std::int64_t s : {1000, 2000, 3000}) {
      AuditRow row;
      row.step = s;
      row.phase = "stable";
      audit.append_audit(row);  // lr left unknown
    }
    audit.write_phases({{"stable", 0, 3000, 0.0}});
  }
  AuditFile audit = AuditFile::open_for_append(path("audit.h5"));
  EXPECT_EQ(audit.truncate_after(2000), 1u);
  audit.write_phases({{"warmup", 0, 1000, -1.0}, {"stable", 1000, 2000, 0.5}});
  const auto rows = audit.read_audit();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_TRUE(std::isnan(rows[1].lr));
  EXPECT_EQ(rows[1].step, 2000);
  const auto phases = audit.read_phases();
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].phase, "warmup");
  EXPECT_EQ(phases[1].end_step, 2000);
  EXPECT_EQ(phases[1].slope, 0.5);
}

}  // namespace
}  // namespace qf

namespace qf {
namespace {

// A run file as an older quantfork wrote it: schema tag `tag`, /probe with `probe_columns`
// (the current columns minus those added since), no /events; returns /probe.
hdf5::Table write_old_run_file(hdf5::File& f, const std::string& tag,
                               const hdf5::Schema& probe_columns) {
  f.set_string_attribute("schema", tag);
  for (const char* name :
       {"experiment", "arm", "schedule", "base_checkpoint", "created", "version"}) {
    f.set_string_attribute(name, "x");
  }
  f.set_int_attribute("seed", 1);
  f.set_int_attribute("start_step", 0);
  f.write_string("config", "a: 1\n");
  hdf5::Table::create(f, "train", train_schema());
  hdf5::Table probe = hdf5::Table::create(f, "probe", probe_columns);
  hdf5::Table::create(f, "probe_tensors", probe_tensors_schema());
  return probe;
}

// A file of schema version 1 (before the GPTQ columns), made column by column as that
// version wrote it: still read, its missing columns NaN, and still appended to.
TEST(RunFileVersions, Version1FilesAreReadAndAppendedWithoutTheNewColumns) {
  test::TempDir dir;
  const std::string p = (dir / "v1.h5").string();
  hdf5::Schema v1_probe;
  for (const auto& c : probe_schema()) {
    if (c.name != "ppl_int4_gptq" && c.name != "gap_int4_gptq_pct" && c.name != "weights") {
      v1_probe.push_back(c);
    }
  }
  ASSERT_EQ(v1_probe.size() + 3, probe_schema().size());
  {
    hdf5::File f = hdf5::File::create(p);
    hdf5::Table probe = write_old_run_file(f, "quantfork.run/1", v1_probe);
    hdf5::RowBuilder b = probe.row();
    for (const auto& c : v1_probe) {
      if (c.type == hdf5::ColumnType::kString) {
        b.set(c.name, std::string("stable"));
      } else if (c.type == hdf5::ColumnType::kF8 || c.type == hdf5::ColumnType::kF4) {
        b.set(c.name, 2.5);
      } else {
        b.set(c.name, std::int64_t{100});
      }
    }
    probe.append(b);
  }
  RunFile f = RunFile::open_for_append(p);
  EXPECT_EQ(f.schema_version(), 1);
  ProbeRow row;
  row.step = 200;
  row.ppl_fp32 = 3;
  f.append_probe(row);  // no GPTQ value: fits the old columns
  row.step = 300;
  row.ppl_int4_gptq = 3.1;
  try {
    f.append_probe(row);
    FAIL() << "a GPTQ value was dropped silently";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("ppl_int4_gptq"), std::string::npos) << e.what();
  }
  const std::vector<ProbeRow> rows = f.read_probe();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].step, 100);
  EXPECT_EQ(rows[0].ppl_fp32, 2.5);
  EXPECT_TRUE(std::isnan(rows[0].ppl_int4_gptq));
  EXPECT_TRUE(std::isnan(rows[1].gap_int4_gptq_pct));
  EXPECT_EQ(rows[1].step, 200);
  EXPECT_EQ(rows[0].weights, kRawWeights);
}

// A file of schema version 2 (GPTQ columns, no `weights`, no /events): its rows read as
// the raw weights', and what only version 3 holds is refused, not dropped.
TEST(RunFileVersions, Version2FilesReadAsRawAndRefuseEmaRowsAndEvents) {
  test::TempDir dir;
  const std::string p = (dir / "v2.h5").string();
  hdf5::Schema v2_probe;
  for (const auto& c : probe_schema()) {
    if (c.name != "weights") v2_probe.push_back(c);
  }
  {
    hdf5::File f = hdf5::File::create(p);
    write_old_run_file(f, "quantfork.run/2", v2_probe);
  }
  RunFile f = RunFile::open_for_append(p);
  EXPECT_EQ(f.schema_version(), 2);
  ProbeRow row;
  row.step = 10;
  row.ppl_int4_gptq = 5;
  f.append_probe(row);
  row.step = 10;
  row.weights = kEmaWeights;
  try {
    f.append_probe(row);
    FAIL() << "an ema row went into a file without the weights column";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'weights'"), std::string::npos) << e.what();
  }
  EventRow event;
  event.kind = "monitor_fired";
  try {
    f.append_event(event);
    FAIL() << "an event went into a file without /events";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("quantfork.run/2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/events"), std::string::npos) << e.what();
  }
  const auto rows = f.read_probe();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].weights, kRawWeights);
  EXPECT_EQ(rows[0].ppl_int4_gptq, 5);
  EXPECT_TRUE(f.read_events().empty());
}

TEST(RunFileVersions, EventsAndEmaRowsRoundTripAndFollowResume) {
  test::TempDir dir;
  const std::string p = (dir / "run.h5").string();
  {
    RunFile f = RunFile::create_journaled(p, {}, "a: 1\n");
    for (std::int64_t step : {4, 9}) {
      ProbeRow row;
      row.step = step;
      f.append_probe(row);
      row.weights = kEmaWeights;
      row.gap_int4_pct = 1.5;
      f.append_probe(row);
      EventRow e;
      e.step = step;
      e.kind = "monitor_fired";
      e.metric = "gap_int4_pct";
      e.value = 2.5;
      e.gap_rise = 0.75;
      e.fp32_change_pct = -0.25;
      e.detail = "action: switch";
      f.append_event(e);
    }
    EventRow long_detail;
    long_detail.detail = std::string(kDetailBytes + 1, 'x');
    EXPECT_THROW(f.append_event(long_detail), Error);
  }
  {
    const RunFile f = RunFile::open_read_only(p);
    const auto events = f.read_events();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[1].step, 9);
    EXPECT_EQ(events[1].kind, "monitor_fired");
    EXPECT_EQ(events[1].metric, "gap_int4_pct");
    EXPECT_EQ(events[1].value, 2.5);
    EXPECT_EQ(events[1].gap_rise, 0.75);
    EXPECT_EQ(events[1].fp32_change_pct, -0.25);
    EXPECT_EQ(events[1].detail, "action: switch");
    const auto rows = f.read_probe();
    ASSERT_EQ(rows.size(), 4u);
    EXPECT_EQ(rows[0].weights, kRawWeights);
    EXPECT_EQ(rows[1].weights, kEmaWeights);
    EXPECT_EQ(rows[1].gap_int4_pct, 1.5);
  }
  // The journal holds them too, and a resume from step 5 drops what came after it.
  EXPECT_EQ(read_journal_rows(journal_path_for(p)).events.size(), 2u);
  RunRecovery r;
  RunFile f = RunFile::recover(p, 5, &r);
  EXPECT_EQ(r.dropped_rows, 3u);  // two /probe rows and one event at step 9
  ASSERT_EQ(f.read_events().size(), 1u);
  EXPECT_EQ(f.read_events()[0].step, 4);
  EXPECT_EQ(f.read_probe().size(), 2u);
}

TEST(RunFileVersions, NewFilesCarryTheGptqColumns) {
  test::TempDir dir;
  const std::string p = (dir / "v2.h5").string();
  {
    RunFile f = RunFile::create(p, {}, "a: 1\n");
    EXPECT_EQ(f.schema_version(), kSchemaVersion);
    ProbeRow row;
    row.step = 5;
    row.ppl_int4_gptq = 4.25;
    row.gap_int4_gptq_pct = 0.5;
    f.append_probe(row);
  }
  const auto rows = RunFile::open_read_only(p).read_probe();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].ppl_int4_gptq, 4.25);
  EXPECT_EQ(rows[0].gap_int4_gptq_pct, 0.5);
  EXPECT_EQ(AuditFile::create((dir / "a.h5").string(), {}, "a: 1\n").audit().schema().back().name,
            "gap_int4_gptq_pct");
}

}  // namespace
}  // namespace qf
