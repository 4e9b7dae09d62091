#include "data/batches.h"

#include "core/errors.h"
#include "core/json_field.h"

namespace qf::data {
namespace {

// The seed of epoch e's permutation: every epoch reshuffles, and (seed, e) pairs do not
// collide in practice because both go through the bijective mix.
uint64_t epoch_seed(uint64_t seed, uint64_t epoch) {
  return mix64(seed ^ mix64(epoch + 0x632be59bd9b4e019ull));
}

}  // namespace

const EnumNames<BatchOrder>& batch_order_names() {
  static const EnumNames<BatchOrder> names = {{"sequential", BatchOrder::kSequential},
                                              {"seeded", BatchOrder::kSeeded}};
  return names;
}

const char* batch_order_name(BatchOrder o) {
  for (const auto& [name, value] : batch_order_names()) {
    if (value == o) return name.c_str();
  }
  return "?";
}

std::optional<BatchOrder> batch_order_from_name(const std::string& name) {
  for (const auto& [n, value] : batch_order_names()) {
    if (n == name) return value;
  }
  return std::nullopt;
}

nlohmann::json BatchCursor::to_json() const {
  return {{"order", batch_order_name(order)},
          {"seq_len", seq_len},
          {"global_batch", global_batch},
          {"start_item", start_item},
          {"seed", seed},
          {"next_batch", next_batch},
          {"dataset_tokens", dataset_tokens},
          {"max_windows", max_windows}};
}

BatchCursor BatchCursor::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw FormatError(where + ": batch cursor is not a JSON object");
  const std::string what = where + ": batch cursor";
  BatchCursor c;
  const auto order = batch_order_from_name(json_field<std::string>(j, "order", what));
  if (!order) throw FormatError(where + ": batch cursor order must be sequential or seeded");
  c.order = *order;
  c.seq_len = json_field<int64_t>(j, "seq_len", what);
  c.global_batch = json_field<int64_t>(j, "global_batch", what);
  c.start_item = json_field<int64_t>(j, "start_item", what);
  c.seed = json_field<uint64_t>(j, "seed", what);
  c.next_batch = json_field<int64_t>(j, "next_batch", what);
  c.dataset_tokens = json_field<int64_t>(j, "dataset_tokens", what);
  if (j.contains("max_windows")) c.max_windows = json_field<int64_t>(j, "max_windows", what);
  return c;
}

bool BatchCursor::operator==(const BatchCursor& o) const {
  return order == o.order && seq_len == o.seq_len && global_batch == o.global_batch &&
         start_item == o.start_item && seed == o.seed && next_batch == o.next_batch &&
         dataset_tokens == o.dataset_tokens && max_windows == o.max_windows;
}

BatchReader::BatchReader(std::shared_ptr<const IndexedDataset> dataset, BatchCursor cursor,
                         int rank, int world_size)
    : dataset_(std::move(dataset)), cursor_(cursor), rank_(rank), world_size_(world_size) {
  const std::string name = dataset_->bin_path().string();
  const auto bad = [&](const std::string& what) { return ConfigError("batches: " + what); };
  if (cursor_.seq_len < 1)
    throw bad("seq_len must be at least 1, got " + std::to_string(cursor_.seq_len));
  if (cursor_.global_batch < 1) {
    throw bad("global_batch must be at least 1, got " + std::to_string(cursor_.global_batch));
  }
  if (world_size_ < 1 || rank_ < 0 || rank_ >= world_size_) {
    throw bad("rank " + std::to_string(rank_) + " of world size " + std::to_string(world_size_));
  }
  if (cursor_.global_batch % world_size_ != 0) {
    throw bad("global_batch " + std::to_string(cursor_.global_batch) +
              " is not a multiple of the world size " + std::to_string(world_size_));
  }
  if (cursor_.next_batch < 0) throw bad("next_batch is negative");
  if (cursor_.start_item < 0 || cursor_.start_item > dataset_->num_items()) {
    throw bad("start_item " + std::to_string(cursor_.start_item) + " is outside " + name + " (" +
              std::to_string(dataset_->num_items()) + " items)");
  }
  if (cursor_.dataset_tokens < 0) {
    cursor_.dataset_tokens = dataset_->total_tokens();
  } else if (cursor_.dataset_tokens != dataset_->total_tokens()) {
    throw bad("the cursor was made for a dataset of " + std::to_string(cursor_.dataset_tokens) +
              " tokens, but " + name + " has " + std::to_string(dataset_->total_tokens()));
  }
  first_token_ = dataset_->item_offset(cursor_.start_item);
  num_windows_ = (dataset_->total_tokens() - first_token_) / (cursor_.seq_len + 1);
  if (num_windows_ == 0) {
    throw bad(name + " has " + std::to_string(dataset_->total_tokens() - first_token_) +
              " tokens from item " + std::to_string(cursor_.start_item) +
              ", not even one window of seq_len + 1 = " + std::to_string(cursor_.seq_len + 1));
  }
  if (cursor_.max_windows < 0) throw bad("max_windows (data.windows) is negative");
  if (cursor_.max_windows > num_windows_) {
    throw bad("data.windows " + std::to_string(cursor_.max_windows) +
              " asks for more windows than " + name + " holds: " + std::to_string(num_windows_) +
              " of " + std::to_string(cursor_.seq_len + 1) + " tokens from item " +
              std::to_string(cursor_.start_item));
  }
  if (cursor_.max_windows > 0) num_windows_ = cursor_.max_windows;
}

int64_t BatchReader::window_of(int64_t g) const {
  if (cursor_.order == BatchOrder::kSequential) {
    if (g >= num_windows_) {
      throw Error("batches: batch " + std::to_string(g / cursor_.global_batch) + " needs window " +
                  std::to_string(g) + ", but " + dataset_->bin_path().string() + " holds only " +
                  std::to_string(num_windows_) + " windows of " +
                  std::to_string(cursor_.seq_len + 1) + " tokens from item " +
                  std::to_string(cursor_.start_item) +
                  " (sequential order never reuses data; the seeded order runs epochs)");
    }
    return g;
  }
  const auto s = static_cast<uint64_t>(num_windows_);
  const auto epoch = static_cast<uint64_t>(g) / s;
  const FeistelPermutation p(s, epoch_seed(cursor_.seed, epoch));
  return static_cast<int64_t>(p(static_cast<uint64_t>(g) % s));
}

Batch BatchReader::batch(int64_t index) const {
  const int64_t rows = rows_per_rank();
  const int64_t row_tokens = cursor_.seq_len + 1;
  Batch b;
  b.index = index;
  b.data.rows = rows;
  b.data.row_tokens = row_tokens;
  b.data.tokens.resize(static_cast<size_t>(rows * row_tokens));
  b.windows.resize(static_cast<size_t>(rows));
  const int64_t first_row = index * cursor_.global_batch + rank_ * rows;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t w = window_of(first_row + r);
    b.windows[static_cast<size_t>(r)] = w;
    dataset_->read_tokens(first_token_ + w * row_tokens, row_tokens,
                          b.data.tokens.data() + r * row_tokens);
  }
  return b;
}

Batch BatchReader::next() {
  Batch b = batch(cursor_.next_batch);
  ++cursor_.next_batch;
  return b;
}

}  // namespace qf::data
