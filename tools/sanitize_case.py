"""Small calls of every loss family on CUDA for compute-sanitizer (memcheck, racecheck, initcheck,
synccheck): each suite's ``sanitizer_calls`` (ganloss_cuda.benchmark.SUITES; for feature_loss:
every criterion x reduction x dtype, with and without masks, forward and two backwards, odd
sizes, a misaligned view and an empty layer; for style_loss / gram_matrix: every dtype,
criterion and target kind, forward and backward, channels_last, odd sizes, split K, an empty
layer).

    compute-sanitizer --tool memcheck python tools/sanitize_case.py
"""
import sys

import torch

from ganloss_cuda import _ext
from ganloss_cuda.benchmark import SUITES


def main():
    missing = [suite.op for suite in SUITES if not _ext.has_kernel(suite.op, "cuda")]
    if not torch.cuda.is_available() or missing:
        reason = _ext.load_error or f"no CUDA device or no CUDA kernels built ({missing})"
        sys.exit(f"sanitize_case: nothing to check ({reason})")
    calls = {suite.name: suite.sanitizer_calls("cuda") for suite in SUITES}
    torch.cuda.synchronize()
    print("sanitize_case: " + ", ".join(f"{name} {n} calls" for name, n in calls.items())
          + ", ok")


if __name__ == "__main__":
    main()
