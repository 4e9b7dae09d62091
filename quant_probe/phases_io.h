#pragma once
// The phases of a trajectory outside phases.h's arithmetic: the audit.phases.* keys, the
// phases written into an audit file, and the phases as terminal text and as JSON. No
// libtorch: `quantfork audit` and `quantfork phases` share all of it.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/run_file.h"
#include "quant_probe/phases.h"

namespace qf::quant {

// The /audit phase of a checkpoint the audit could not probe (its values are NaN); a later
// good row of the same step supersedes it.
inline constexpr const char* kFailedProbePhase = "failed";

// audit.phases.*: the PhaseOptions, documented.
void declare_phase_config(ConfigSchema& schema);
// The validated options of a configuration resolved against declare_phase_config.
PhaseOptions phase_options(const Config& config);

// The last good row (not kFailedProbePhase) of each step, in step order: a re-probed
// checkpoint counts once.
std::vector<AuditRow> last_good_rows(const std::vector<AuditRow>& rows);
// The points the phases are fitted to: those of last_good_rows.
std::vector<TrajectoryPoint> trajectory_points(const std::vector<AuditRow>& rows);

// The phases of the rows of an audit file, written back into it: /phases (the two-knot
// fit's segments, named by segment_phases), the landmarks, and the root attributes
// phase_verdict (the findings, one per line), converged_inside (0/1), breakpoint_1_step /
// breakpoint_2_step (−1 without a fit), lag_steps (a float, NaN without a divergence)
// and slope_low_K / slope_high_K (segment K's interval, NaN without a fit). Every
// attribute is written every time, so a rerun leaves none stale.
PhaseReport detect_and_write_phases(AuditFile& file, const PhaseOptions& options);

// The findings and segments as text for the terminal.
std::string format_phases(const PhaseReport& report);

// {"fp32_convergence_step", "divergence_onset_step", "pre_divergence_step" (null when not
// found), "segments": [{"phase", "start_step", "end_step", "slope"}], "findings": [text]}.
nlohmann::json phases_json(const PhaseReport& report);

}  // namespace qf::quant
