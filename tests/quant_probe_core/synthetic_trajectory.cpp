#include "synthetic_trajectory.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace qf::test {

namespace {

// FP32 perplexity at its minimum, and how many steps after `convergence` its fall ends.
constexpr double kBestPpl = 12.0;
constexpr double kFallEndsAfter = 10000.0;

}  // namespace

std::string shape_name(RiseShape shape) {
  switch (shape) {
    case RiseShape::LogLinear:
      return "log-linear";
    case RiseShape::LossPenalty:
      return "concave (loss penalty)";
    case RiseShape::LinearPercent:
      return "linear in percent";
    case RiseShape::Accelerating:
      return "accelerating";
  }
  return "?";
}

std::vector<std::int64_t> pythia_steps() {
  std::vector<std::int64_t> s{0};
  for (std::int64_t v = 1; v <= 512; v *= 2) s.push_back(v);
  for (std::int64_t v = 1000; v <= 143000; v += 1000) s.push_back(v);
  return s;
}

double synthetic_gap_pct(const SyntheticSpec& spec, std::int64_t step) {
  const double g0 = spec.plateau_gap_pct, g1 = spec.final_gap_pct;
  if (!spec.diverges || step <= spec.onset) return g0;
  const double u =
      static_cast<double>(step - spec.onset) / static_cast<double>(spec.final_step - spec.onset);
  switch (spec.shape) {
    case RiseShape::LogLinear:
      return g0 * std::pow(g1 / g0, u);
    case RiseShape::LossPenalty: {
      const double p0 = std::log1p(g0 / 100), p1 = std::log1p(g1 / 100);
      return 100 * std::expm1(p0 + u * (p1 - p0));
    }
    case RiseShape::LinearPercent:
      return g0 + u * (g1 - g0);
    case RiseShape::Accelerating:
      return g0 * std::pow(g1 / g0, u * u);
  }
  return g0;
}

double synthetic_ppl(const SyntheticSpec& spec, std::int64_t step) {
  // A cubic fall to kBestPpl at `fall_end`, 1 % above it half a checkpoint before
  // `convergence`; flat after, or rising linearly.
  const double s = static_cast<double>(step);
  const double fall_end = static_cast<double>(spec.convergence) + kFallEndsAfter;
  const double crossing = static_cast<double>(spec.convergence) - 500.0;
  if (s < fall_end)
    return kBestPpl * (1 + 0.01 * std::pow((fall_end - s) / (fall_end - crossing), 3));
  const double span = static_cast<double>(spec.final_step) - fall_end;
  return kBestPpl * (1 + spec.late_ppl_rise * (s - fall_end) / span);
}

std::vector<quant::TrajectoryPoint> synthetic_trajectory(const SyntheticSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<quant::TrajectoryPoint> out;
  for (std::int64_t step : spec.steps.empty() ? pythia_steps() : spec.steps) {
    const double log_gap =
        std::log(synthetic_gap_pct(spec, step)) + spec.log_gap_noise * normal(rng);
    const double ppl = synthetic_ppl(spec, step) * (1 + spec.ppl_noise * normal(rng));
    out.push_back({step, ppl, std::exp(log_gap)});
  }
  return out;
}

}  // namespace qf::test
