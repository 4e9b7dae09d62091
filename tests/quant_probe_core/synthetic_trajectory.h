#pragma once
// Paper-shaped synthetic trajectories with a known divergence onset, for checking the phase
// detector: an INT4 gap flat at `plateau_gap_pct` up to `onset`, then rising to
// `final_gap_pct` at `final_step` along one of four shapes, with seeded normal noise on
// the log gap; FP32 perplexity falls fast, comes within 1 % of its minimum at
// `convergence` and flattens, optionally rising again late.
#include <cstdint>
#include <string>
#include <vector>

#include "quant_probe/phases.h"

namespace qf::test {

enum class RiseShape {
  LogLinear,      // log(gap) linear in the step
  LossPenalty,    // the INT4 loss penalty log(1 + gap/100) linear: log(gap) concave
  LinearPercent,  // the gap in percent linear: log(gap) more concave still
  Accelerating,   // log(gap) quadratic from the onset: convex
};

inline constexpr RiseShape kRiseShapes[] = {RiseShape::LogLinear, RiseShape::LossPenalty,
                                            RiseShape::LinearPercent, RiseShape::Accelerating};

std::string shape_name(RiseShape shape);

struct SyntheticSpec {
  RiseShape shape = RiseShape::LogLinear;
  std::int64_t onset = 77000;  // the last checkpoint on the plateau
  // The first checkpoint at which FP32 perplexity is within 1 % of its minimum (the
  // crossing is half a checkpoint before it, so noise cannot move it).
  std::int64_t convergence = 77000;
  std::int64_t final_step = 143000;
  double plateau_gap_pct = 11.0, final_gap_pct = 517.0;
  // The gap rises at all: false keeps it on the plateau to the end.
  bool diverges = true;
  double log_gap_noise = 0.0;  // sd of normal noise added to log(gap)
  double ppl_noise = 2e-4;     // sd of relative normal noise on ppl_fp32
  // FP32 perplexity rises again by this fraction from where its fall ends (10 checkpoints
  // after `convergence`) to `final_step`: Pythia-160m's does.
  double late_ppl_rise = 0.0;
  std::uint64_t seed = 1;
  std::vector<std::int64_t> steps;  // empty: Pythia's 154 checkpoint steps
};

// 0, 1, 2, 4, ..., 512, then 1000, 2000, ..., 143000.
std::vector<std::int64_t> pythia_steps();

// The noise-free gap and perplexity at `step`.
double synthetic_gap_pct(const SyntheticSpec& spec, std::int64_t step);
double synthetic_ppl(const SyntheticSpec& spec, std::int64_t step);

// One point per step of spec.steps, with noise from std::mt19937_64(spec.seed).
std::vector<quant::TrajectoryPoint> synthetic_trajectory(const SyntheticSpec& spec);

}  // namespace qf::test
