// The run journal and RunFile::recover: whatever a kill does to run.h5, the rows logged
// before it come back; a torn last journal record is dropped, not fatal.
#include "core/run_journal.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/errors.h"
#include "core/run_file.h"
#include "test_support.h"

namespace qf {
namespace {

namespace fs = std::filesystem;
using test::message_of;

RunAttributes attributes() {
  RunAttributes a;
  a.experiment = "fork";
  a.arm = "oli";
  a.seed = 2;
  a.schedule = "oli";
  a.base_checkpoint = "pythia-160m/step77000";
  a.start_step = 77000;
  return a;
}

TrainRow train_row(std::int64_t step) {
  return {step,  (step + 1) * 8192, 2.5f - static_cast<float>(step) / 100, 1e-4 + step * 1e-7, 0.5f,
          0.25f, 32768.0f};
}

ProbeRow probe_row(std::int64_t step) {
  ProbeRow r;
  r.step = step;
  r.phase = "cool";
  r.ppl_fp32 = 20 + step;
  r.gap_int4_pct = 11.5 + step;
  return r;
}

// A journaled run file with train rows 0..n-1 and a probe (with two tensor rows) at
// every 4th step.
void write_run(const std::string& path, int n) {
  RunFile f = RunFile::create_journaled(path, attributes(), "train: {steps: 100}\n");
  for (int s = 0; s < n; ++s) {
    f.append_train(train_row(s));
    if (s % 4 == 3) {
      f.append_probe(probe_row(s));
      f.append_probe_tensors(
          {{s, "gpt_neox.layers.0.mlp.dense_h_to_4h.weight", 3.0, 0.1, 0.01, 0.2},
           {s, "gpt_neox.layers.0.mlp.dense_4h_to_h.weight", 4.0, 0.2, 0.02, 0.2}});
    }
  }
}

std::vector<std::int64_t> steps_of(const std::vector<TrainRow>& rows) {
  std::vector<std::int64_t> out;
  for (const auto& r : rows) out.push_back(r.step);
  return out;
}

void overwrite(const fs::path& path, std::size_t at, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class RunJournalTest : public ::testing::Test {
 protected:
  std::string run() const { return (dir_ / "run.h5").string(); }
  fs::path journal() const { return journal_path_for(run()); }
  test::TempDir dir_;
};

TEST_F(RunJournalTest, ADestroyedRunFileIsRebuiltWithEveryRowAndAttribute) {
  write_run(run(), 20);
  std::vector<TrainRow> train;
  RunAttributes attrs;
  {
    const RunFile before = RunFile::open_read_only(run());
    train = before.read_train();
    attrs = before.attributes();
  }
  // What a kill inside an HDF5 write can leave: garbage over the file's metadata.
  overwrite(run(), 0, std::string(4096, '\xAB'));
  EXPECT_THROW(RunFile::open_read_only(run()), Error);

  RunRecovery r;
  RunFile f = RunFile::recover(run(), 1000, &r);
  EXPECT_TRUE(r.from_journal);
  EXPECT_FALSE(r.damage.empty());
  EXPECT_EQ(r.dropped_rows, 0u);
  const auto again = f.read_train();
  ASSERT_EQ(again.size(), train.size());
  for (std::size_t i = 0; i < train.size(); ++i) {
    EXPECT_EQ(again[i].loss, train[i].loss);
    EXPECT_EQ(again[i].lr, train[i].lr);
    EXPECT_EQ(again[i].tokens, train[i].tokens);
  }
  EXPECT_EQ(f.read_probe().size(), 5u);
  EXPECT_EQ(f.read_probe_tensors().size(), 10u);
  EXPECT_EQ(f.read_probe_tensors()[3].tensor, "gpt_neox.layers.0.mlp.dense_4h_to_h.weight");
  EXPECT_EQ(f.attributes().created, attrs.created);
  EXPECT_EQ(f.attributes().arm, "oli");
  EXPECT_EQ(f.attributes().start_step, 77000);
  EXPECT_EQ(f.config_yaml(), "train: {steps: 100}\n");
}

TEST_F(RunJournalTest, RecoverKeepsRowsThroughTheCheckpointAndGoesOnJournaling) {
  write_run(run(), 20);
  RunRecovery r;
  {
    RunFile f = RunFile::recover(run(), 9, &r);
    EXPECT_TRUE(r.damage.empty()) << r.damage;
    // 10 train rows, probes at 11, 15, 19 and their 6 tensor rows dropped.
    EXPECT_EQ(r.dropped_rows, 10u + 3u + 6u);
    f.append_train(train_row(10));
  }
  // The journal was rewritten without the dropped rows and takes the new one.
  fs::remove(run());
  RunFile f = RunFile::recover(run(), 1000, &r);
  EXPECT_FALSE(r.damage.empty());
  EXPECT_EQ(steps_of(f.read_train()),
            (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(f.read_probe().size(), 2u);
}

TEST_F(RunJournalTest, ATornLastRecordIsDroppedAndEverythingBeforeItKept) {
  write_run(run(), 8);
  const auto size = fs::file_size(journal());
  // A kill in the middle of the last record's write: cut it short.
  fs::resize_file(journal(), size - 7);
  const JournalContents c = RunJournal::read(journal());
  EXPECT_GT(c.torn_bytes, 0u);
  EXPECT_EQ(c.intact_bytes + c.torn_bytes, size - 7);
  RunRecovery r;
  RunFile f = RunFile::recover(run(), 1000, &r);
  EXPECT_EQ(r.torn_bytes, c.torn_bytes);
  // The last record was step 7's tensor rows; train and probe rows are all there.
  EXPECT_EQ(f.read_train().size(), 8u);
  EXPECT_EQ(f.read_probe().size(), 2u);
  EXPECT_EQ(f.read_probe_tensors().size(), 2u);
  EXPECT_EQ(RunJournal::read(journal()).torn_bytes, 0u);
}

TEST_F(RunJournalTest, AFlippedBitEndsTheIntactPrefixThere) {
  write_run(run(), 8);
  const JournalContents whole = RunJournal::read(journal());
  // Flip a byte inside the payload of the last record: its CRC no longer matches.
  std::ifstream in(journal(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  overwrite(journal(), bytes.size() - 3,
            std::string(1, static_cast<char>(bytes[bytes.size() - 3] ^ 1)));
  const JournalContents c = RunJournal::read(journal());
  EXPECT_LT(c.intact_bytes, whole.intact_bytes);
  EXPECT_GT(c.torn_bytes, 0u);
}

TEST_F(RunJournalTest, ARunFileFromBeforeJournalsIsRecoveredFromItselfAndGetsOne) {
  {
    RunFile f = RunFile::create(run(), attributes(), "x: 1\n");
    for (int s = 0; s < 6; ++s) f.append_train(train_row(s));
  }
  ASSERT_FALSE(fs::exists(journal()));
  RunRecovery r;
  RunFile f = RunFile::recover(run(), 3, &r);
  EXPECT_FALSE(r.from_journal);
  EXPECT_EQ(r.dropped_rows, 2u);
  EXPECT_TRUE(fs::exists(journal()));
  f.append_train(train_row(4));
  EXPECT_EQ(RunJournal::read(journal()).rows.at(1).size(), 5 * f.train().layout().row_bytes());
}

TEST_F(RunJournalTest, WithoutJournalADamagedRunFileIsAFormatErrorSayingWhatToDo) {
  test::write_file(run(), "not hdf5 at all");
  const std::string msg = message_of<FormatError>([&] { RunFile::recover(run(), 10); });
  EXPECT_NE(msg.find(run()), std::string::npos) << msg;
  EXPECT_NE(msg.find("no journal"), std::string::npos) << msg;
}

TEST_F(RunJournalTest, NotAJournalIsAFormatErrorNamingTheFile) {
  test::write_file(journal(), "QFJRNL0\nxx");
  const std::string msg = message_of<FormatError>([&] { RunJournal::read(journal()); });
  EXPECT_NE(msg.find(journal().string()), std::string::npos) << msg;
}

}  // namespace
}  // namespace qf
