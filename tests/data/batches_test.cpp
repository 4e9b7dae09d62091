// Batches: Pythia's order as utils/batch_viewer.py reads it (the fixture's emulation),
// fork continuation, seeded order stable across runs and platforms, rank shards that
// rebuild the single-process batch, and exact resume from a saved cursor.
#include "data/batches.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/errors.h"
#include "data/indexed_dataset_writer.h"
#include "data_test_support.h"
#include "test_support.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace qf::test {
namespace {

using data::Batch;
using data::BatchCursor;
using data::BatchOrder;
using data::BatchReader;
using data::IndexedDataset;

std::shared_ptr<const IndexedDataset> preshuffled() {
  return std::make_shared<const IndexedDataset>(
      IndexedDataset::open(fixtures_dir() / "indexed_dataset" / "preshuffled_2049_uint16"));
}

// A dataset of `docs` documents of varying lengths whose token i of the stream is i % 50000.
std::shared_ptr<const IndexedDataset> counting_dataset(const TempDir& dir, int docs) {
  data::IndexedDatasetWriter w(dir / "count", data::TokenDtype::kUInt16);
  int64_t next = 0;
  for (int d = 0; d < docs; ++d) {
    std::vector<int64_t> item(static_cast<size_t>(37 + (d * 53) % 101));
    for (auto& t : item) t = next++ % 50000;
    w.add_item(item);
    w.end_document();
  }
  w.finalize();
  return std::make_shared<const IndexedDataset>(IndexedDataset::open(dir / "count"));
}

BatchCursor cursor(BatchOrder order, int64_t seq_len, int64_t batch, uint64_t seed = 0) {
  BatchCursor c;
  c.order = order;
  c.seq_len = seq_len;
  c.global_batch = batch;
  c.seed = seed;
  return c;
}

std::string u16le(const std::vector<int64_t>& tokens) {
  std::string out;
  for (const int64_t t : tokens) {
    out += static_cast<char>(t & 0xff);
    out += static_cast<char>((t >> 8) & 0xff);
  }
  return out;
}

TEST(PythiaOrder, MatchesBatchViewerOnThePreshuffledLayout) {
  QF_REQUIRE_FIXTURE("indexed_dataset");
  const auto j = nlohmann::json::parse(
      read_file(fixtures_dir() / "indexed_dataset" / "preshuffled_2049_uint16.json"));
  const auto ds = preshuffled();
  for (const auto& e : j["batch_viewer_emulation"]) {
    const int64_t s = e["start_iteration"], last = e["end_iteration_inclusive"];
    SCOPED_TRACE("steps " + std::to_string(s) + ".." + std::to_string(last));
    BatchReader reader(ds, cursor(BatchOrder::kSequential, 2048, e["batch_size"]));
    std::vector<int64_t> rows;
    std::vector<std::vector<int64_t>> firsts;
    for (int64_t step = s; step <= last; ++step) {
      const Batch b = reader.batch(step);
      rows.insert(rows.end(), b.data.tokens.begin(), b.data.tokens.end());
      for (int64_t r = 0; r < b.data.rows; ++r) {
        firsts.emplace_back(b.data.row(r), b.data.row(r) + 8);
        // Row r of step s is item s·B + r.
        EXPECT_EQ(b.windows[static_cast<size_t>(r)], step * 8 + r);
      }
    }
    EXPECT_EQ(static_cast<int64_t>(firsts.size()), e["shape"][0].get<int64_t>());
    EXPECT_EQ(firsts, e["row_first_tokens"].get<std::vector<std::vector<int64_t>>>());
    EXPECT_EQ(sha256_hex(u16le(rows)), e["sha256_le_bytes"]);
  }
}

TEST(PythiaOrder, RowsAreItemsAndLabelsAreInputsShiftedByOne) {
  QF_REQUIRE_FIXTURE("indexed_dataset");
  const auto ds = preshuffled();
  BatchReader reader(ds, cursor(BatchOrder::kSequential, 2048, 4));
  const Batch b = reader.batch(3);
  for (int64_t r = 0; r < 4; ++r) {
    EXPECT_EQ(std::vector<int64_t>(b.data.row(r), b.data.row(r) + 2049), ds->item(12 + r));
    EXPECT_EQ(b.data.labels(r)[0], b.data.inputs(r)[1]);
  }
}

TEST(PythiaOrder, ForkAtStepNContinuesWithTheBatchOfStepN) {
  QF_REQUIRE_FIXTURE("indexed_dataset");
  const auto ds = preshuffled();
  const int64_t n = 3, batch = 4;
  BatchReader straight(ds, cursor(BatchOrder::kSequential, 2048, batch));
  BatchCursor by_cursor = cursor(BatchOrder::kSequential, 2048, batch);
  by_cursor.next_batch = n;
  BatchCursor by_start = cursor(BatchOrder::kSequential, 2048, batch);
  by_start.start_item = n * batch;
  BatchReader a(ds, by_cursor), b(ds, by_start);
  const Batch expected = straight.batch(n);
  EXPECT_EQ(a.next().data.tokens, expected.data.tokens);
  EXPECT_EQ(b.next().data.tokens, expected.data.tokens);
  EXPECT_EQ(std::vector<int64_t>(expected.data.row(0), expected.data.row(0) + 2049),
            ds->item(n * batch));
}

TEST(PythiaOrder, RunningOutOfDataIsAnErrorNotAWrapAround) {
  QF_REQUIRE_FIXTURE("indexed_dataset");
  BatchReader reader(preshuffled(), cursor(BatchOrder::kSequential, 2048, 8));
  reader.batch(4);  // items 32..39, the last
  EXPECT_THAT(message_of<Error>([&] { reader.batch(5); }),
              HasSubstr("batch 5 needs window 40, but"));
}

TEST(Windows, CrossItemBoundariesInStreamOrder) {
  TempDir dir;
  const auto ds = counting_dataset(dir, 40);
  BatchCursor c = cursor(BatchOrder::kSequential, 99, 3);
  c.start_item = 2;
  BatchReader reader(ds, c);
  const int64_t base = ds->item_offset(2);
  const Batch b = reader.batch(1);
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t k = 0; k < 100; ++k) {
      ASSERT_EQ(b.data.row(r)[k], (base + (3 + r) * 100 + k) % 50000);
    }
  }
  EXPECT_EQ(reader.num_windows(), (ds->total_tokens() - base) / 100);
}

