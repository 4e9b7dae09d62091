#pragma once
// The tests' own reader of TensorBoard event files, apart from core/tensorboard_writer.cpp
// so that a framing bug in the writer cannot hide behind a reader that shares its code:
// CRC-32C bit by bit (the writer uses a table), every length and CRC checked, and the
// records parsed with the classes generated from core/tensorboard_event.proto.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensorboard_event.pb.h"
#include "test_support.h"

namespace qf::test {

inline std::uint32_t bitwise_crc32c(const std::string& bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline std::uint32_t tfrecord_mask(std::uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

struct ScalarEvent {
  std::string tag;
  std::int64_t step = 0;
  float value = 0;
};
struct TextEvent {
  std::string tag;
  std::int64_t step = 0;
  std::string text;
};

struct EventFile {
  std::string error;                       // the first framing or parsing problem; empty when none
  std::vector<tensorboard::Event> events;  // every record, in order
  std::vector<ScalarEvent> scalars;
  std::vector<TextEvent> texts;
};

inline EventFile read_event_file(const std::filesystem::path& path) {
  EventFile out;
  const std::string all = read_file(path);
  auto le = [&](std::size_t at, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      v |= static_cast<std::uint64_t>(static_cast<unsigned char>(all[at + i])) << (8 * i);
    }
    return v;
  };
  std::size_t at = 0;
  auto fail = [&](const std::string& why) {
    out.error = path.filename().string() + " at byte " + std::to_string(at) + ": " + why;
    return out;
  };
  while (at < all.size()) {
    if (all.size() - at < 12) return fail("a cut length");
    const std::uint64_t length = le(at, 8);
    if (le(at + 8, 4) != tfrecord_mask(bitwise_crc32c(all.substr(at, 8)))) {
      return fail("bad length CRC");
    }
    if (all.size() - at - 12 < length + 4) return fail("cut data");
    const std::string data = all.substr(at + 12, length);
    if (le(at + 12 + length, 4) != tfrecord_mask(bitwise_crc32c(data))) {
      return fail("bad data CRC");
    }
    tensorboard::Event e;
    if (!e.ParseFromString(data)) return fail("not an Event");
    for (const auto& v : e.summary().value()) {
      if (v.has_simple_value()) out.scalars.push_back({v.tag(), e.step(), v.simple_value()});
      if (v.has_tensor() && v.tensor().string_val_size() == 1) {
        out.texts.push_back({v.tag(), e.step(), v.tensor().string_val(0)});
      }
    }
    out.events.push_back(std::move(e));
    at += 12 + length + 4;
  }
  return out;
}

// The event files of `dir`, in name order (TensorBoard's reading order).
inline std::vector<std::filesystem::path> event_files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().find("tfevents") != std::string::npos) {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace qf::test
