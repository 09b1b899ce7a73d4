"""Runs the nvcuda::wmma self-tests of the SIMT emulation tier (wmma_selftest.cu) for
tests/test_simt_wmma.py, in a process started with build.asan_env().

Usage: python tests/simt/wmma_check.py RESULTS.pt
Builds (incrementally) and imports the module, runs every GEMM self-test under each schedule of
SCHEDULES and every faulty self-test once, saves inputs and results to RESULTS.pt (torch.save) and
prints a JSON summary (the faults' messages, the time taken) on the last line of stdout."""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build  # noqa: E402

M, N, K = 48, 64, 80  # wmma_selftest.cu: C (M x N) = A (M x K) * B^T (B: N x K) + C0
SCHEDULES = [(1, 0), (7, 1), (12345, 2)]  # (seed, policy) for set_schedule
# name: (input rounding, C and C0 column-major)
GEMMS = {"wmma_gemm_f16": ("f16", False), "wmma_gemm_bf16": ("bf16", True),
         "wmma_gemm_tf32": ("tf32", False)}
FAULTS = ["wmma_partial_warp", "wmma_bad_ldm", "wmma_misaligned", "wmma_nonuniform_pointer",
          "wmma_partial_update"]


def tf32_rna(x):
    """x rounded to tf32 as cvt.rna.tf32.f32 (nearest, ties away from zero), low 13 bits zero."""
    u = x.numpy().view(np.uint32).astype(np.uint64)
    finite = (u & 0x7F800000) != 0x7F800000
    r = np.where(finite, (u + 0x1000) & 0xFFFFE000, u).astype(np.uint32)
    return torch.from_numpy(r.view(np.float32).copy())


def operand(x, kind):
    """What the kernel multiplies: x rounded to the input type, as float32."""
    if kind == "f16":
        return x.half().float()
    if kind == "bf16":
        return x.bfloat16().float()
    return tf32_rna(x)


def gemm_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(M, K, generator=g), torch.randn(N, K, generator=g),
            torch.randn(M, N, generator=g))


def main(path):
    start = time.perf_counter()
    module = build.load()
    built = time.perf_counter()
    missing = [n for n in [*GEMMS, *FAULTS] if n not in module.SELFTESTS]
    if missing:
        sys.exit(f"self-tests missing from the module: {missing}")
    results = {"schedules": SCHEDULES, "gemms": {}, "faults": {}}
    for i, (name, (kind, col_major)) in enumerate(GEMMS.items()):
        a, b, c0 = gemm_inputs(100 + i)
        if kind != "tf32":  # the kernel converts to the input type; the values must be exact in it
            a, b = operand(a, kind), operand(b, kind)
        outs = []
        for seed, policy in SCHEDULES:
            module.set_schedule(seed, policy)
            c0_mem = c0.t() if col_major else c0
            out = torch.cat([torch.full((M * N,), float("nan")), a.flatten(), b.flatten(),
                             c0_mem.contiguous().flatten()])
            module.selftest(name, out, 0)
            c = out[:M * N]
            outs.append((c.view(N, M).t() if col_major else c.view(M, N)).contiguous())
        results["gemms"][name] = {"a": operand(a, kind), "b": operand(b, kind), "c0": c0,
                                  "raw_a": a, "raw_b": b, "out": outs}
    module.set_schedule(1, 0)
    for name in FAULTS:
        try:
            module.selftest(name, torch.zeros(256), 0)
            results["faults"][name] = None
        except RuntimeError as e:
            results["faults"][name] = str(e)
    torch.save(results, path)
    print(json.dumps({"faults": results["faults"], "build_s": built - start,
                      "run_s": time.perf_counter() - built}))


if __name__ == "__main__":
    main(sys.argv[1])
