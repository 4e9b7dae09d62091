// TensorBoard event files (core/tensorboard_writer.h, core/run_events.h), read back with
// the tests' own reader (tests/event_file_reader.h): framing, CRCs, tags, steps, values.
#include "core/tensorboard_writer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <random>

#include "core/crc32c.h"
#include "core/run_events.h"
#include "event_file_reader.h"
#include "test_support.h"

namespace qf {
namespace {

namespace fs = std::filesystem;

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  // RFC 3720 (iSCSI), appendix B.4.
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
}

TEST(Crc32c, TableEqualsBitByBitOnRandomBytes) {
  std::mt19937 rng(7);
  for (int n : {1, 7, 64, 1000}) {
    std::string bytes;
    for (int i = 0; i < n; ++i) bytes.push_back(static_cast<char>(rng()));
    EXPECT_EQ(crc32c(bytes), test::bitwise_crc32c(bytes)) << n << " bytes";
    EXPECT_EQ(masked_crc32c(bytes.data(), bytes.size()),
              test::tfrecord_mask(test::bitwise_crc32c(bytes)));
  }
}

TEST(TensorBoardWriter, WritesAVersionRecordThenScalarsAndTextWithValidFraming) {
  test::TempDir dir;
  fs::path path;
  {
    auto w = TensorBoardWriter::create(dir / "tb");
    path = w->path();
    w->scalar("train/loss", 0, 4.25);
    w->scalar("train/loss", 1, 3.5);
    w->scalar("train/lr", 1, 1e-4);
    w->text("run/phase", 1, "decay");
  }  // the destructor flushes
  EXPECT_EQ(path.parent_path(), dir / "tb");
  EXPECT_EQ(path.filename().string().rfind("events.out.tfevents.", 0), 0u) << path;
  const auto f = test::read_event_file(path);
  ASSERT_EQ(f.error, "");
  ASSERT_EQ(f.events.size(), 5u);
  EXPECT_EQ(f.events[0].file_version(), "brain.Event:2");
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(f.events[1].wall_time(), now, 60.0);
  ASSERT_EQ(f.scalars.size(), 3u);
  EXPECT_EQ(f.scalars[0].tag, "train/loss");
  EXPECT_EQ(f.scalars[0].step, 0);
  EXPECT_EQ(f.scalars[0].value, 4.25f);
  EXPECT_EQ(f.scalars[1].step, 1);
  EXPECT_EQ(f.scalars[1].value, 3.5f);
  EXPECT_EQ(f.scalars[2].value, static_cast<float>(1e-4));
  ASSERT_EQ(f.texts.size(), 1u);
  EXPECT_EQ(f.texts[0].text, "decay");
  // What TensorBoard's text plugin looks for.
  const auto& text_value = f.events[4].summary().value(0);
  EXPECT_EQ(text_value.metadata().plugin_data().plugin_name(), "text");
  EXPECT_EQ(text_value.tensor().dtype(), tensorboard::DT_STRING);
  EXPECT_EQ(text_value.tensor().tensor_shape().dim_size(), 0);
}

TEST(TensorBoardWriter, NothingReachesTheFileBeforeAFlush) {
  test::TempDir dir;
  auto w = TensorBoardWriter::create(dir.path());
  const auto version_only = fs::file_size(w->path());
  w->scalar("a", 1, 1.0);
  EXPECT_EQ(fs::file_size(w->path()), version_only);
  w->flush();
  EXPECT_GT(fs::file_size(w->path()), version_only);
}

TEST(TensorBoardWriter, ALaterFileSortsAfterTheEarlierOnesEvenInTheSameSecond) {
  test::TempDir dir;
  const auto first = TensorBoardWriter::create(dir.path())->path();
  const auto second = TensorBoardWriter::create(dir.path())->path();
  const auto third = TensorBoardWriter::create(dir.path())->path();
  EXPECT_LT(first.filename(), second.filename());
  EXPECT_LT(second.filename(), third.filename());
  EXPECT_EQ(test::event_files_in(dir.path()), (std::vector<fs::path>{first, second, third}));
}

TEST(TensorBoardWriter, ACutOrCorruptTailIsLeftOutByTheReader) {
  test::TempDir dir;
  fs::path path;
  {
    auto w = TensorBoardWriter::create(dir.path());
    path = w->path();
    for (int s = 0; s < 3; ++s) w->scalar("x", s, s);
  }
  const std::string whole = test::read_file(path);
  test::write_file(path, whole.substr(0, whole.size() - 3));
  std::size_t bad = 0;
  EXPECT_EQ(read_event_records(path, &bad).size(), 3u);  // the version and two scalars
  EXPECT_GT(bad, 0u);
  std::string flipped = whole;
  flipped[flipped.size() - 6] ^= 0x10;  // inside the last record's data
  test::write_file(path, flipped);
  EXPECT_EQ(read_event_records(path, &bad).size(), 3u);
  EXPECT_NE(test::read_event_file(path).error, "");
}

TEST(TensorBoardWriter, DropEventsAfterAStepRewritesEveryFileWithoutThem) {
  test::TempDir dir;
  {
    auto w = TensorBoardWriter::create(dir.path());
    for (int s = 0; s < 6; ++s) w->scalar("train/loss", s, s);
  }
  {
    auto w = TensorBoardWriter::create(dir.path());
    for (int s = 3; s < 9; ++s) w->scalar("train/loss", s, 10 + s);
    w->flush();
    // A kill in the middle of a write: a record cut short.
    const std::string cut = test::read_file(w->path());
    test::write_file(w->path(), cut.substr(0, cut.size() - 5));
  }
  // Step 5 of the first file, 5..7 of the second (its cut step 8 is not an event).
  EXPECT_EQ(drop_events_after(dir.path(), 4), 1u + 3u);
  std::vector<std::int64_t> steps;
  for (const auto& file : test::event_files_in(dir.path())) {
    const auto f = test::read_event_file(file);
    ASSERT_EQ(f.error, "") << file;
    EXPECT_EQ(f.events[0].file_version(), "brain.Event:2");
    for (const auto& s : f.scalars) steps.push_back(s.step);
  }
  EXPECT_EQ(steps, (std::vector<std::int64_t>{0, 1, 2, 3, 4, 3, 4}));
  EXPECT_EQ(drop_events_after(dir.path(), 4), 0u);
  EXPECT_EQ(drop_events_after(dir / "absent", 4), 0u);
}

TEST(RunEvents, TrainAndProbeRowsBecomeTheirTagsAndAreFlushedWhole) {
  test::TempDir dir;
  auto log = open_tensorboard_log(dir.path(), std::nullopt);
  TrainRow t;
  t.step = 7;
  t.loss = 2.5f;
  t.lr = 3e-4;
  t.grad_norm = 0.75f;
  t.tokens_per_s = 1234.5f;
  log_train_row(*log, t);
  ProbeRow p;
  p.step = 7;
  p.phase = "decay";
  p.ppl_fp32 = 20.5;
  p.gap_int4_pct = 3.25;
  p.gap_int8_pct = 0.125;
  p.kurtosis_mean = 4.5;
  log_probe_row(*log, p);
  const auto files = test::event_files_in(dir.path());
  ASSERT_EQ(files.size(), 1u);
  const auto f = test::read_event_file(files[0]);  // no flush by the test: rows flush
  ASSERT_EQ(f.error, "");
  std::map<std::string, float> at7;
  for (const auto& s : f.scalars) {
    EXPECT_EQ(s.step, 7) << s.tag;
    at7[s.tag] = s.value;
  }
  EXPECT_EQ(at7.at("train/loss"), 2.5f);
  EXPECT_EQ(at7.at("train/lr"), static_cast<float>(3e-4));
  EXPECT_EQ(at7.at("train/grad_norm"), 0.75f);
  EXPECT_EQ(at7.at("train/tokens_per_s"), 1234.5f);
  EXPECT_EQ(at7.at("probe/ppl_fp32"), 20.5f);
  EXPECT_EQ(at7.at("probe/gap_int4_pct"), 3.25f);
  EXPECT_EQ(at7.at("probe/gap_int8_pct"), 0.125f);
  EXPECT_EQ(at7.at("probe/kurtosis_mean"), 4.5f);
  // Every floating-point /probe column that holds a number, and no integer one.
  std::size_t nan_columns = 0;
  for (const auto& [column, value] : float_columns(p)) {
    EXPECT_EQ(at7.count("probe/" + column), std::isnan(value) ? 0u : 1u) << column;
    nan_columns += std::isnan(value);
  }
  EXPECT_EQ(at7.size(), 4 + float_columns(p).size() - nan_columns);
  EXPECT_EQ(at7.count("probe/step"), 0u);
  EXPECT_EQ(at7.count("probe/phase_index"), 0u);
  EXPECT_EQ(at7.count("probe/tokens_evaluated"), 0u);
}

TEST(RunEvents, ReopeningForAResumeDropsLaterStepsButANulloptKeepsThem) {
  test::TempDir dir;
  {
    auto log = open_tensorboard_log(dir.path(), -1);
    for (int s = 0; s < 5; ++s) log->scalar("x", s, s);
  }
  open_tensorboard_log(dir.path(), std::nullopt);
  std::size_t scalars = 0;
  for (const auto& file : test::event_files_in(dir.path()))
    scalars += test::read_event_file(file).scalars.size();
  EXPECT_EQ(scalars, 5u);
  open_tensorboard_log(dir.path(), 1);
  scalars = 0;
  for (const auto& file : test::event_files_in(dir.path()))
    scalars += test::read_event_file(file).scalars.size();
  EXPECT_EQ(scalars, 2u);
  // The newest file: the version, then where the run goes on from.
  const auto newest = test::read_event_file(test::event_files_in(dir.path()).back());
  ASSERT_EQ(newest.events.size(), 2u);
  EXPECT_EQ(newest.events[1].session_log().status(), tensorboard::SessionLog::START);
  EXPECT_EQ(newest.events[1].step(), 2);
}

}  // namespace
}  // namespace qf
