"""The Gram/style family's suite (style_loss): its benchmark cases (CPU and GPU sets), inputs, loss
call, floor bytes and floor FLOPs, the main job's self-checks of style_loss and gram_matrix
against the float64 reference, and its calls for compute-sanitizer.
Rule: imports the harness and the public style_loss / gram_matrix of ganloss_cuda.functional and
ganloss_cuda.reference only; nothing of another family. Listed in benchmark/__init__.SUITES.

Floors (docs/performance.md §6): per layer one Gram GEMM is 2*B*C^2*K FLOPs (K = H*W); fwd does
the input's and the target's Grams (1 GEMM with precomputed target Grams), fwd_bwd also the
gradient GEMM dX = 2 s E X. Bytes: fwd reads X and Y once (or X and the target Grams), fwd_bwd
also reads X again and writes dX.
"""
import contextlib
import math
from dataclasses import dataclass
from typing import Tuple

import torch

from .. import functional, reference
from .harness import DTYPE_NAMES, CaseBase, SelfCheck, Suite

NORMALIZATION = "chw"  # BasicSR, mmagic, fast-neural-style
TARGET_SCALE = 0.5  # targets' features are the inputs' scaled by this: see make_inputs


@dataclass(frozen=True)
class Case(CaseBase):
    """One input of ``op``: the layer shapes (N, C, H, W), dtype, criterion, targets given as
    features or as precomputed Grams of one style image, and for fp32 whether matmuls may use
    TF32 (run under torch.set_float32_matmul_precision("high"); dtype column "tf32")."""

    op: str
    name: str
    shapes: Tuple[Tuple[int, ...], ...]
    dtype: torch.dtype = torch.float32
    criterion: str = "l1"
    target_is_gram: bool = False
    tf32: bool = False
    quick: bool = False  # part of the --quick subset

    @property
    def dtype_name(self) -> str:
        return "tf32" if self.tf32 else DTYPE_NAMES[self.dtype]

    @contextlib.contextmanager
    def settings(self):
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high" if self.tf32 else "highest")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(before)

    @property
    def numel(self) -> int:
        return sum(math.prod(s) for s in self.shapes)


def vgg19_shapes(batch: int, size: int):
    """VGG19 relu1_1 .. relu5_1 for a batch of size x size images."""
    return tuple((batch, c, size >> i, size >> i) for i, c in enumerate((64, 128, 256, 512, 512)))


def fns_shapes(batch: int, size: int):
    """fast-neural-style's VGG16 relu1_2, relu2_2, relu3_3, relu4_3 for size x size images."""
    return tuple((batch, c, size >> i, size >> i) for i, c in enumerate((64, 128, 256, 512)))


CPU_CASES = (
    Case("style_loss", "vgg19-b2-128x128", vgg19_shapes(2, 128), quick=True),
    Case("style_loss", "fns-b2-64x64", fns_shapes(2, 64), criterion="mse", target_is_gram=True,
         quick=True),
)
GPU_CASES = (
    Case("style_loss", "vgg19-b16-256x256", vgg19_shapes(16, 256), torch.bfloat16),
    Case("style_loss", "vgg19-b16-256x256", vgg19_shapes(16, 256)),
    Case("style_loss", "vgg19-b16-256x256", vgg19_shapes(16, 256), tf32=True),
    Case("style_loss", "fns-b4-256x256", fns_shapes(4, 256), torch.bfloat16, "mse",
         target_is_gram=True, quick=True),
    Case("style_loss", "fns-b4-256x256", fns_shapes(4, 256), criterion="mse",
         target_is_gram=True),
)


def make_inputs(case: Case, device: str, gen: torch.Generator) -> tuple:
    """(xs, ys): inputs that require grad; targets that do not: features, or the Grams (1, C, C)
    of one style image's features (computed here, once, outside the timed call).

    Features are ReLU-like (|N(0, 1)|) and the targets' are scaled by TARGET_SCALE, so the
    entries of D = G(x) - G(y) lie far from 0 (before normalization: mean 0.48 K off the
    diagonal, 0.75 K on it; 0.6 sqrt(K) and 0.5 sqrt(K) standard deviations: 4 at the smallest
    K here, 64, 10 at K = 256): the L1 gradient sign(D) is then the float64 reference's in every
    precision and the gate checks the kernels, not the rounding of an entry near 0. For TF32
    cases the fp32 values are cut to TF32's 10-bit mantissa, so TF32 reads them exactly and the
    fp32 tolerance applies."""

    def features(shape, scale):
        t = torch.randn(shape, generator=gen, device=device).abs_().mul_(scale)
        if case.tf32:
            t.view(torch.int32).bitwise_and_(-(1 << 13))
        return t.to(case.dtype)

    xs = [features(s, 1.0).requires_grad_() for s in case.shapes]
    if case.target_is_gram:
        ys = [reference.gram_matrix(features((1,) + s[1:], TARGET_SCALE), NORMALIZATION)
              for s in case.shapes]
    else:
        ys = [features(s, TARGET_SCALE) for s in case.shapes]
    return xs, ys


