// Division of 31-bit unsigned integers by a divisor fixed ahead of time, without a divide
// instruction or a call to the 64-bit division routine: a multiply-high, an add and a shift
// (Granlund and Montgomery, "Division by invariant integers using multiplication", 1994).
//
// With s = ceil(log2 d) and magic = floor(2^32 * (2^s - d) / d) + 1 (< 2^32),
//   n / d = (umulhi(n, magic) + n) >> s   for every 0 <= n < 2^31 and 1 <= d < 2^31
// (the sum stays below 2^32 because n < 2^31). Built on the host, used by the CUDA kernels and
// checked exhaustively near every power of two by tests/test_fast_divider.py.
#pragma once

#include "hd.h"

namespace ganloss {

struct FastDivider {
  uint32_t divisor;
  uint32_t magic;
  uint32_t shift;

  GANLOSS_HD uint32_t div(uint32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t hi = __umulhi(n, magic);
#else
    const uint32_t hi = uint32_t((uint64_t(n) * magic) >> 32);
#endif
    return (hi + n) >> shift;
  }
  GANLOSS_HD uint32_t mod(uint32_t n) const { return n - div(n) * divisor; }
};

// 1 <= d < 2^31.
inline FastDivider make_fast_divider(uint32_t d) {
  uint32_t s = 0;
  while ((uint64_t(1) << s) < d) ++s;
  const uint64_t magic = (uint64_t(1) << 32) * ((uint64_t(1) << s) - d) / d + 1;
  return {d, uint32_t(magic), s};
}

}  // namespace ganloss
