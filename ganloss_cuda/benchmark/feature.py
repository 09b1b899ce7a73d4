"""The feature family's suite (feature_loss): its benchmark cases (CPU and GPU sets), inputs, loss
call and floor bytes, the main job's self-checks of it against the float64 reference, and its
calls for compute-sanitizer.
Rule: imports the harness and the public feature_loss of ganloss_cuda.functional and
ganloss_cuda.reference only; nothing of another family. Listed in benchmark/__init__.SUITES.

Floors: read x and y once (``fwd``) and also write dx once (``fwd_bwd``), docs/performance.md §1.
"""
import math
from dataclasses import dataclass
from typing import Tuple

import torch

from .. import functional, reference
from .harness import CaseBase, SelfCheck, Suite

PASSES = {"fwd": 2, "fwd_bwd": 3}  # tensor passes of the floor: read x, read y (, write dx)


@dataclass(frozen=True)
class Case(CaseBase):
    """One input of ``op``: the layer shapes (dim 0 = batch), per-layer weights and dtype."""

    op: str
    name: str
    shapes: Tuple[Tuple[int, ...], ...]
    weights: Tuple[float, ...]
    dtype: torch.dtype = torch.float32
    criterion: str = "l1"
    quick: bool = False  # part of the --quick subset

    @property
    def numel(self) -> int:
        return sum(math.prod(s) for s in self.shapes)


def vgg19_shapes(batch: int, size: int):
    """VGG19 relu1_1 .. relu5_1 for a batch of size x size images."""
    return tuple((batch, c, size >> i, size >> i) for i, c in enumerate((64, 128, 256, 512, 512)))


def pix2pixhd_shapes(batch: int, height: int, width: int, num_d: int = 3, n_layers: int = 3,
                     ndf: int = 64):
    """Intermediate features of pix2pixHD's multi-scale NLayerDiscriminator (logits excluded):
    convs k=4, pad=2, strides 2 x n_layers then 1; AvgPool(3, 2, 1) between scales."""
    shapes = []
    for _ in range(num_d):
        h, w = height, width
        for i in range(n_layers + 1):
            stride = 2 if i < n_layers else 1
            h, w = h // stride + 1, w // stride + 1
            shapes.append((batch, ndf * min(2 ** i, 8), h, w))
        height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
    return tuple(shapes)


VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # pix2pixHD / SPADE VGGLoss
# pix2pixHD feature matching: (1 / num_D) * (4 / (n_layers_D + 1)) * lambda_feat, num_D = 3
FM_WEIGHT = (1 / 3) * (4 / (3 + 1)) * 10.0

CPU_CASES = (
    Case("feature_loss", "pixel-b16-3x128x128", ((16, 3, 128, 128),), (1.0,), quick=True),
    Case("feature_loss", "vgg19-b2-128x128", vgg19_shapes(2, 128), VGG_WEIGHTS),
    Case("feature_loss", "fm3x4-b1-128x256", pix2pixhd_shapes(1, 128, 256), (FM_WEIGHT,) * 12,
         quick=True),
)
GPU_CASES = (
    Case("feature_loss", "vgg19-b16-256x256", vgg19_shapes(16, 256), VGG_WEIGHTS),
    Case("feature_loss", "vgg19-b16-256x256", vgg19_shapes(16, 256), VGG_WEIGHTS, torch.bfloat16),
    Case("feature_loss", "fm3x4-b1-512x1024", pix2pixhd_shapes(1, 512, 1024), (FM_WEIGHT,) * 12,
         quick=True),
    Case("feature_loss", "fm3x4-b4-512x1024", pix2pixhd_shapes(4, 512, 1024), (FM_WEIGHT,) * 12),
)


def make_inputs(case: Case, device: str, gen: torch.Generator) -> tuple:
    """(xs, ys): inputs that require grad, targets that do not."""

    def randn(shape):
        return torch.randn(shape, generator=gen, device=device, dtype=case.dtype)

    return [randn(s).requires_grad_() for s in case.shapes], [randn(s) for s in case.shapes]


def call(fn, case: Case, inputs) -> torch.Tensor:
    xs, ys = inputs
    return fn(xs, ys, list(case.weights), case.criterion)


def floor_bytes(case: Case, mode: str) -> int:
    return PASSES[mode] * case.numel * case.dtype.itemsize