def call(fn, case: Case, inputs) -> torch.Tensor:
    xs, ys = inputs
    return fn(xs, ys, [1.0] * len(xs), case.criterion, NORMALIZATION, "mean", case.target_is_gram)


# Gram GEMMs (2 B C^2 K FLOPs each) and passes over the features: fwd computes G(x) and G(y) and
# reads x and y; fwd_bwd also computes dX = 2 s E X, reading x again and writing dx. Targets
# given as Grams take one GEMM and one pass less (and read the Grams).
GEMMS = {"fwd": 2, "fwd_bwd": 3}
PASSES = {"fwd": 2, "fwd_bwd": 4}


def floor_flops(case: Case, mode: str) -> int:
    per_gemm = sum(2 * n * c * c * math.prod(spatial) for n, c, *spatial in case.shapes)
    return (GEMMS[mode] - case.target_is_gram) * per_gemm


def floor_bytes(case: Case, mode: str) -> int:
    features = (PASSES[mode] - case.target_is_gram) * case.numel * case.dtype.itemsize
    if not case.target_is_gram:
        return features
    gram_itemsize = 8 if case.dtype == torch.float64 else 4
    return features + sum(s[1] ** 2 for s in case.shapes) * gram_itemsize


# Self-checks of the main job, per dtype: style_loss with every criterion, normalization,
# reduction and target form (features, Grams (N, C, C), Grams (1, C, C) broadcast), targets with
# and without grad; gram_matrix forward and backward per normalization.
CHECK_SHAPES = ((2, 3, 5, 7), (2, 4, 3, 3), (2, 5, 16))
CHECK_WEIGHTS = (0.5, 1.0, 2.0)
# (criterion, normalization, reduction, target: "features" | "gram" | "gram1", target grad)
# Under 2^16 (16-bit checks) their largest gradient stays below a third of float16's 65504;
# normalization "none" (whose gradients do not shrink with C*H*W) is checked by gram_matrix.
STYLE_CHECKS = (
    ("l1", "chw", "mean", "features", True),
    ("mse", "hw", "mean", "gram", True),
    ("fro", "nchw", "mean", "features", False),
    ("l1", "hw", "per_sample", "gram1", True),
    ("mse", "chw", "per_sample", "features", False),
    ("fro", "hw", "sum", "gram1", False),
    ("mse", "chw", "sum", "features", True),
)
# Upstream gradient of the checks: GradScaler's 2^16 for 16-bit inputs (gradients must not be
# rounded to 16 bits before it is applied), else 0.75; times linspace(0.5, 1.5) per sample.
UPSTREAM = {torch.float16: 2.0 ** 16, torch.bfloat16: 2.0 ** 16}
CHECK_STAGES = {"style_loss": ("loss", "grads"), "style_loss_backward": ("grads",),
                "gram_matrix": ("gram", "gram_grad"), "gram_matrix_backward": ("gram_grad",)}


def _acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_tensors(dtype, target):
    """Inputs and targets (features, Grams of other features (N, C, C) or of one sample
    (1, C, C)) rounded to their dtype (Grams to the accumulation dtype) and held in float64 on
    CPU, so the float64 reference sees exactly the tested values."""
    gen = torch.Generator().manual_seed(0)

    def rand(shape, to=dtype):
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(to).double()

    xs = [rand(s) for s in CHECK_SHAPES]
    if target == "features":
        return xs, [rand(s) for s in CHECK_SHAPES]
    rows = {"gram": None, "gram1": slice(0, 1)}[target]
    grams = [reference.gram_matrix(rand(s)[rows] if rows else rand(s)) for s in CHECK_SHAPES]
    return xs, [g.to(_acc(dtype)).double() for g in grams]


def _style_run(fn, xs, ys, check, upstream, device, dtype) -> dict:
    """{loss, grads}: the loss, and the gradients of the inputs (and of the targets when the
    check asks) after a backward with the upstream gradient upstream * linspace(0.5, 1.5)."""
    criterion, normalization, reduction, target, target_grad = check
    ys_dtype = dtype if target == "features" else _acc(dtype)
    xs = [x.to(device, dtype, copy=True).requires_grad_() for x in xs]
    ys = [y.to(device, ys_dtype, copy=True).requires_grad_(target_grad) for y in ys]
    loss = fn(xs, ys, CHECK_WEIGHTS, criterion, normalization, reduction, target != "features")
    c = upstream * torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype,
                                                   device=device).reshape(loss.shape)
    (loss * c).sum().backward()
    return {"loss": loss.detach(), "grads": [t.grad for t in xs + (ys if target_grad else [])]}


