// The fused CPU kernel and the torch-operation path held to the plain scalar reference
// on random and adversarial weights, for every bit width, both kinds and several groups.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "quant_test_support.h"

namespace qf::test {
namespace {

// Weights that stress the corners: constant, zero and tiny groups, single outliers,
// ±0, exact ties, values far larger than their group's range.
at::Tensor corner_cases(std::uint64_t seed) {
  at::Tensor w = random_weights(24, 256, seed);
  w[0].narrow(0, 0, 64).fill_(0.0137);   // positive constant group
  w[1].narrow(0, 64, 64).fill_(-0.021);  // negative constant group
  w[2].zero_();                          // zero row
  w[3].narrow(0, 0, 128).fill_(-0.0);    // −0 everywhere in a group
  w[4].narrow(0, 0, 128).copy_(at::arange(128) / 256.0 * (at::arange(128).remainder(2) * 2 - 1));
  w[5][7] = 3.0;                      // one huge outlier
  w[6].narrow(0, 0, 64).fill_(1e-7);  // range below the 1e-5 clamp
  w[7].narrow(0, 0, 64).copy_(random_weights(1, 64, seed + 1)[0] * 1e-9);  // tiny range
  w[8].narrow(0, 0, 64).add_(100.0);                   // |w| / scale beyond 2^23
  w[9] = at::arange(256).to(at::kFloat) / 32.0 - 4.0;  // exact ties for many scales
  w[10].narrow(0, 0, 64).copy_(random_weights(1, 64, seed + 2)[0] + 5e4);
  w[11][3] = -1e-30;  // denormal-ish magnitudes
  w[11][4] = 1e-38;
  w[12].narrow(0, 128, 64).fill_(0.5);
  w[12][130] = -0.0;
  return w;
}

void expect_same(const quant::Quantized& q, const quant::Quantized& ref) {
  EXPECT_EQ(count_differences(q.dequantized, ref.dequantized), 0);
  EXPECT_EQ(count_differences(q.codes, ref.codes), 0);
  EXPECT_EQ(count_differences(q.scales, ref.scales), 0);
  EXPECT_EQ(count_differences(q.zeros, ref.zeros), 0);
}

// The torch-operation path, and the fused kernel in every instruction set this CPU has.
void expect_paths_agree(const at::Tensor& w, const quant::QuantScheme& s) {
  SCOPED_TRACE(s.name());
  const quant::Quantized ref = reference_as_tensors(w, s);
  {
    SCOPED_TRACE("torch ops");
    expect_same(quant::quantize_torch_ops(w, s), ref);
  }
  const at::Tensor c = w.contiguous();
  const auto r = quant::quantize_reference(c.data_ptr<float>(), c.size(0), c.size(1), s);
  const double err = (w.to(at::kDouble) - ref.dequantized.to(at::kDouble)).norm().item<double>();
  for (const quant::KernelIsa isa : quant::available_kernel_isas()) {
    const quant::ScopedKernelIsa use(isa);
    SCOPED_TRACE(std::string("fused, ") + quant::kernel_isa_name(isa));
    expect_same(quant::quantize(w, s), ref);
    // The probe's path: ŵ in place, and the sums against the reference's.
    const at::Tensor inplace = w.clone();
    const auto sums = quant::fake_quantize_into(inplace, inplace, s);
    EXPECT_EQ(count_differences(inplace, ref.dequantized), 0);
    if (std::isfinite(r.residual_sum)) {
      EXPECT_NEAR(sums.residual, r.residual_sum, 1e-9 * std::max(1.0, r.residual_sum));
    }
    if (std::isfinite(err) && w.abs().sum().item<double>() > 0) {
      EXPECT_NEAR(sums.relative_error(), err / w.to(at::kDouble).norm().item<double>(), 1e-12);
    }
  }
}

std::vector<quant::QuantScheme> all_schemes() {
  std::vector<quant::QuantScheme> out;
  for (int bits = 2; bits <= 8; ++bits) {
    for (bool sym : {false, true}) {
      for (std::int64_t g : {0, 32, 64, 128}) out.push_back({bits, sym, g});
    }
  }
  return out;
}

TEST(QuantizePaths, AgreeOnRandomWeights) {
  const at::Tensor w = random_weights(48, 512, 7);
  for (const auto& s : all_schemes()) expect_paths_agree(w, s);
}

TEST(QuantizePaths, AgreeOnHeavyTailedWeights) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  // Cauchy weights: many groups are set by one outlier.
  const at::Tensor w = at::empty({32, 256}, at::kFloat).cauchy_(0.0, 0.01, gen);
  for (const auto& s : all_schemes()) expect_paths_agree(w, s);
}

TEST(QuantizePaths, AgreeOnCornerCases) {
  const at::Tensor w = corner_cases(3);
  for (const auto& s : all_schemes()) expect_paths_agree(w, s);
}

TEST(QuantizePaths, AgreeOnNanAndInf) {
  at::Tensor w = random_weights(4, 128, 5);
  w[0][3] = std::numeric_limits<float>::quiet_NaN();
  w[1][5] = std::numeric_limits<float>::infinity();
  w[2][9] = -std::numeric_limits<float>::infinity();
  for (const auto& s : {quant::QuantScheme{4, false, 64}, quant::QuantScheme{8, true, 0}}) {
    expect_paths_agree(w, s);
    const auto q = quant::quantize(w, s);
    // The NaN poisons its own group only; its codes are 0 rather than undefined.
    EXPECT_TRUE(std::isnan(q.dequantized[0][0].item<float>()));
    EXPECT_EQ(q.codes[0][3].item<int>(), 0);
    EXPECT_FALSE(std::isnan(q.dequantized[3][0].item<float>()));
  }
}

// The instruction sets add the same per-lane sums in the same order: equal to the bit.
TEST(QuantizePaths, InstructionSetsGiveTheSameSumsToTheBit) {
  const auto isas = quant::available_kernel_isas();
  std::printf("[ quantize ] kernel instruction sets here:");
  for (const auto isa : isas) std::printf(" %s", quant::kernel_isa_name(isa));
  std::printf(" (in use: %s)\n", quant::kernel_isa_name(quant::kernel_isa()));
  ASSERT_EQ(isas.front(), quant::KernelIsa::portable);
  EXPECT_EQ(quant::kernel_isa(), isas.back()) << "the best one is the default";
  auto gen = at::make_generator<at::CPUGeneratorImpl>(13);
  const at::Tensor w = at::cat({random_weights(64, 384, 12),
                                at::empty({16, 384}, at::kFloat).cauchy_(0.0, 0.01, gen)});
  for (const char* name : {"int4_asym_g128", "int8_sym_channel", "int3_asym_g64"}) {
    const auto s = quant::QuantScheme::parse(name);
    std::vector<std::pair<at::Tensor, quant::QuantErrorSums>> runs;
    for (const auto isa : isas) {
      const quant::ScopedKernelIsa use(isa);
      const at::Tensor out = at::empty_like(w);
      runs.emplace_back(out, quant::fake_quantize_into(w, out, s));
    }
    for (std::size_t i = 1; i < runs.size(); ++i) {
      SCOPED_TRACE(std::string(name) + ": " + quant::kernel_isa_name(isas[i]));
      EXPECT_TRUE(at::equal(runs[i].first, runs[0].first));
      EXPECT_EQ(runs[i].second.error_sq, runs[0].second.error_sq);
      EXPECT_EQ(runs[i].second.weight_sq, runs[0].second.weight_sq);
      EXPECT_EQ(runs[i].second.residual, runs[0].second.residual);
    }
  }
}

TEST(QuantizePaths, TheChosenInstructionSetIsRestoredAfterItsScope) {
  const quant::KernelIsa before = quant::kernel_isa();
  {
    const quant::ScopedKernelIsa use(quant::KernelIsa::portable);
    EXPECT_EQ(quant::kernel_isa(), quant::KernelIsa::portable);
  }
  EXPECT_EQ(quant::kernel_isa(), before);
  const auto isas = quant::available_kernel_isas();
  if (std::find(isas.begin(), isas.end(), quant::KernelIsa::avx2) == isas.end()) {
    EXPECT_THROW(quant::ScopedKernelIsa(quant::KernelIsa::avx2), Error);
  }
}

TEST(QuantizePaths, ResultsDoNotDependOnTheThreadCount) {
  const at::Tensor w = random_weights(256, 1024, 9);
  const quant::QuantScheme s{4, false, 128};
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = w.clone();
  const auto sums1 = quant::fake_quantize_into(one, one, s);
  at::set_num_threads(std::max(2, threads));
  const at::Tensor many = w.clone();
  const auto sums2 = quant::fake_quantize_into(many, many, s);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one, many));
  EXPECT_EQ(sums1.error_sq, sums2.error_sq);
  EXPECT_EQ(sums1.residual, sums2.residual);
}

