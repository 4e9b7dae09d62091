#include "quant_probe/quantize_kernel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "core/errors.h"
#include "core/torch/compat.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define QF_AVX2_KERNEL 1
#include <immintrin.h>
#else
#define QF_AVX2_KERNEL 0
#endif

namespace qf::quant {
namespace kernel {
namespace {

// ---------------------------------------------------------------------------------------
// What every instruction set shares: the scalar element, the group's parameters, and the
// reductions of the per-lane partial results. Division, rounding and clamps are exact per
// element, so vector and scalar code give the same bits; sums are kept per lane in double
// (lanes 0-7 of 8 floats) and added in lane order at the end of a group, the same order in
// every instruction set, so that the sums too are the same bits everywhere.

constexpr std::int64_t kLanes = 8;
#define QF_INLINE inline __attribute__((always_inline))

// Round half to even without a libm call (x86-64's baseline has no roundss): below 2^23,
// adding and removing 2^23 (with x's sign) leaves the nearest integer, ties to even, in
// the default rounding mode; from 2^23 on every float is an integer already. The sign is
// put back so that −0.3 rounds to −0 as torch.round does. Needs IEEE arithmetic without
// reassociation, i.e. no -ffast-math.
QF_INLINE float round_even(float x) {
  const float big = std::copysign(0x1p23f, x);
  const float r = std::copysign((x + big) - big, x);
  return std::fabs(x) < 0x1p23f ? r : x;
}

// torch.clamp: NaN stays NaN.
QF_INLINE float clamp(float x, float lo, float hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

struct GroupSums {
  double error_sq = 0, weight_sq = 0, residual = 0;
};

struct Range {
  float lo, hi;
};

// The per-lane minima, maxima and NaN poison of the vector loop, then the elements from
// i on: min and max of the group as torch.amin / amax give them (NaN when it holds one).
Range finish_range(const float* lo, const float* hi, const float* poison, const float* w,
                   std::int64_t i, std::int64_t n) {
  const float inf = std::numeric_limits<float>::infinity();
  Range r{inf, -inf};
  float p = 0.0f;
  for (std::int64_t l = 0; l < kLanes; ++l) {
    r.lo = lo[l] < r.lo ? lo[l] : r.lo;
    r.hi = r.hi < hi[l] ? hi[l] : r.hi;
    p += poison[l];
  }
  for (; i < n; ++i) {
    const float v = w[i];
    r.lo = v < r.lo ? v : r.lo;
    r.hi = r.hi < v ? v : r.hi;
    p += v - v;
  }
  if (p != p) {  // only a NaN changes min and max; infinities are fine
    for (i = 0; i < n; ++i) {
      if (w[i] != w[i]) return {w[i], w[i]};
    }
  }
  return r;
}

// One element, in the operation order of quantize_reference.cpp (the references').
template <bool kSymmetric>
QF_INLINE void quantize_one(float v, float scale, float zero, float qmin, float qmax, float& dq,
                            std::uint8_t& code, GroupSums& s) {
  const float r = v / scale;
  const float rounded = round_even(r);
  float q;
  if constexpr (kSymmetric) {  // the symmetric reference has no zero point at all
    q = clamp(rounded, qmin, qmax);
    dq = q * scale;
  } else {
    q = clamp(rounded + zero, qmin, qmax);
    dq = (q - zero) * scale;
  }
  code = static_cast<std::uint8_t>(static_cast<int>(q == q ? q : 0.0f));
  const double e = static_cast<double>(v) - static_cast<double>(dq);
  s.error_sq += e * e;
  s.weight_sq += static_cast<double>(v) * static_cast<double>(v);
  s.residual += std::fabs(r - rounded);  // exact in float: |r − round(r)| <= 0.5
}

// The lanes' sums in lane order, then the elements from i on one by one.
template <bool kSymmetric, bool kCodes>
GroupSums finish_values(const double* error_sq, const double* weight_sq, const double* residual,
                        const float* w, float* out, std::uint8_t* codes, std::int64_t i,
                        std::int64_t n, float scale, float zero, float qmin, float qmax) {
  GroupSums sums;
  for (std::int64_t l = 0; l < kLanes; ++l) {
    sums.error_sq += error_sq[l];
    sums.weight_sq += weight_sq[l];
    sums.residual += residual[l];
  }
  for (; i < n; ++i) {
    float dq;
    std::uint8_t code;
    quantize_one<kSymmetric>(w[i], scale, zero, qmin, qmax, dq, code, sums);
    out[i] = dq;
    if constexpr (kCodes) codes[i] = code;
  }
  return sums;
}

// ---------------------------------------------------------------------------------------
// portable: plain loops over the kLanes lanes, for CPUs without AVX2 (and arm64). About
// 0.35 GB/s per thread on a Zen 4 (bench/RESULTS.md): GCC's vector extensions were no
// faster here, their float-to-double widening and code packing being lowered element by
// element through the stack.

struct Portable {
  static Range range(const float* w, std::int64_t n);
  template <bool kSymmetric, bool kCodes>
  static GroupSums values(const float* w, float* out, std::uint8_t* codes, std::int64_t n,
                          float scale, float zero, float qmin, float qmax);
};

Range Portable::range(const float* w, std::int64_t n) {
  const float inf = std::numeric_limits<float>::infinity();
  float lo[kLanes], hi[kLanes], poison[kLanes];
  for (std::int64_t l = 0; l < kLanes; ++l) lo[l] = inf, hi[l] = -inf, poison[l] = 0.0f;
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::int64_t l = 0; l < kLanes; ++l) {
      const float v = w[i + l];
      lo[l] = v < lo[l] ? v : lo[l];
      hi[l] = hi[l] < v ? v : hi[l];
      poison[l] += v - v;  // 0, or NaN for a NaN or an infinity
    }
  }
  return finish_range(lo, hi, poison, w, i, n);
}

// ŵ (and the codes when kCodes) of one group; lane l sums the elements i ≡ l (mod kLanes),
// as a vector lane does. Each element is read before it is written, so `out` may be `w`.
template <bool kSymmetric, bool kCodes>
GroupSums Portable::values(const float* w, float* out, std::uint8_t* codes, std::int64_t n,
                           float scale, float zero, float qmin, float qmax) {
  double error_sq[kLanes] = {}, weight_sq[kLanes] = {}, residual[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::int64_t l = 0; l < kLanes; ++l) {
      GroupSums lane{error_sq[l], weight_sq[l], residual[l]};
      std::uint8_t code;
      quantize_one<kSymmetric>(w[i + l], scale, zero, qmin, qmax, out[i + l], code, lane);
      if constexpr (kCodes) codes[i + l] = code;
      error_sq[l] = lane.error_sq, weight_sq[l] = lane.weight_sq, residual[l] = lane.residual;
    }
  }
  return finish_values<kSymmetric, kCodes>(error_sq, weight_sq, residual, w, out, codes, i, n,
                                           scale, zero, qmin, qmax);
}


// ---------------------------------------------------------------------------------------
// avx2: the same loops in AVX2 intrinsics, compiled for AVX2 function by function (the
// target attribute) so that nothing else in the binary needs the instruction set, and
// chosen at run time when the CPU has it: about 1.5x the same loops in GCC 12's vector
// extensions compiled for AVX2, which widened float to double 128 bits at a time through
// the stack and packed the codes byte by byte.

#if QF_AVX2_KERNEL
#define QF_AVX2 __attribute__((target("avx2")))
#define QF_AVX2_INLINE inline __attribute__((target("avx2"), always_inline))

namespace avx2 {

// _mm256_round_ps to nearest is round_even: ties to even, the sign kept (−0.3 → −0),
// values from 2^23 on and NaN unchanged.
QF_AVX2_INLINE __m256 round_even8(__m256 x) {
  return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// clamp: x < lo ? lo : (x > hi ? hi : x); ordered comparisons are false for NaN, so a
// NaN stays.
QF_AVX2_INLINE __m256 clamp8(__m256 x, __m256 lo, __m256 hi) {
  const __m256 upper = _mm256_blendv_ps(x, hi, _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  return _mm256_blendv_ps(upper, lo, _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
}
QF_AVX2_INLINE __m256 abs8(__m256 x) {
  return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}
QF_AVX2_INLINE __m256d low_half(__m256 x) {
  return _mm256_cvtps_pd(_mm256_castps256_ps128(x));
}
QF_AVX2_INLINE __m256d high_half(__m256 x) {
  return _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
}
QF_AVX2_INLINE void add_halves(__m256d (&acc)[2], __m256d a, __m256d b) {
  acc[0] = _mm256_add_pd(acc[0], a);
  acc[1] = _mm256_add_pd(acc[1], b);
}
// The codes of 8 integral q (NaN → 0): the low byte of each int32, as static_cast keeps it.
QF_AVX2_INLINE void store_codes(std::uint8_t* p, __m256 q) {
  const __m256i c = _mm256_cvttps_epi32(_mm256_and_ps(q, _mm256_cmp_ps(q, q, _CMP_ORD_Q)));
  const __m256i low_bytes =
      _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                       0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i b = _mm256_shuffle_epi8(c, low_bytes);
  const __m128i eight =
      _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), eight);
}

}  // namespace avx2

struct Avx2 {
  static Range range(const float* w, std::int64_t n);
  template <bool kSymmetric, bool kCodes>
  static GroupSums values(const float* w, float* out, std::uint8_t* codes, std::int64_t n,
                          float scale, float zero, float qmin, float qmax);
};

QF_AVX2 Range Avx2::range(const float* w, std::int64_t n) {
  using namespace avx2;
  const float inf = std::numeric_limits<float>::infinity();
  __m256 lo = _mm256_set1_ps(inf), hi = _mm256_set1_ps(-inf), poison = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 v = _mm256_loadu_ps(w + i);
    lo = _mm256_min_ps(v, lo);  // v < lo ? v : lo
    hi = _mm256_max_ps(v, hi);  // v > hi ? v : hi
    poison = _mm256_add_ps(poison, _mm256_sub_ps(v, v));
  }
  float l[kLanes], h[kLanes], p[kLanes];
  _mm256_storeu_ps(l, lo);
  _mm256_storeu_ps(h, hi);
  _mm256_storeu_ps(p, poison);
  return finish_range(l, h, p, w, i, n);
}

template <bool kSymmetric, bool kCodes>
QF_AVX2 GroupSums Avx2::values(const float* w, float* out, std::uint8_t* codes, std::int64_t n,
                               float scale, float zero, float qmin, float qmax) {
  using namespace avx2;
  const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zero), lo = _mm256_set1_ps(qmin),
               hi = _mm256_set1_ps(qmax);
  __m256d error_sq[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  __m256d weight_sq[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  __m256d residual[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 v = _mm256_loadu_ps(w + i);
    const __m256 r = _mm256_div_ps(v, s);
    const __m256 rounded = round_even8(r);
    __m256 q, dq;
    if constexpr (kSymmetric) {
      q = clamp8(rounded, lo, hi);
      dq = _mm256_mul_ps(q, s);
    } else {
      q = clamp8(_mm256_add_ps(rounded, z), lo, hi);
      dq = _mm256_mul_ps(_mm256_sub_ps(q, z), s);
    }
    _mm256_storeu_ps(out + i, dq);
    if constexpr (kCodes) store_codes(codes + i, q);
    const __m256d v0 = low_half(v), v1 = high_half(v);
    const __m256d e0 = _mm256_sub_pd(v0, low_half(dq)), e1 = _mm256_sub_pd(v1, high_half(dq));
    add_halves(error_sq, _mm256_mul_pd(e0, e0), _mm256_mul_pd(e1, e1));
    add_halves(weight_sq, _mm256_mul_pd(v0, v0), _mm256_mul_pd(v1, v1));
    const __m256 res = abs8(_mm256_sub_ps(r, rounded));
    add_halves(residual, low_half(res), high_half(res));
  }
  double e[kLanes], ws[kLanes], rs[kLanes];
  for (int h = 0; h < 2; ++h) {
    _mm256_storeu_pd(e + 4 * h, error_sq[h]);
    _mm256_storeu_pd(ws + 4 * h, weight_sq[h]);
    _mm256_storeu_pd(rs + 4 * h, residual[h]);
  }
  return finish_values<kSymmetric, kCodes>(e, ws, rs, w, out, codes, i, n, scale, zero, qmin,
                                           qmax);
}

#endif

// ---------------------------------------------------------------------------------------
// The driver: per group its range, scale and zero point, then its values.

template <class Isa, bool kSymmetric, bool kCodes>
GroupSums quantize_group(const Kernel& k, std::int64_t gi) {
  const float* w = k.w + gi * k.group;
  const Range range = Isa::range(w, k.group);
  const bool nan = range.lo != range.lo;
  float scale, zero = 0.0f;
  if constexpr (kSymmetric) {
    const float absmax = nan ? range.lo : std::max(std::fabs(range.lo), std::fabs(range.hi));
    scale = (absmax < kMinRange ? kMinRange : absmax) / k.qmax;
  } else {
    const float span = range.hi - range.lo;
    scale = (span < kMinRange ? kMinRange : span) / k.qmax;
    zero = clamp(-round_even(range.lo / scale), k.qmin, k.qmax);
  }
  if (k.scales) k.scales[gi] = scale;
  if (k.zeros) k.zeros[gi] = zero;
  return Isa::template values<kSymmetric, kCodes>(w, k.dequantized + gi * k.group,
                                                  kCodes ? k.codes + gi * k.group : nullptr,
                                                  k.group, scale, zero, k.qmin, k.qmax);
}

// Per-group sums, added up in group order afterwards: the result does not depend on how
// the groups were shared among threads.
template <class Isa, bool kSymmetric, bool kCodes>
QuantErrorSums run_groups(const Kernel& k, std::int64_t groups) {
  std::vector<GroupSums> partial(static_cast<std::size_t>(groups));
  const std::int64_t grain = std::max<std::int64_t>(1, 65536 / std::max<std::int64_t>(1, k.group));
  at::parallel_for(0, groups, grain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t gi = begin; gi < end; ++gi) {
      partial[static_cast<std::size_t>(gi)] = quantize_group<Isa, kSymmetric, kCodes>(k, gi);
    }
  });
  QuantErrorSums sums;
  for (const auto& p : partial) {
    sums.error_sq += p.error_sq;
    sums.weight_sq += p.weight_sq;
    sums.residual += p.residual;
  }
  sums.count = groups * k.group;
  return sums;
}

