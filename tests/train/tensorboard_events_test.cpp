// TensorBoard event files of a real `quantfork train` run (core/run_events.h): every
// /train and /probe row of run.h5 is in them with the same step and value, once, also
// after a run that failed past its checkpoint is resumed; and Debian's python3-protobuf
// reads them too.
#include <cmath>
#include <map>
#include <set>

#include "event_file_reader.h"
#include "python_support.h"
#include "train_test_support.h"

namespace qf::test {
namespace {

namespace fs = std::filesystem;

const char* kProbe =
    "checkpoint: {every: 4}\n"
    "probe: {enabled: true, every: 3, int4_scheme: int4_asym_g32,\n"
    "        eval: {dataset: tokens, sequences: 4, seq_len: 16}}\n";

// tag -> step -> value over every event file of `tb`, failing on a step logged twice.
std::map<std::string, std::map<std::int64_t, float>> scalars_by_tag(const fs::path& tb) {
  std::map<std::string, std::map<std::int64_t, float>> out;
  for (const auto& file : event_files_in(tb)) {
    const EventFile f = read_event_file(file);
    EXPECT_EQ(f.error, "") << file;
    EXPECT_FALSE(f.events.empty()) << file;
    if (!f.events.empty()) {
      EXPECT_EQ(f.events[0].file_version(), "brain.Event:2") << file;
    }
    for (const auto& s : f.scalars) {
      EXPECT_TRUE(out[s.tag].emplace(s.step, s.value).second)
          << s.tag << " at step " << s.step << " logged twice (" << file.filename() << ")";
    }
  }
  return out;
}

void expect_events_equal_run_file(const fs::path& run) {
  const auto by_tag = scalars_by_tag(run / "tb");
  const RunFile f = RunFile::open_read_only((run / "run.h5").string());
  const auto train = f.read_train();
  ASSERT_FALSE(train.empty());
  for (const char* tag : {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s"}) {
    ASSERT_EQ(by_tag.count(tag), 1u) << tag;
    EXPECT_EQ(by_tag.at(tag).size(), train.size()) << tag;
  }
  for (const auto& row : train) {
    EXPECT_EQ(by_tag.at("train/loss").at(row.step), row.loss) << row.step;
    EXPECT_EQ(by_tag.at("train/lr").at(row.step), static_cast<float>(row.lr)) << row.step;
    EXPECT_EQ(by_tag.at("train/grad_norm").at(row.step), row.grad_norm) << row.step;
    EXPECT_EQ(by_tag.at("train/tokens_per_s").at(row.step), row.tokens_per_s) << row.step;
  }
  const auto probes = f.read_probe();
  ASSERT_FALSE(probes.empty());
  for (const char* tag :
       {"probe/ppl_fp32", "probe/gap_int4_pct", "probe/gap_int8_pct", "probe/kurtosis_mean"}) {
    ASSERT_EQ(by_tag.count(tag), 1u) << tag;
    EXPECT_EQ(by_tag.at(tag).size(), probes.size()) << tag;
  }
  for (const auto& p : probes) {
    EXPECT_EQ(by_tag.at("probe/ppl_fp32").at(p.step), static_cast<float>(p.ppl_fp32));
    EXPECT_EQ(by_tag.at("probe/gap_int4_pct").at(p.step), static_cast<float>(p.gap_int4_pct));
    EXPECT_EQ(by_tag.at("probe/gap_int8_pct").at(p.step), static_cast<float>(p.gap_int8_pct));
    EXPECT_EQ(by_tag.at("probe/kurtosis_mean").at(p.step), static_cast<float>(p.kurtosis_mean));
  }
}

using TensorBoardEvents = TinyRunTest;

TEST_F(TensorBoardEvents, EqualRunFileRowsAndAResumeAfterAFailureLogsNoStepTwice) {
  write_run_config(dir_.path(), kProbe);
  // Fails at update 9, after the checkpoint of update 8 (run_steps 8) and rows 0..8.
  auto r = run_quantfork("train --config run.yaml --set debug.inject_nan_at_step=9", dir_.path());
  ASSERT_EQ(r.exit_code, 1) << r.err;
  ASSERT_EQ(event_files_in(dir_ / "run/tb").size(), 1u);
  EXPECT_EQ(scalars_by_tag(dir_ / "run/tb").at("train/loss").rbegin()->first, 8);
  r = run_quantfork("train --config run.yaml", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A new file, later in TensorBoard's (name) order; row 8 was logged again after the
  // resume and appears once.
  const auto files = event_files_in(dir_ / "run/tb");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(read_event_file(files[0]).scalars.back().step, 7);
  const EventFile resumed = read_event_file(files[1]);
  EXPECT_EQ(resumed.scalars.front().step, 8);
  // It says so, for a TensorBoard that had read the dropped events already.
  ASSERT_GE(resumed.events.size(), 2u);
  EXPECT_EQ(resumed.events[1].session_log().status(), tensorboard::SessionLog::START);
  EXPECT_EQ(resumed.events[1].step(), 8);
  expect_events_equal_run_file(dir_ / "run");
  // The phase, as text, at the first update of each phase.
  std::vector<TextEvent> texts;
  for (const auto& file : files) {
    for (const auto& t : read_event_file(file).texts) texts.push_back(t);
  }
  ASSERT_FALSE(texts.empty());
  EXPECT_EQ(texts[0].tag, "run/phase");
  EXPECT_EQ(texts[0].step, 0);
  EXPECT_NE(texts[0].text.find("from update 0"), std::string::npos) << texts[0].text;
}

TEST_F(TensorBoardEvents, AreOffWithLogTensorboardFalse) {
  write_run_config(dir_.path(), "log: {tensorboard: false}\n", "run.yaml", {{"steps", "3"}});
  const auto r = run_quantfork("train --config run.yaml", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "run/tb"));
}

TEST_F(TensorBoardEvents, AnAuditWritesItsProbeScalarsAtEachCheckpointsStep) {
  write_run_config(dir_.path(), "checkpoint: {every: 4}\n");
  ASSERT_EQ(run_quantfork("train --config run.yaml", dir_.path()).exit_code, 0);
  const auto r = run_quantfork(
      "audit --out audits/a.h5 --eval tokens --set probe.eval.sequences=4 "
      "--set probe.eval.seq_len=16 --set probe.int4_scheme=int4_asym_g32 'run/checkpoints/step*'",
      dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto by_tag = scalars_by_tag(dir_ / "audits/tb/a");
  const auto rows = AuditFile::open_read_only((dir_ / "audits/a.h5").string()).read_audit();
  ASSERT_GE(rows.size(), 2u);
  ASSERT_EQ(by_tag.at("probe/gap_int4_pct").size(), rows.size());
  for (const auto& row : rows) {
    EXPECT_EQ(by_tag.at("probe/gap_int4_pct").at(row.step), static_cast<float>(row.gap_int4_pct));
    EXPECT_EQ(by_tag.at("probe/ppl_fp32").at(row.step), static_cast<float>(row.ppl_fp32));
  }
  EXPECT_EQ(by_tag.count("train/loss"), 0u);
}

// The same files through protoc's Python classes and h5py, with a CRC-32C of Python's own.
TEST_F(TensorBoardEvents, ReadBackWithPythonProtobuf) {
  write_run_config(dir_.path(), kProbe, "run.yaml", {{"steps", "7"}});
  const auto r = run_quantfork("train --config run.yaml", dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path proto_dir = fs::path(QF_SOURCE_DIR) / "core";
  const std::string protoc = "protoc -I '" + proto_dir.string() + "' --python_out='" +
                             dir_.path().string() + "' '" +
                             (proto_dir / "tensorboard_event.proto").string() + "'";
  ASSERT_EQ(std::system(protoc.c_str()), 0) << protoc << " (protoc: scripts/setup.sh)";
  QF_RUN_PYTHON(R"(
import glob, struct, h5py
import tensorboard_event_pb2 as pb

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

scalars = {}
for path in sorted(glob.glob("run/tb/events.out.tfevents.*")):
    raw = open(path, "rb").read()
    at, first = 0, True
    while at < len(raw):
        (length,) = struct.unpack("<Q", raw[at:at + 8])
        assert struct.unpack("<I", raw[at + 8:at + 12])[0] == masked(raw[at:at + 8]), path
        data = raw[at + 12:at + 12 + length]
        assert struct.unpack("<I", raw[at + 12 + length:at + 16 + length])[0] == masked(data)
        at += 16 + length
        event = pb.Event()
        event.ParseFromString(data)
        if first:
            assert event.file_version == "brain.Event:2", event
            first = False
        for v in event.summary.value:
            if v.WhichOneof("value") == "simple_value":
                key = (v.tag, event.step)
                assert key not in scalars, key
                scalars[key] = v.simple_value

f = h5py.File("run/run.h5", "r")
train, probe = f["train"][:], f["probe"][:]
assert len(train) == 7 and len(probe) > 0
for row in train:
    assert scalars[("train/loss", int(row["step"]))] == row["loss"], row
    assert scalars[("train/grad_norm", int(row["step"]))] == row["grad_norm"], row
for row in probe:
    key = ("probe/gap_int4_pct", int(row["step"]))
    assert abs(scalars[key] - row["gap_int4_pct"]) <= 1e-6 * max(1.0, abs(row["gap_int4_pct"])), key
n_train = sum(1 for (tag, _) in scalars if tag == "train/loss")
assert n_train == len(train), (n_train, len(train))
print("ok", len(scalars))
)",
                dir_.path());
}

}  // namespace
}  // namespace qf::test