TEST(SeededOrder, SameSeedSameBatchesOtherSeedOtherBatches) {
  TempDir dir;
  const auto ds = counting_dataset(dir, 60);
  BatchReader a(ds, cursor(BatchOrder::kSeeded, 15, 8, 1234));
  BatchReader b(ds, cursor(BatchOrder::kSeeded, 15, 8, 1234));
  BatchReader c(ds, cursor(BatchOrder::kSeeded, 15, 8, 1235));
  bool differs = false;
  for (int i = 0; i < 5; ++i) {
    const Batch x = a.next(), y = b.next(), z = c.next();
    EXPECT_EQ(x.data.tokens, y.data.tokens);
    EXPECT_EQ(x.windows, y.windows);
    differs |= x.windows != z.windows;
  }
  EXPECT_TRUE(differs);
}

TEST(SeededOrder, EachEpochVisitsEveryWindowOnceInANewOrder) {
  TempDir dir;
  const auto ds = counting_dataset(dir, 30);
  BatchReader reader(ds, cursor(BatchOrder::kSeeded, 31, 5, 7));
  const int64_t s = reader.num_windows();
  std::vector<int64_t> epoch0, epoch1;
  for (int64_t g = 0; g < s; ++g) epoch0.push_back(reader.window_of(g));
  for (int64_t g = s; g < 2 * s; ++g) epoch1.push_back(reader.window_of(g));
  EXPECT_NE(epoch0, epoch1);
  std::sort(epoch0.begin(), epoch0.end());
  std::sort(epoch1.begin(), epoch1.end());
  std::vector<int64_t> all(static_cast<size_t>(s));
  for (int64_t i = 0; i < s; ++i) all[static_cast<size_t>(i)] = i;
  EXPECT_EQ(epoch0, all);
  EXPECT_EQ(epoch1, all);
}