# Self-checks of the main job: every criterion x reduction x dtype, without and with masks.
CRITERIA = ("l1", "mse", "charbonnier", "fro")
REDUCTIONS = ("mean", "sum", "per_sample")
CHECK_SHAPES = ((2, 3, 5, 7), (2, 4, 3, 3), (2, 5))
CHECK_WEIGHTS = (0.5, 1.0, 2.0)
# Which op each stage of a check exercises (on a device with compiled kernels): the forward
# computes loss and gradients; the first backward rescales them; a retained second backward
# recomputes them from the saved inputs.
CHECK_STAGES = {"feature_loss": ("loss", "grads"), "feature_loss_scale_grads_": ("grads",),
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


def _run(fn, xs, ys, masks, criterion, reduction, device, dtype, target_grad) -> dict:
    """{loss, grads after a backward with upstream gradient c != 1, grads_again: the accumulated
    gradients after a second (retain_graph) backward}; gradients of inputs (and of targets when
    target_grad)."""
    xs = [x.to(device, dtype, copy=True).requires_grad_() for x in xs]
    ys = [y.to(device, dtype, copy=True).requires_grad_(target_grad) for y in ys]
    masks = [m.to(device, dtype) for m in masks] if masks else None
    loss = fn(xs, ys, CHECK_WEIGHTS, criterion, reduction, masks)
    c = torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype, device=device).reshape(loss.shape)
    leaves = xs + (ys if target_grad else [])
    (loss * c).sum().backward(retain_graph=True)
    grads = [t.grad.clone() for t in leaves]
    (loss * c).sum().backward()
    return {"loss": loss.detach(), "grads": grads, "grads_again": [t.grad for t in leaves]}


def self_checks(device: str):
    """functional.feature_loss on device against the float64 reference on CPU, per criterion x
    reduction x dtype (float64, float32, and bfloat16 on CUDA), without and with masks (no masks
    for 'fro'; with masks the targets' gradients are checked too)."""
    dtypes = [torch.float64, torch.float32] + ([torch.bfloat16] if device == "cuda" else [])
    for dtype in dtypes:
        for criterion in CRITERIA:
            for reduction in REDUCTIONS:
                for masked in (False, True) if criterion != "fro" else (False,):
                    def run(dtype=dtype, criterion=criterion, reduction=reduction, masked=masked):
                        xs, ys, masks = _check_inputs(dtype, masked)
                        want = _run(reference.feature_loss, xs, ys, masks, criterion, reduction,
                                    "cpu", torch.float64, masked)
                        got = _run(functional.feature_loss, xs, ys, masks, criterion, reduction,
                                   device, dtype, masked)
                        return got, want

                    yield SelfCheck(
                        dtype, f"{criterion:11s} {reduction:10s} {'masked' if masked else 'plain'}",
                        {"criterion": criterion, "reduction": reduction, "masked": masked}, run)


SANITIZER_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _sanitizer_layers(device, dtype):
    """(inputs, targets, masks): a 4-D layer with odd sizes, a 2-D layer at a misaligned storage
    offset, an empty layer; one-channel, full and no mask."""
    gen = torch.Generator(device=device).manual_seed(0)

    def randn(*shape):
        return torch.randn(shape, generator=gen, device=device, dtype=dtype)

    xs = [randn(2, 3, 17, 19), randn(2001)[1:].view(2, 1000), randn(2, 0, 3)]
    ys = [randn(2, 3, 17, 19), randn(2, 1000), randn(2, 0, 3)]
    masks = [torch.rand(2, 1, 17, 19, generator=gen, device=device, dtype=dtype),
             torch.rand(2, 1000, generator=gen, device=device, dtype=dtype), None]
    return xs, ys, masks


def sanitizer_calls(device: str) -> int:
    """Small feature_loss calls for compute-sanitizer (tools/sanitize_case.py): every criterion x
    reduction x dtype, with and without masks, forward and backward (an upstream gradient != 1,
    then a retained second backward that recomputes the gradients). Odd sizes, a misaligned view
    and an empty layer reach the tail and scalar paths. Returns the number of forward calls."""
    calls = 0
    for dtype in SANITIZER_DTYPES:
        for criterion in CRITERIA:
            for reduction in REDUCTIONS:
                for masked in (False, True) if criterion != "fro" else (False,):
                    xs, ys, masks = _sanitizer_layers(device, dtype)
                    xs = [x.detach().requires_grad_() for x in xs]
                    ys[0].requires_grad_()  # one target gradient too
                    loss = functional.feature_loss(xs, ys, [0.5, 1.0, 2.0], criterion,
                                                   reduction, masks if masked else None)
                    upstream = torch.full_like(loss, 0.75)
                    loss.backward(upstream, retain_graph=True)
                    loss.backward(upstream)
                    calls += 1
    return calls


SUITE = Suite(name="feature", op="feature_loss", cpu_cases=CPU_CASES, gpu_cases=GPU_CASES,
              reference=reference.feature_loss, ganloss=functional.feature_loss,
              make_inputs=make_inputs, call=call, floor_bytes=floor_bytes,
              self_checks=self_checks, check_stages=CHECK_STAGES,
              sanitizer_calls=sanitizer_calls,
              cpu_goal={"reference": 2.0, "reference_compiled": 1.0})  # 2x eager, as fast as compile