def _gram_run(fn, x, upstream, normalization, device, dtype) -> dict:
    """{gram, gram_grad}: the Gram and the gradient of the features for the upstream gradient."""
    x = x.to(device, dtype, copy=True).requires_grad_()
    g = fn(x, normalization)
    (g * upstream.to(device, g.dtype)).sum().backward()
    return {"gram": g.detach(), "gram_grad": x.grad}


def self_checks(device: str):
    """functional.style_loss and gram_matrix on device against the float64 reference on CPU,
    per dtype (float64, float32, bfloat16, float16): STYLE_CHECKS, then gram_matrix per
    normalization on odd sizes."""
    for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
        for check in STYLE_CHECKS:
            def run(dtype=dtype, check=check):
                xs, ys = _check_tensors(dtype, check[3])
                upstream = UPSTREAM.get(dtype, 0.75)
                want = _style_run(reference.style_loss, xs, ys, check, upstream, "cpu",
                                  torch.float64)
                got = _style_run(functional.style_loss, xs, ys, check, upstream, device, dtype)
                return got, want

            yield SelfCheck(dtype, "style_loss  {:4s} {:4s} {:10s} {:8s} {}".format(
                *check[:4], "target grad" if check[4] else ""),
                dict(zip(("criterion", "normalization", "reduction", "target", "target_grad"),
                         check)), run)
        for normalization in reference.NORMALIZATIONS:
            def run(dtype=dtype, normalization=normalization):
                gen = torch.Generator().manual_seed(1)
                x = torch.randn(2, 5, 7, 3, generator=gen, dtype=torch.float64).to(dtype).double()
                shape = reference.gram_matrix(x, normalization).shape
                upstream = torch.randn(shape, generator=gen, dtype=torch.float64)
                want = _gram_run(reference.gram_matrix, x, upstream, normalization, "cpu",
                                 torch.float64)
                return _gram_run(functional.gram_matrix, x, upstream, normalization, device,
                                 dtype), want

            yield SelfCheck(dtype, f"gram_matrix {normalization}",
                            {"normalization": normalization}, run, values=("gram",))


SANITIZER_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
# (normalization, reduction) pairs taken in turn: every normalization and reduction is reached.
SANITIZER_PAIRS = (("chw", "mean"), ("hw", "sum"), ("none", "per_sample"), ("nchw", "mean"))


def _sanitizer_layers(device, dtype):
    """Inputs and target features: odd C and H*W, a channels_last layer whose C crosses a 64-row
    tile, a long H*W (split-K), an empty layer."""
    gen = torch.Generator(device=device).manual_seed(0)

    def layers():
        def randn(*shape):
            return torch.randn(shape, generator=gen, device=device, dtype=dtype)

        return [randn(2, 3, 17, 19),
                randn(2, 70, 9, 11).contiguous(memory_format=torch.channels_last),
                randn(2, 16, 64, 64), randn(2, 4, 0, 3)]

    return layers(), layers()


def sanitizer_calls(device: str) -> int:
    """Small style_loss and gram_matrix calls for compute-sanitizer (tools/sanitize_case.py):
    per dtype, every criterion with every target form (features with grad, Grams (N, C, C) with
    grad, Grams (1, C, C) broadcast; (N*C, N*C) for 'nchw'), the (normalization, reduction) pairs
    in turn, forward and backward with an upstream gradient != 1; then gram_matrix forward and
    backward per normalization. Returns the number of forward calls."""
    calls = 0
    for dtype in SANITIZER_DTYPES:
        for criterion in reference.STYLE_CRITERIA:
            for target in ("features", "gram", "gram1"):
                normalization, reduction = SANITIZER_PAIRS[calls % len(SANITIZER_PAIRS)]
                xs, ys = _sanitizer_layers(device, dtype)
                xs = [x.requires_grad_() for x in xs]
                if target != "features":
                    rows = slice(0, 1) if target == "gram1" and normalization != "nchw" else None
                    ys = [functional.gram_matrix(y[rows] if rows else y, normalization)
                          for y in ys]
                ys = [y.requires_grad_(target != "gram1") for y in ys]
                loss = functional.style_loss(xs, ys, [0.5, 1.0, 2.0, 1.0], criterion,
                                             normalization, reduction, target != "features")
                loss.backward(torch.full_like(loss, 0.75))
                calls += 1
        for normalization in reference.NORMALIZATIONS:
            for x in _sanitizer_layers(device, dtype)[0]:
                g = functional.gram_matrix(x.requires_grad_(), normalization)
                g.backward(torch.full_like(g, 0.75))
                calls += 1
    return calls


SUITE = Suite(name="gram", op="style_loss", cpu_cases=CPU_CASES, gpu_cases=GPU_CASES,
              reference=reference.style_loss, ganloss=functional.style_loss,
              make_inputs=make_inputs, call=call, floor_bytes=floor_bytes,
              floor_flops=floor_flops, self_checks=self_checks, check_stages=CHECK_STAGES,
              sanitizer_calls=sanitizer_calls,
              cpu_goal={"reference": 1.0, "reference_compiled": 1.0})  # not slower than either
