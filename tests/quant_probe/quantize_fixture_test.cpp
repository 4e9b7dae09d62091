// The quantizers against llm-awq's / AutoAWQ's own outputs (fixtures/quant): codes,
// scales and zero points equal, dequantized values equal to the last bit (−0 and +0
// compared by value, as the fixture's README asks).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "quant_test_support.h"

namespace qf::test {
namespace {

const char* const kSchemes[] = {"int4_asym_g128", "int4_asym_g64", "int4_sym_g128",
                                "int8_sym_channel", "int3_asym_g128"};

using Path = quant::Quantized (*)(const at::Tensor&, const quant::QuantScheme&, const std::string&);

void expect_matches_golden(const std::string& scheme_name, const std::string& path_name,
                           Path quantize_with) {
  const auto golden = load_tensors(quant_fixture(scheme_name + ".safetensors"));
  const auto scheme = quant::QuantScheme::parse(scheme_name);
  for (const auto& [name, w] : quant_inputs()) {
    SCOPED_TRACE(scheme_name + " " + name + " via " + path_name);
    const quant::Quantized q = quantize_with(w, scheme, name);
    const at::Tensor& codes = golden.at(name + ".codes");
    EXPECT_EQ(q.codes.scalar_type(), codes.scalar_type());
    EXPECT_EQ(count_differences(q.codes, codes), 0);
    EXPECT_EQ(count_differences(q.scales, golden.at(name + ".scales")), 0);
    EXPECT_EQ(count_differences(q.zeros, golden.at(name + ".zeros")), 0);
    EXPECT_EQ(count_differences(q.dequantized, golden.at(name)), 0)
        << "max |difference| " << max_abs_difference(q.dequantized, golden.at(name));
  }
}

TEST(QuantizeGolden, FusedKernelMatchesTheReferenceLibrariesBitForBit) {
  QF_REQUIRE_FIXTURE("quant");
  for (const quant::KernelIsa isa : quant::available_kernel_isas()) {
    const quant::ScopedKernelIsa use(isa);
    for (const char* s : kSchemes) {
      expect_matches_golden(s, std::string("fused ") + quant::kernel_isa_name(isa),
                            quant::quantize);
    }
  }
}

TEST(QuantizeGolden, TorchOperationsMatchTheReferenceLibrariesBitForBit) {
  QF_REQUIRE_FIXTURE("quant");
  for (const char* s : kSchemes) expect_matches_golden(s, "torch ops", quant::quantize_torch_ops);
}

TEST(QuantizeGolden, ScalarReferenceMatchesTheReferenceLibrariesBitForBit) {
  QF_REQUIRE_FIXTURE("quant");
  for (const char* s : kSchemes) {
    expect_matches_golden(s, "scalar reference",
                          [](const at::Tensor& w, const quant::QuantScheme& sc,
                             const std::string&) { return reference_as_tensors(w, sc); });
  }
}

// The planted rows the README describes, checked for what they are meant to exercise.
TEST(QuantizeGolden, PlantedRowsBehaveAsTheReadmeSays) {
  QF_REQUIRE_FIXTURE("quant");
  const at::Tensor w = quant_inputs().at("w_normal_64x256");
  const auto q = quant::quantize(w, quant::QuantScheme::parse("int4_asym_g128"));
  // Row 5, columns 0..127: a positive constant group: q = 15, zero = 0, ŵ = +1e-5.
  EXPECT_EQ(q.codes[5][0].item<int>(), 15);
  EXPECT_EQ(q.zeros[5][0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(q.dequantized[5][3].item<float>(), 1e-5f);
  // Row 6, columns 128..255: a negative constant group: q = 0, zero = 15, ŵ = −1e-5.
  EXPECT_EQ(q.codes[6][200].item<int>(), 0);
  EXPECT_EQ(q.zeros[6][1].item<float>(), 15.0f);
  EXPECT_FLOAT_EQ(q.dequantized[6][200].item<float>(), -1e-5f);
  // Row 11: scale exactly 1/16 and ties at odd multiples of 1/32, rounded to even.
  EXPECT_EQ(q.scales[11][0].item<float>(), 1.0f / 16);
  const at::Tensor row = w[11].narrow(0, 0, 128);
  const at::Tensor ties = (row * 32).remainder(2) == 1;
  ASSERT_GT(ties.sum().item<int>(), 0);
  const at::Tensor codes = q.codes[11].narrow(0, 0, 128).to(at::kInt).masked_select(ties);
  EXPECT_EQ((codes.remainder(2) != 0).sum().item<int>(), 0) << "a tie rounded to an odd code";
}

TEST(QuantizeGolden, RelativeErrorMatchesTheSummary) {
  QF_REQUIRE_FIXTURE("quant");
  const auto summary = nlohmann::json::parse(read_file(quant_fixture("summary.json")));
  for (const char* scheme_name : kSchemes) {
    const auto scheme = quant::QuantScheme::parse(scheme_name);
    for (const auto& [name, w] : quant_inputs()) {
      const at::Tensor copy = w.clone();
      const auto sums = quant::fake_quantize_into(w, copy, scheme, name);
      const double expected = summary["schemes"][scheme_name]["tensors"][name]["rel_error_fro"];
      EXPECT_NEAR(sums.relative_error(), expected, 1e-12 * expected) << scheme_name << " " << name;
    }
  }
}

}  // namespace
}  // namespace qf::test
