#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of TFRecord
// framing (core/tensorboard_writer.h). zlib only has the other CRC-32, so it is here.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace qf {

// Table-driven, one byte at a time. crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(const void* data, std::size_t bytes);
inline std::uint32_t crc32c(std::string_view s) {
  return crc32c(s.data(), s.size());
}

// TFRecord's masked form: rotate right by 15 and add a constant, so that a CRC stored
// inside data that is itself checksummed does not weaken the outer check.
inline std::uint32_t masked_crc32c(const void* data, std::size_t bytes) {
  const std::uint32_t crc = crc32c(data, bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

}  // namespace qf