TEST(SeededOrder, MaxWindowsCyclesOverTheFirstWindowsOnly) {
  TempDir dir;
  const auto ds = counting_dataset(dir, 30);
  const int64_t all = BatchReader(ds, cursor(BatchOrder::kSeeded, 31, 5, 7)).num_windows();
  BatchCursor c = cursor(BatchOrder::kSeeded, 31, 5, 7);
  c.max_windows = 9;
  BatchReader reader(ds, c);
  EXPECT_EQ(reader.num_windows(), 9);
  // Four epochs over windows 0..8, each a permutation of them.
  for (int64_t e = 0; e < 4; ++e) {
    std::vector<int64_t> epoch;
    for (int64_t g = e * 9; g < (e + 1) * 9; ++g) epoch.push_back(reader.window_of(g));
    std::sort(epoch.begin(), epoch.end());
    EXPECT_EQ(epoch, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8})) << "epoch " << e;
  }
  // The tokens are those windows' tokens.
  const Batch b = reader.batch(0);
  for (int64_t r = 0; r < 5; ++r) {
    EXPECT_EQ(b.data.tokens[static_cast<size_t>(r * 32)], reader.window_of(r) * 32 % 50000);
  }
  // Saved and restored with the cursor; a cursor from before the field reads as all.
  const auto j = reader.cursor().to_json();
  EXPECT_EQ(BatchCursor::from_json(j, "s.json").max_windows, 9);
  auto old = j;
  old.erase("max_windows");
  EXPECT_EQ(BatchCursor::from_json(old, "s.json").max_windows, 0);
  c.max_windows = all + 1;
  EXPECT_THAT(message_of<ConfigError>([&] { BatchReader(ds, c); }),
              HasSubstr("data.windows " + std::to_string(all + 1) + " asks for more windows"));
}

TEST(SeededOrder, IsPinnedAcrossPlatforms) {
  // Values computed once by this implementation: any change to the permutation, the
  // mixing constants or the epoch seeds changes them and must be a conscious decision
  // (it changes what resumed runs read).
  data::FeistelPermutation p(1000, 42);
  std::vector<uint64_t> first;
  for (uint64_t i = 0; i < 8; ++i) first.push_back(p(i));
  EXPECT_EQ(first, (std::vector<uint64_t>{899, 754, 631, 534, 148, 897, 634, 156}));
  uint64_t state = 0;
  EXPECT_EQ(data::splitmix64(state), 0xe220a8397b1dcdafull);  // the published first output
}

TEST(Feistel, IsABijectionForManySizes) {
  for (uint64_t n : {1u, 2u, 3u, 4u, 5u, 17u, 64u, 255u, 1000u, 4097u}) {
    data::FeistelPermutation p(n, n * 31);
    std::set<uint64_t> seen;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t v = p(i);
      ASSERT_LT(v, n);
      seen.insert(v);
    }
    EXPECT_EQ(seen.size(), n);
  }
  EXPECT_THROW(data::FeistelPermutation(0, 1), Error);
}

