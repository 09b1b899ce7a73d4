"""Small feature_loss calls on CUDA for compute-sanitizer (memcheck, racecheck, initcheck,
synccheck): every criterion x reduction x dtype, with and without masks, forward and backward
(an upstream gradient != 1, then a retained second backward that recomputes the gradients).
Odd sizes, a misaligned view and an empty layer reach the tail and scalar paths.

    compute-sanitizer --tool memcheck python tools/sanitize_case.py
"""
import sys

import torch

import ganloss_cuda

DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def layers(dtype):
    """(inputs, targets, masks): a 4-D layer with odd sizes, a 2-D layer at a misaligned storage
    offset, an empty layer; one-channel, full and no mask."""
    gen = torch.Generator(device="cuda").manual_seed(0)

    def randn(*shape):
        return torch.randn(shape, generator=gen, device="cuda", dtype=dtype)

    xs = [randn(2, 3, 17, 19), randn(2001)[1:].view(2, 1000), randn(2, 0, 3)]
    ys = [randn(2, 3, 17, 19), randn(2, 1000), randn(2, 0, 3)]
    masks = [torch.rand(2, 1, 17, 19, generator=gen, device="cuda", dtype=dtype),
             torch.rand(2, 1000, generator=gen, device="cuda", dtype=dtype), None]
    return xs, ys, masks


def main():
    if not torch.cuda.is_available() or not ganloss_cuda._ext.has_kernel("feature_loss", "cuda"):
        reason = ganloss_cuda.load_error or "no CUDA device or no CUDA kernels built"
        sys.exit(f"sanitize_case: nothing to check ({reason})")
    calls = 0
    for dtype in DTYPES:
        for criterion in ("l1", "mse", "charbonnier", "fro"):
            for reduction in ("mean", "sum", "per_sample"):
                for masked in (False, True) if criterion != "fro" else (False,):
                    xs, ys, masks = layers(dtype)
                    xs = [x.detach().requires_grad_() for x in xs]
                    ys[0].requires_grad_()  # one target gradient too
                    loss = ganloss_cuda.feature_loss(xs, ys, [0.5, 1.0, 2.0], criterion,
                                                     reduction, masks if masked else None)
                    upstream = torch.full_like(loss, 0.75)
                    loss.backward(upstream, retain_graph=True)
                    loss.backward(upstream)
                    calls += 1
    torch.cuda.synchronize()
    print(f"sanitize_case: {calls} forward + 2 backward calls, ok")


if __name__ == "__main__":
    main()
