"""csrc/common/fast_divider.h (the CUDA kernels' division by a fixed divisor) against plain integer
division, on the host: every divisor up to 4096 and a spread around each larger power of two, each with
the dividends around its multiples, below 4096 and just below 2^31."""
import shutil
import subprocess

import pytest

from _subprocess import CSRC

pytestmark = pytest.mark.extension_not_loaded

PROGRAM = r"""
#include <cstdio>
#include <vector>
#include "common/fast_divider.h"

int main() {
  using ganloss::FastDivider;
  long long checked = 0;
  const uint32_t top = (1u << 31) - 1;
  auto check = [&](const FastDivider& f, uint32_t n) {
    ++checked;
    if (f.div(n) != n / f.divisor || f.mod(n) != n % f.divisor) {
      std::printf("FAIL d=%u n=%u: %u %u\n", f.divisor, n, f.div(n), f.mod(n));
      return false;
    }
    return true;
  };
  std::vector<uint32_t> divisors;
  for (uint32_t d = 1; d <= 4096; ++d) divisors.push_back(d);
  for (int k = 12; k <= 30; ++k) {
    const uint32_t p = 1u << k;
    for (uint32_t d : {p - 1, p, p + 1, p + p / 3, p + p / 2 + 7, 2 * p - 3}) divisors.push_back(d);
  }
  divisors.push_back(top);
  for (uint32_t d : divisors) {
    const FastDivider f = ganloss::make_fast_divider(d);
    for (uint32_t q : {0u, 1u, 2u, 3u, 7u, 1000u, top / d - 1, top / d}) {
      for (int delta = -2; delta <= 2; ++delta) {
        const long long n = (long long)q * d + delta;
        if (n >= 0 && n <= top && !check(f, uint32_t(n))) return 1;
      }
    }
    for (uint32_t n = top; n > top - 64; --n)
      if (!check(f, n)) return 1;
    for (uint32_t n = 0; n < 4096; ++n)
      if (!check(f, n)) return 1;
  }
  std::printf("ok %lld\n", checked);
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")
def test_fast_divider_matches_division(tmp_path):
    src, exe = tmp_path / "fast_divider_check.cpp", tmp_path / "fast_divider_check"
    src.write_text(PROGRAM)
    subprocess.run(["g++", "-std=c++17", "-O2", "-Wall", "-Werror", f"-I{CSRC}", str(src), "-o",
                    str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stdout + out.stderr
