#pragma once
// Training batches from an indexed dataset, in Pythia's order or in a seeded order, split
// across data-parallel ranks, resumable from a cursor.
//
// Windows. The dataset's tokens, items in .bin order, form one stream; from the first
// token of `start_item` on it is cut into consecutive windows of T + 1 tokens (T =
// seq_len). In Pythia's pre-shuffled Pile every item is 2049 tokens, so with T = 2048
// window k is exactly item start_item + k, which is what Pythia's utils/batch_viewer.py
// reads.
//
// Orders. Global row g (rows of all batches one after another, g = b·B + j for row j of
// batch b, B = global_batch) reads window
//   sequential: g                          (error past the last window: no silent reuse)
//   seeded:     P_e(g mod S), e = g div S  (S windows; P_e a seeded permutation,
//                                           permutation.h, new for every epoch e)
// S is every window from start_item on, or the first max_windows of them (data.windows).
// Sequential with B = 1024 and start_item = 0 is Pythia's training order: the batch of
// step s is items [s·1024, (s+1)·1024). Pythia's checkpoint `stepN` has been trained on
// steps 0..N-1, so a fork from it continues with the batch of step N, the (N+1)-th update:
// items [N·1024, (N+1)·1024). Set start_item = N·1024 (the fork's batch 0 is then that
// batch), or keep start_item = 0 and set the cursor's next_batch = N; both read the same
// items.
//
// Ranks. Rank r of W takes rows [r·B/W, (r+1)·B/W) of every global batch (B must be a
// multiple of W): the shards are disjoint and, in rank order, are the single-process
// batch.
//
// Cursor. All ranks share one cursor; it counts global batches, so a checkpoint stores
// it as JSON and a resumed reader continues with exactly the next batch.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/config_schema.h"
#include "data/indexed_dataset.h"
#include "data/permutation.h"
#include "data/token_rows.h"

namespace qf::data {

enum class BatchOrder { kSequential, kSeeded };
// The orders' names ("sequential", "seeded"): data.order's choices and the cursor's JSON.
const EnumNames<BatchOrder>& batch_order_names();
const char* batch_order_name(BatchOrder o);
std::optional<BatchOrder> batch_order_from_name(const std::string& name);

struct BatchCursor {
  BatchOrder order = BatchOrder::kSequential;
  int64_t seq_len = 2048;       // T: rows hold T + 1 tokens
  int64_t global_batch = 1024;  // B: rows per step over all ranks
  int64_t start_item = 0;       // windows start at this item's first token
  uint64_t seed = 0;            // seeded order only: fixes which windows and in what order
  int64_t next_batch = 0;       // global batches already handed out
  // The stream's first this-many windows only (0: all): a smaller corpus read for more
  // epochs (data.windows). Absent from cursors written before it existed: 0.
  int64_t max_windows = 0;
  // Tokens of the dataset the cursor belongs to; checked on resume (-1: not bound yet).
  int64_t dataset_tokens = -1;

  nlohmann::json to_json() const;
  // `where` names the source in errors (e.g. "checkpoints/step100/trainer_state.json").
  static BatchCursor from_json(const nlohmann::json& j, const std::string& where);
  bool operator==(const BatchCursor& o) const;
};

struct Batch {
  int64_t index = 0;             // global batch number
  std::vector<int64_t> windows;  // the window each row reads
  TokenRows data;                // this rank's rows
};

class BatchReader {
 public:
  // ConfigError when the cursor does not fit the dataset or the world size.
  BatchReader(std::shared_ptr<const IndexedDataset> dataset, BatchCursor cursor, int rank = 0,
              int world_size = 1);

  // This rank's rows of global batch cursor().next_batch; advances the cursor.
  Batch next();
  // This rank's rows of global batch `index`, without moving the cursor.
  Batch batch(int64_t index) const;
  // The window global row g reads.
  int64_t window_of(int64_t global_row) const;

  const BatchCursor& cursor() const { return cursor_; }
  int64_t num_windows() const { return num_windows_; }
  int64_t rows_per_rank() const { return cursor_.global_batch / world_size_; }

 private:
  std::shared_ptr<const IndexedDataset> dataset_;
  BatchCursor cursor_;
  int rank_, world_size_;
  int64_t first_token_ = 0;  // first token of start_item in the stream
  int64_t num_windows_ = 0;
};

}  // namespace qf::data