TEST(Ranks, ShardsAreDisjointAndRebuildTheSingleProcessBatch) {
  TempDir dir;
  const auto ds = counting_dataset(dir, 80);
  for (const BatchOrder order : {BatchOrder::kSequential, BatchOrder::kSeeded}) {
    const BatchCursor c = cursor(order, 20, 8, 99);
    BatchReader single(ds, c);
    for (const int world : {2, 4, 8}) {
      for (int64_t step = 0; step < 4; ++step) {
        const Batch whole = single.batch(step);
        std::vector<int64_t> tokens, windows;
        for (int r = 0; r < world; ++r) {
          const Batch shard = BatchReader(ds, c, r, world).batch(step);
          EXPECT_EQ(shard.data.rows, 8 / world);
          tokens.insert(tokens.end(), shard.data.tokens.begin(), shard.data.tokens.end());
          windows.insert(windows.end(), shard.windows.begin(), shard.windows.end());
        }
        EXPECT_EQ(tokens, whole.data.tokens) << "world " << world << " step " << step;
        EXPECT_EQ(windows, whole.windows);
        EXPECT_EQ(std::set<int64_t>(windows.begin(), windows.end()).size(), windows.size());
      }
    }
  }
}

TEST(Ranks, BatchMustDivideAmongRanks) {
  TempDir dir;
  const auto ds = counting_dataset(dir, 10);
  EXPECT_THAT(message_of<ConfigError>(
                  [&] { BatchReader(ds, cursor(BatchOrder::kSequential, 8, 6), 0, 4); }),
              HasSubstr("global_batch 6 is not a multiple of the world size 4"));
  EXPECT_THAT(message_of<ConfigError>(
                  [&] { BatchReader(ds, cursor(BatchOrder::kSequential, 8, 4), 4, 4); }),
              HasSubstr("rank 4 of world size 4"));
}

TEST(Cursor, ResumeFromSavedCursorContinuesExactly) {
  TempDir dir;
  const auto ds = counting_dataset(dir, 80);
  for (const BatchOrder order : {BatchOrder::kSequential, BatchOrder::kSeeded}) {
    const int k = 3, m = 4;
    BatchReader straight(ds, cursor(order, 12, 4, 2024), 1, 2);
    std::vector<Batch> expected;
    for (int i = 0; i < k + m; ++i) expected.push_back(straight.next());

    BatchReader first(ds, cursor(order, 12, 4, 2024), 1, 2);
    for (int i = 0; i < k; ++i) first.next();
    const std::string saved = first.cursor().to_json().dump();
    const BatchCursor restored = BatchCursor::from_json(nlohmann::json::parse(saved), "state.json");
    EXPECT_EQ(restored, first.cursor());
    EXPECT_EQ(restored.next_batch, k);
    BatchReader resumed(ds, restored, 1, 2);
    for (int i = k; i < k + m; ++i) {
      const Batch b = resumed.next();
      EXPECT_EQ(b.index, i);
      EXPECT_EQ(b.data.tokens, expected[static_cast<size_t>(i)].data.tokens)
          << batch_order_name(order);
    }
  }
}

TEST(Cursor, RefusesAnotherDatasetAndMalformedJson) {
  TempDir a, b;
  const auto small = counting_dataset(a, 10), large = counting_dataset(b, 20);
  BatchReader reader(small, cursor(BatchOrder::kSequential, 8, 2));
  EXPECT_THAT(message_of<ConfigError>([&] { BatchReader(large, reader.cursor()); }),
              HasSubstr("the cursor was made for a dataset of"));
  auto j = reader.cursor().to_json();
  j.erase("seed");
  EXPECT_THAT(message_of<FormatError>([&] { BatchCursor::from_json(j, "s.json"); }),
              HasSubstr("s.json: batch cursor has no \"seed\""));
  j = reader.cursor().to_json();
  j["order"] = "random";
  EXPECT_THAT(message_of<FormatError>([&] { BatchCursor::from_json(j, "s.json"); }),
              HasSubstr("sequential or seeded"));
  j = reader.cursor().to_json();
  j["next_batch"] = "x";
  EXPECT_THAT(message_of<FormatError>([&] { BatchCursor::from_json(j, "s.json"); }),
              HasSubstr("\"next_batch\" has the wrong type"));
}

}  // namespace
}  // namespace qf::test
