// Fuzzes the trajectory CSV reader of `quantfork phases`: arbitrary bytes as a CSV, then
// the phases of whatever rows it accepts. Anything but a qf::Error escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/errors.h"
#include "quant_probe/phases_io.h"
#include "quant_probe/trajectory_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto rows = qf::quant::parse_trajectory_csv(text, "fuzz.csv");
    const auto report = qf::quant::detect_phases(qf::quant::trajectory_points(rows), {});
    if (report.findings.empty()) __builtin_trap();  // there is always a verdict
    // A pre-divergence checkpoint exactly when there is an onset, and at it.
    if (report.pre_divergence_step != report.divergence_onset_step) __builtin_trap();
  } catch (const qf::Error&) {
  }
  return 0;
}