template <class Isa>
QuantErrorSums run_with(const Kernel& k, std::int64_t groups) {
  if (k.symmetric) {
    return k.codes ? run_groups<Isa, true, true>(k, groups) : run_groups<Isa, true, false>(k, groups);
  }
  return k.codes ? run_groups<Isa, false, true>(k, groups) : run_groups<Isa, false, false>(k, groups);
}

bool cpu_has(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::portable:
      return true;
    case KernelIsa::avx2:
#if QF_AVX2_KERNEL
      return __builtin_cpu_supports("avx2");
#else
      return false;
#endif
  }
  return false;
}

std::atomic<KernelIsa>& isa_in_use() {
  static std::atomic<KernelIsa> isa{cpu_has(KernelIsa::avx2) ? KernelIsa::avx2
                                                             : KernelIsa::portable};
  return isa;
}

}  // namespace

QuantErrorSums run(const Kernel& k, std::int64_t groups) {
#if QF_AVX2_KERNEL
  if (isa_in_use().load(std::memory_order_relaxed) == KernelIsa::avx2) {
    return run_with<Avx2>(k, groups);
  }
#endif
  return run_with<Portable>(k, groups);
}

}  // namespace kernel

const char* kernel_isa_name(KernelIsa isa) {
  return isa == KernelIsa::avx2 ? "avx2" : "portable";
}

std::vector<KernelIsa> available_kernel_isas() {
  std::vector<KernelIsa> out;
  for (KernelIsa isa : {KernelIsa::portable, KernelIsa::avx2}) {
    if (kernel::cpu_has(isa)) out.push_back(isa);
  }
  return out;
}

KernelIsa kernel_isa() {
  return kernel::isa_in_use().load();
}

ScopedKernelIsa::ScopedKernelIsa(KernelIsa isa) : saved_(kernel_isa()) {
  if (!kernel::cpu_has(isa)) {
    throw Error(std::string("the quantization kernel cannot use ") + kernel_isa_name(isa) +
                ": this CPU or build does not have it");
  }
  kernel::isa_in_use().store(isa);
}

ScopedKernelIsa::~ScopedKernelIsa() {
  kernel::isa_in_use().store(saved_);
}

}  // namespace qf::quant
