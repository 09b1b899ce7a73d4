"""Where the CPU time of ganloss's forward + backward goes beyond the kernels: each piece timed
with torch.utils.benchmark, all pieces interleaved round by round (the benchmark harness's
time_interleaved), median and IQR per call in microseconds.

    python benchmarks/backward_overhead.py                        # one 2x8 layer: overheads only
    python benchmarks/backward_overhead.py --case vgg19-b2-128x128
    python benchmarks/backward_overhead.py --profile              # + torch.profiler, Python stacks
    OMP_NUM_THREADS=1 python benchmarks/backward_overhead.py --cpu-time   # on a busy machine

Pieces: functional.feature_loss's forward (inputs require grad), ops.feature_loss's forward
(its autograd + the op), the op called below the Autograd dispatch key (same kernel work),
forward + backward; the time inside the backward of ganloss_cuda.ops._EagerFeatureLoss (the
eager autograd.Function, wrapped here with a timer, nothing else changed) and the
feature_loss_scale_grads_ op alone; and, for the autograd engine's own share, a minimal
autograd.Function with the same leaves that hands back precomputed gradients. --cpu-time times with the process's CPU clock instead of the wall clock:
time spent waiting for a core is left out, so the Python overheads can be measured on a busy
machine (with one thread; with more, the clock adds up all threads' time).
"""
import argparse
import time

import torch

import ganloss_cuda.benchmark as gb
from ganloss_cuda import functional, ops
from ganloss_cuda.benchmark import feature

TINY = feature.Case("feature_loss", "tiny-2x8", ((2, 8),), (1.0,))


def timed(fn, clock, seconds: list):
    """fn, appending the seconds (on clock) of each call to seconds."""
    def wrapper(*args):
        start = clock()
        out = fn(*args)
        seconds.append(clock() - start)
        return out
    return wrapper


class Handback(torch.autograd.Function):
    """The least a backward can do: hand back gradients computed earlier."""

    @staticmethod
    def forward(ctx, grads, *xs):
        ctx.grads = grads
        return xs[0].new_zeros(())

    @staticmethod
    def backward(ctx, grad):
        return (None, *ctx.grads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", help="a CPU benchmark case (default: one 2x8 layer)")
    parser.add_argument("--profile", action="store_true", help="also print a profile")
    parser.add_argument("--cpu-time", action="store_true", help="time with the process CPU clock")
    args = parser.parse_args()
    case = next((c for c in feature.CPU_CASES if c.name == args.case), TINY)
    (xs, ys), = gb.input_sets(feature.SUITE, case, "cpu")
    w, plain, masks = list(case.weights), [x.detach() for x in xs], [None] * len(xs)
    clock = time.process_time if args.cpu_time else time.perf_counter
    inside_backward = []  # seconds of each call of the eager Function's backward
    ops.feature._EagerFeatureLoss.backward = staticmethod(
        timed(ops.feature._EagerFeatureLoss.backward, clock, inside_backward))
    op, scale = torch.ops.ganloss.feature_loss, torch.ops.ganloss.feature_loss_scale_grads_
    loss, stats, dxs, _ = op(plain, ys, [], w, "l1", "mean", 1e-12, True, False)
    one = torch.ones((), dtype=loss.dtype)

    def below_autograd():
        with torch._C._AutoDispatchBelowAutograd():
            op(plain, ys, [], w, "l1", "mean", 1e-12, True, False)

    def fwd_bwd():
        for x in xs:
            x.grad = None
        functional.feature_loss(xs, ys, w).backward()

    def handback_fwd_bwd():
        for x in xs:
            x.grad = None
        Handback.apply(dxs, *xs).backward()

    pieces = {
        "fwd: functional.feature_loss": lambda: functional.feature_loss(xs, ys, w),
        "fwd: ops.feature_loss (autograd + op)":
            lambda: ops.compiled_feature_loss(xs, ys, masks, w, "l1", "mean", 1e-12),
        "fwd: the op below autograd (same kernel work)": below_autograd,
        "fwd+bwd: functional.feature_loss(...).backward()": fwd_bwd,
        "bwd: feature_loss_scale_grads_ op alone": lambda: scale(one, stats, "mean", dxs),
        "fwd: minimal autograd.Function, same leaves": lambda: Handback.apply(dxs, *xs),
        "fwd+bwd: minimal autograd.Function": handback_fwd_bwd,
    }
    fwd_bwd()
    inside_backward.clear()
    measured = gb.time_interleaved(pieces, [()], rounds=10, round_s=0.05, timer=clock)
    us = {name: m.median * 1e6 for name, m in measured.items()}
    print(f"case {case.name} ({case.numel} elements, {len(case.shapes)} layers), "
          f"{torch.get_num_threads()} threads, {'CPU' if args.cpu_time else 'wall'} clock")
    for name, m in measured.items():
        print(f"{name:55s} {m.median * 1e6:9.1f} us  (IQR {m.iqr * 1e6:.1f})")
    inside = sorted(inside_backward)[len(inside_backward) // 2] * 1e6
    backward = us["fwd+bwd: functional.feature_loss(...).backward()"] - us[
        "fwd: functional.feature_loss"]
    derived = {
        "bwd: backward total (fwd+bwd - fwd)": backward,
        f"bwd: inside the Function's backward (median of {len(inside_backward)})": inside,
        "bwd: outside it (autograd engine)": backward - inside,
        "bwd: minimal autograd.Function backward (engine)":
            us["fwd+bwd: minimal autograd.Function"]
            - us["fwd: minimal autograd.Function, same leaves"],
        "fwd: functional's own (functional - ops.feature_loss)":
            us["fwd: functional.feature_loss"] - us["fwd: ops.feature_loss (autograd + op)"],
        "fwd: autograd (ops.feature_loss - op)":
            us["fwd: ops.feature_loss (autograd + op)"]
            - us["fwd: the op below autograd (same kernel work)"],
    }
    for name, value in derived.items():
        print(f"=> {name:52s} {value:9.1f} us")
    noisy = [name for name, m in measured.items() if not m.meets_confidence(gb.NOISY_IQR)]
    if noisy:
        print(f"NOISY: {len(noisy)} of {len(measured)} pieces have an IQR above "
              f"{gb.NOISY_IQR:.0%} of their median; the differences above are not reliable.")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], with_stack=True) as prof:
            for _ in range(200):
                fwd_bwd()
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=40,
                                        max_name_column_width=80))


if __name__ == "__main__":
    main()
