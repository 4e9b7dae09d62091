#pragma once
// The fused CPU kernel behind quantize() and fake_quantize_into() (quantize.h): two passes
// over each group (min/max, then quantize), parallel over groups, in one of the instruction
// sets of KernelIsa. Internal to quant_probe.
#include <cstdint>

#include "quant_probe/quantize.h"

namespace qf::quant::kernel {

struct Kernel {
  const float* w;       // [groups, group] float32, contiguous
  float* dequantized;   // same shape; may be w itself (in place)
  std::uint8_t* codes;  // null: not wanted; int8 codes are stored as their bit pattern
  float* scales;        // [groups]; null: not wanted
  float* zeros;         // [groups]; null: not wanted
  std::int64_t group;
  float qmin, qmax;
  bool symmetric;
};

// Runs k over `groups` groups in the kernel_isa() in use. The sums are added per group,
// in group order, whatever the thread count.
QuantErrorSums run(const Kernel& k, std::int64_t groups);

}  // namespace qf::quant::kernel
