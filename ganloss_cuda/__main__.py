"""`python -m ganloss_cuda`: build facts, a correctness check of the op against the reference on
every device at hand (PASS/FAIL per check; exit status 1 on any failure), then the benchmark set
of each device (ganloss_cuda.benchmark: providers interleaved, median and IQR, peak memory) with
ganloss's speedups, or "noisy" where the machine was too busy for one.

    python -m ganloss_cuda            # checks + the device's benchmark set (CPU: about a minute)
    python -m ganloss_cuda --quick    # checks + the smallest cases, few repeats
    python -m ganloss_cuda --info     # build facts only
    python -m ganloss_cuda --json rows.json
"""
import argparse
import json
import sys

import torch

from . import benchmark, functional, info, reference

CRITERIA = ("l1", "mse", "charbonnier", "fro")
REDUCTIONS = ("mean", "sum", "per_sample")
CHECK_SHAPES = ((2, 3, 5, 7), (2, 4, 3, 3), (2, 5))
CHECK_WEIGHTS = (0.5, 1.0, 2.0)
CHECK_RTOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2}
# Which op each stage of a check exercises (on a device with compiled kernels): the forward
# computes loss and gradients; the first backward rescales them; a retained second backward
# recomputes them from the saved inputs.
OP_STAGES = {"feature_loss": ("loss", "grads"), "feature_loss_scale_grads_": ("grads",),
             "feature_loss_backward": ("grads_again",)}


def _check_inputs(dtype, masked):
    """Inputs, targets and masks (one-channel for 4-D layers, full for 2-D), rounded to dtype
    and held in float64 on CPU, so the float64 reference sees exactly the tested values."""
    gen = torch.Generator().manual_seed(0)

    def rand(shape, fn=torch.randn):
        return fn(shape, generator=gen, dtype=torch.float64).to(dtype).double()

    xs = [rand(s) for s in CHECK_SHAPES]
    ys = [rand(s) for s in CHECK_SHAPES]
    masks = [rand((s[0], 1) + s[2:] if len(s) == 4 else s, torch.rand) for s in CHECK_SHAPES]
    return xs, ys, (masks if masked else None)


def _run(fn, xs, ys, masks, criterion, reduction, device, dtype, target_grad):
    """Loss, gradients after a backward with upstream gradient c != 1, and the accumulated
    gradients after a second (retain_graph) backward."""
    xs = [x.to(device, dtype, copy=True).requires_grad_() for x in xs]
    ys = [y.to(device, dtype, copy=True).requires_grad_(target_grad) for y in ys]
    masks = [m.to(device, dtype) for m in masks] if masks else None
    loss = fn(xs, ys, CHECK_WEIGHTS, criterion, reduction, masks)
    c = torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype, device=device).reshape(loss.shape)
    leaves = xs + (ys if target_grad else [])
    (loss * c).sum().backward(retain_graph=True)
    grads = [t.grad.clone() for t in leaves]
    (loss * c).sum().backward()
    return loss.detach(), grads, [t.grad for t in leaves]


def check(device, dtype, criterion, reduction, masked) -> dict:
    """One check of functional.feature_loss on (device, dtype) against the float64 reference on
    CPU: loss, gradients of inputs (and of targets when masked), and the gradients after a
    second backward. Returns the check with the stages that failed and the first error."""
    result = {"device": device, "dtype": str(dtype).replace("torch.", ""), "criterion": criterion,
              "reduction": reduction, "masked": masked, "failed": [], "error": None}
    xs, ys, masks = _check_inputs(dtype, masked)
    rtol = CHECK_RTOL[dtype]
    try:
        want = _run(reference.feature_loss, xs, ys, masks, criterion, reduction, "cpu",
                    torch.float64, masked)
        got = _run(functional.feature_loss, xs, ys, masks, criterion, reduction, device, dtype,
                   masked)
    except Exception as e:  # a crash fails every stage
        result.update(failed=["loss", "grads", "grads_again"],
                      error=f"{type(e).__name__}: {' '.join(str(e).split())}")
        return result
    for stage, g, w in zip(("loss", "grads", "grads_again"), got, want):
        for gi, wi in zip(g if isinstance(g, list) else [g], w if isinstance(w, list) else [w]):
            try:
                torch.testing.assert_close(gi.cpu().double(), wi, rtol=rtol,
                                           atol=rtol * wi.abs().max().item())
            except AssertionError as e:
                result["failed"].append(stage)
                result["error"] = result["error"] or f"{stage}: {' '.join(str(e).split())}"
                break
    return result


def run_checks(device: str, log=print) -> list:
    """Every criterion x reduction x dtype (float64, float32, and bfloat16 on CUDA), without and
    with masks (no masks for 'fro'); one PASS/FAIL line per check."""
    dtypes = [torch.float64, torch.float32] + ([torch.bfloat16] if device == "cuda" else [])
    results = []
    for dtype in dtypes:
        for criterion in CRITERIA:
            for reduction in REDUCTIONS:
                for masked in (False, True) if criterion != "fro" else (False,):
                    r = check(device, dtype, criterion, reduction, masked)
                    log(f"{'FAIL' if r['failed'] else 'PASS'}  {device:4s} {r['dtype']:8s} "
                        f"{criterion:11s} {reduction:10s} {'masked' if masked else 'plain'}"
                        + (f"  {r['error']}" if r["error"] else ""))
                    results.append(r)
    return results


def kernel_results(results: list, device: str) -> list:
    """Per op: {op, tested, passed}; tested when the op has a kernel on device and checks ran
    there, passed when no check failed at a stage that runs the op."""
    ran = [r for r in results if r["device"] == device]
    out = []
    for op, devices in info.build_facts()["kernels"].items():
        tested = bool(ran) and device in devices
        failed = any(s in r["failed"] for r in ran for s in OP_STAGES.get(op, ()))
        out.append({"op": op, "tested": tested, "passed": tested and not failed})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ganloss_cuda",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--info", action="store_true", help="print the build facts only")
    parser.add_argument("--quick", action="store_true", help="smallest cases, few repeats")
    parser.add_argument("--json", metavar="PATH", help="write checks and benchmark rows here")
    args = parser.parse_args(argv)

    facts = info.build_facts()
    for key, value in facts.items():
        print(f"{key:12s} {value}")
    if args.info:
        return 0
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("\n== checks: ganloss_cuda.functional vs the float64 reference ==")
    checks = [r for d in devices for r in run_checks(d)]
    failed = [r for r in checks if r["failed"]]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    if failed:
        return 1
    report = {"build": facts, "checks": checks, "bandwidth_probe": [], "benchmarks": [],
              "speedups": []}
    for device in devices:
        if benchmark.provider_note(device):
            print(f"WARNING: {benchmark.provider_note(device)}")
        print(f"\n== benchmarks on {device} ({'quick' if args.quick else 'full'} set) ==")
        result = benchmark.run_set(device, quick=args.quick,
                                   log=lambda s: print(s, file=sys.stderr, flush=True))
        print(f"copy bandwidth {result['bandwidth_probe']['gbps']:.1f} GB/s (docs/performance.md)")
        print(benchmark.format_table(result["benchmarks"], result["speedups"]))
        report["bandwidth_probe"].append(result["bandwidth_probe"])
        report["benchmarks"] += result["benchmarks"]
        report["speedups"] += result["speedups"]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