TEST(QuantizePaths, GroupSizeThatDoesNotDivideTheRowIsAClearError) {
  const at::Tensor w = random_weights(4, 96, 1);
  const quant::QuantScheme s = quant::QuantScheme::parse("int4_asym_g64");
  for (auto f : {quant::quantize, quant::quantize_torch_ops}) {
    const std::string m = message_of<Error>([&] { f(w, s, "'layer.weight'"); });
    EXPECT_NE(m.find("group size 64 does not divide the rows of 'layer.weight' (96"),
              std::string::npos)
        << m;
  }
  const std::string m =
      message_of<Error>([&] { quant::quantize_reference(w.data_ptr<float>(), 4, 96, s); });
  EXPECT_NE(m.find("does not divide"), std::string::npos) << m;
}

TEST(QuantizePaths, RejectsWhatIsNotAWeightMatrix) {
  const quant::QuantScheme s{4, false, 0};
  EXPECT_NE(message_of<Error>([&] { quant::quantize(at::ones({3}), s, "bias"); }).find("2-D"),
            std::string::npos);
  EXPECT_NE(message_of<Error>([&] {
              quant::quantize(at::ones({0, 4}), s, "e");
            }).find("empty"),
            std::string::npos);
  EXPECT_NE(message_of<Error>([&] {
              quant::quantize(at::ones({2, 4}, at::kLong), s, "ids");
            }).find("not floating-point"),
            std::string::npos);
}

TEST(QuantizePaths, AcceptsOtherFloatDtypesAndNonContiguousInput) {
  const at::Tensor w = random_weights(64, 128, 2);
  const quant::QuantScheme s{4, false, 64};
  const at::Tensor half = w.to(at::kHalf);
  EXPECT_EQ(count_differences(quant::quantize(half, s).dequantized,
                              reference_as_tensors(half.to(at::kFloat), s).dequantized),
            0);
  const at::Tensor strided = random_weights(128, 64, 3).t();  // [64, 128], not contiguous
  EXPECT_EQ(count_differences(quant::quantize(strided, s).dequantized,
                              reference_as_tensors(strided.contiguous(), s).dequantized),
            0);
}

}  // namespace
}  // namespace qf::test
