"""Where the CPU time of ganloss's forward + backward goes beyond the kernels: each piece timed
with torch.utils.benchmark, all pieces interleaved round by round (ganloss_cuda.benchmark's
time_interleaved), median and IQR per call in microseconds.

    python benchmarks/backward_overhead.py                        # one 2x8 layer: overheads only
    python benchmarks/backward_overhead.py --case vgg19-b2-128x128
    python benchmarks/backward_overhead.py --profile              # + torch.profiler, Python stacks

Pieces: functional.feature_loss's forward (inputs require grad), ops.feature_loss's forward
(torch.library's autograd glue + the op), the op called without autograd (same kernel work),
forward + backward; the time inside ganloss_cuda.ops._backward (re-registered here with a timing
wrapper, nothing else changed) and the feature_loss_scale_grads_ op alone; and, for the autograd
engine's own share, a minimal autograd.Function with the same leaves that hands back
precomputed gradients.
"""
import argparse
import time
import warnings

import torch

import ganloss_cuda.benchmark as gb
from ganloss_cuda import functional, ops

TINY = gb.Case("feature_loss", "tiny-2x8", ((2, 8),), (1.0,))
inside_backward = []  # seconds of each ops._backward call


def timed_backward(*args):
    start = time.perf_counter()
    out = ops._backward(*args)
    inside_backward.append(time.perf_counter() - start)
    return out


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
    args = parser.parse_args()
    case = next((c for c in gb.CPU_CASES if c.name == args.case), TINY)
    (xs, ys), = gb.input_sets(case, "cpu")
    w, plain, masks = list(case.weights), [x.detach() for x in xs], [None] * len(xs)
    with warnings.catch_warnings():  # "Overriding a previously registered kernel"
        warnings.simplefilter("ignore")
        torch.library.register_autograd("ganloss::feature_loss", timed_backward,
                                        setup_context=ops._setup_context)
    op, scale = torch.ops.ganloss.feature_loss, torch.ops.ganloss.feature_loss_scale_grads_
    loss, stats, dxs, _ = op(plain, ys, [], w, "l1", "mean", 1e-12, True, False)
    one = torch.ones((), dtype=loss.dtype)

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
        "fwd: ops.feature_loss (autograd glue + op)":
            lambda: ops.feature_loss(xs, ys, masks, w, "l1", "mean", 1e-12),
        "fwd: the op without autograd (same kernel work)":
            lambda: op(plain, ys, [], w, "l1", "mean", 1e-12, True, False),
        "fwd+bwd: functional.feature_loss(...).backward()": fwd_bwd,
        "bwd: feature_loss_scale_grads_ op alone": lambda: scale(one, stats, "mean", dxs),
        "fwd: minimal autograd.Function, same leaves": lambda: Handback.apply(dxs, *xs),
        "fwd+bwd: minimal autograd.Function": handback_fwd_bwd,
    }
    fwd_bwd()
    inside_backward.clear()
    timed = gb.time_interleaved(pieces, [()], rounds=10, round_s=0.05)
    us = {name: m.median * 1e6 for name, m in timed.items()}
    print(f"case {case.name} ({case.numel} elements, {len(case.shapes)} layers), "
          f"{torch.get_num_threads()} threads")
    for name, m in timed.items():
        print(f"{name:55s} {m.median * 1e6:9.1f} us  (IQR {m.iqr * 1e6:.1f})")
    inside = sorted(inside_backward)[len(inside_backward) // 2] * 1e6
    backward = us["fwd+bwd: functional.feature_loss(...).backward()"] - us[
        "fwd: functional.feature_loss"]
    derived = {
        "bwd: backward total (fwd+bwd - fwd)": backward,
        f"bwd: inside ops._backward (median of {len(inside_backward)} calls)": inside,
        "bwd: outside ops._backward (engine + torch.library glue)": backward - inside,
        "bwd: minimal autograd.Function backward (engine)":
            us["fwd+bwd: minimal autograd.Function"]
            - us["fwd: minimal autograd.Function, same leaves"],
        "fwd: functional's own (functional - ops.feature_loss)":
            us["fwd: functional.feature_loss"] - us["fwd: ops.feature_loss (autograd glue + op)"],
        "fwd: autograd glue (ops.feature_loss - op)":
            us["fwd: ops.feature_loss (autograd glue + op)"]
            - us["fwd: the op without autograd (same kernel work)"],
    }
    for name, value in derived.items():
        print(f"=> {name:52s} {value:9.1f} us")
    noisy = [name for name, m in timed.items() if not m.meets_confidence(gb.NOISY_IQR)]
    if noisy:
        print(f"NOISY: {len(noisy)} of {len(timed)} pieces have an IQR above "
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
