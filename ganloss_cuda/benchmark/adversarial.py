"""The adversarial family's suite (adversarial_loss, discriminator_loss): its benchmark cases (CPU
and GPU sets), inputs, loss call and floor bytes, the main job's self-checks against the float64
reference, and its calls for compute-sanitizer.
Rule: imports the harness and the public adversarial functions of ganloss_cuda.functional and
ganloss_cuda.reference only; nothing of another family. Listed in benchmark/__init__.SUITES.

These losses are launch bound, not bytes bound (docs/performance.md §7): a few thousand logits
per scale, while eager PyTorch dispatches about 18 kernels per pix2pixHD call. The bytes floor
(read the logits once, and write their gradient once in fwd_bwd) is kept for the table's GB/s,
but the floor that binds is the launches: 1 forward + 1 backward launch for ganloss. On a GPU the
suite asks the harness for the CUDA-graph replay time of each step (``graph_replay``): the
device time without host dispatch; ``median_ms`` there is the host wall time per call (the timer
synchronizes only at the ends of a batch of calls).
"""
import math
from dataclasses import dataclass
from typing import Tuple

import torch

from .. import functional, reference
from .harness import CaseBase, SelfCheck, Suite

_FUSED = (functional.adversarial_loss, functional.discriminator_loss)


@dataclass(frozen=True)
class Case(CaseBase):
    """One training step's loss call: ``side`` "d" (discriminator_loss of real and fake outputs,
    all requiring grad) or "g" (adversarial_loss of the fake outputs, target real), the outputs'
    shapes (one per discriminator scale, the same for real and fake), gan type, weight,
    aggregation over scales, reduction (per_sample losses are averaged, as StyleGAN2's training
    loop does before backward) and dtype."""

    op: str
    name: str
    side: str
    shapes: Tuple[Tuple[int, ...], ...]
    gan_type: str
    weight: float = 1.0
    aggregation: str = "mean"
    reduction: str = "mean"
    dtype: torch.dtype = torch.float32
    quick: bool = False  # part of the --quick subset

    @property
    def numel(self) -> int:
        """Logits the step reads: real and fake for "d", fake for "g"."""
        return sum(math.prod(s) for s in self.shapes) * (2 if self.side == "d" else 1)


def patch_shapes(batch: int, height: int, width: int, num_d: int = 3, n_layers: int = 3):
    """Logits of pix2pixHD's multi-scale NLayerDiscriminator: convs k=4, pad=2, strides 2 x
    n_layers then 1, then the 1-channel conv (stride 1); AvgPool(3, 2, 1) between scales. For
    512x1024: (B, 1, 67, 131), (B, 1, 35, 67), (B, 1, 19, 35)."""
    shapes = []
    for _ in range(num_d):
        h, w = height, width
        for i in range(n_layers + 2):
            stride = 2 if i < n_layers else 1
            h, w = h // stride + 1, w // stride + 1
        shapes.append((batch, 1, h, w))
        height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
    return tuple(shapes)


def _cases(dtype, quick_sides=(), batches=(1, 4)):
    """Per workload a D and a G step: pix2pixHD (LSGAN, 3 scales, D weight 0.5, sum over scales)
    at each batch, BasicSR's VGGStyleDiscriminator (N, 1) logits (vanilla, G loss_weight 0.005
    as in ESRGAN's options), StyleGAN-like (N, 1) logits (non-saturating softplus, per sample).
    Quick: pix2pixHD at batch 1 on quick_sides ("d", "g")."""
    workloads = [(f"pix2pixhd3-b{b}-512x1024", patch_shapes(b, 512, 1024), "lsgan", (0.5, 1.0),
                  "sum", "mean") for b in batches]
    workloads += [("basicsr-vgg-b16", ((16, 1),), "vanilla", (1.0, 0.005), "mean", "mean"),
                  ("stylegan-b32", ((32, 1),), "softplus", (1.0, 1.0), "mean", "per_sample")]
    out = []
    for name, shapes, gan_type, weights, aggregation, reduction in workloads:
        for side, op, weight in zip("dg", ("discriminator_loss", "adversarial_loss"), weights):
            out.append(Case(op, f"{name}-{side.upper()}", side, shapes, gan_type, weight,
                            aggregation, reduction, dtype,
                            quick=side in quick_sides and name.startswith("pix2pixhd3-b1-")))
    return tuple(out)


# CPU (CI: about 40 s on 2 cores, compiling included): pix2pixHD batch 1 D and G (3 scales),
# StyleGAN-like D (two single-scale tensors, per sample). GPU: every case in fp32, then in bf16
# (the most wanted first: tools/gpu_run.py skips the cases its time budget does not reach).
CPU_CASES = tuple(c for c in _cases(torch.float32, ("d",), batches=(1,))
                  if c.name.startswith("pix2pixhd") or c.name == "stylegan-b32-D")
GPU_CASES = _cases(torch.float32, ("d", "g")) + _cases(torch.bfloat16)


def _loss_fn(adversarial_loss, discriminator_loss):
    """The step's loss of one provider's pair of functions; a per_sample loss is averaged."""

    def loss(side, reals, fakes, gan_type, weight, aggregation, reduction):
        if side == "d":
            out = discriminator_loss(reals, fakes, gan_type, weight=weight,
                                     aggregation=aggregation, reduction=reduction)
        else:
            out = adversarial_loss(fakes, True, gan_type, weight=weight, aggregation=aggregation,
                                   reduction=reduction)
        return out.mean() if reduction == "per_sample" else out

    return loss


reference_loss = _loss_fn(reference.adversarial_loss, reference.discriminator_loss)
ganloss_loss = _loss_fn(*_FUSED)


def make_inputs(case: Case, device: str, gen: torch.Generator) -> tuple:
    """(reals, fakes): N(0, 1) logits that require grad (reals empty on the "g" side)."""

    def logits():
        return [torch.randn(s, generator=gen, device=device, dtype=case.dtype).requires_grad_()
                for s in case.shapes]

    return (logits() if case.side == "d" else []), logits()


def call(fn, case: Case, inputs) -> torch.Tensor:
    reals, fakes = inputs
    return fn(case.side, reals, fakes, case.gan_type, case.weight, case.aggregation,
              case.reduction)


def floor_bytes(case: Case, mode: str) -> int:
    """Read the logits once (fwd); also write their gradient once (fwd_bwd)."""
    return (1 if mode == "fwd" else 2) * case.numel * case.dtype.itemsize


# Self-checks of the main job: every gan type x dtype x check, against the float64 reference.
# Shapes: odd 4-D patch outputs and a 2-D (N, 1)-like output; real and fake differ in shapes and
# scale counts. The smallest per-sample count is 20, so that 2^16 x the largest term derivative
# (bce on [0.1, 0.9]: 1 / 0.09) x linspace's 1.5 / 20 stays under float16's 65504.
REAL_SHAPES = ((2, 1, 9, 11), (2, 1, 4, 5))
FAKE_SHAPES = ((2, 1, 9, 11), (2, 1, 5, 7), (2, 20))
# (function, target_is_real, is_disc, labels, weight, aggregation, reduction)
CHECKS = (
    ("adversarial_loss", True, False, (1.0, 0.0), 0.75, "mean", "mean"),
    ("adversarial_loss", False, True, (0.9, 0.1), 1.0, "sum", "per_sample"),
    ("discriminator_loss", None, True, (0.9, 0.0), 0.5, "sum", "mean"),
    ("discriminator_loss", None, True, (1.0, 0.2), 1.0, "mean", "per_sample"),
)
CHECK_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
# Upstream gradient: GradScaler's 2^16 for 16-bit inputs (gradients must not be rounded to 16
# bits before it is applied), else 0.75; times linspace(0.5, 1.5) per sample.
UPSTREAM = {torch.float16: 2.0 ** 16, torch.bfloat16: 2.0 ** 16}
CHECK_STAGES = {"adversarial_loss": ("loss",), "adversarial_loss_backward": ("grads",)}


def _logits(shapes, gan_type, dtype, gen):
    """Inputs rounded to dtype and held in float64 on CPU (the float64 reference sees exactly the
    tested values): N(0, 1) logits, or probabilities on [0.1, 0.9] for bce."""
    out = []
    for s in shapes:
        if gan_type == "bce":
            t = 0.1 + 0.8 * torch.rand(s, generator=gen, dtype=torch.float64)
        else:
            t = torch.randn(s, generator=gen, dtype=torch.float64)
        out.append(t.to(dtype).double())
    return out


def _check_run(fns, check, gan_type, reals, fakes, upstream, device, dtype) -> dict:
    """{loss, grads}: the loss, and the gradients of every input after a backward with the
    upstream gradient upstream * linspace(0.5, 1.5)."""
    name, target_is_real, is_disc, (real_label, fake_label), weight, aggregation, reduction = check
    reals = [t.to(device, dtype, copy=True).requires_grad_() for t in reals]
    fakes = [t.to(device, dtype, copy=True).requires_grad_() for t in fakes]
    labels = dict(real_label=real_label, fake_label=fake_label, weight=weight,
                  aggregation=aggregation, reduction=reduction)
    if name == "discriminator_loss":
        loss = fns[1](reals, fakes, gan_type, **labels)
    else:
        reals = []
        loss = fns[0](fakes, target_is_real, gan_type, is_disc, **labels)
    c = upstream * torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype,
                                  device=device).reshape(loss.shape)
    (loss * c).sum().backward()
    return {"loss": loss.detach(), "grads": [t.grad for t in reals + fakes]}


def self_checks(device: str):
    """The ganloss functions on device against the float64 reference on CPU, per dtype (float64,
    float32, bfloat16, float16) x gan type x CHECKS (generator and discriminator sides, real and
    fake targets, label smoothing, loss weight, sum and mean over scales, mean and per_sample)."""
    for dtype in CHECK_DTYPES:
        for gan_type in reference.GAN_TYPES:
            for check in CHECKS:
                def run(dtype=dtype, gan_type=gan_type, check=check):
                    gen = torch.Generator().manual_seed(0)
                    reals = _logits(REAL_SHAPES, gan_type, dtype, gen)
                    fakes = _logits(FAKE_SHAPES, gan_type, dtype, gen)
                    upstream = UPSTREAM.get(dtype, 0.75)
                    want = _check_run((reference.adversarial_loss, reference.discriminator_loss),
                                      check, gan_type, reals, fakes, upstream, "cpu",
                                      torch.float64)
                    got = _check_run(_FUSED, check, gan_type, reals, fakes, upstream, device,
                                     dtype)
                    return got, want

                target = {True: "real", False: "fake", None: "real+fake"}[check[1]]
                yield SelfCheck(
                    dtype, f"{check[0]:18s} {gan_type:8s} {target:9s} "
                           f"{'D' if check[2] else 'G'} {check[5]:4s} {check[6]}",
                    {"function": check[0], "gan_type": gan_type, "target": target,
                     "is_disc": check[2], "aggregation": check[5], "reduction": check[6]}, run)


SANITIZER_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _sanitizer_outputs(device, dtype, gan_type):
    """Three scales: odd 4-D sizes, a 2-D output at a misaligned storage offset, a
    non-contiguous (transposed) view; probabilities for bce."""
    gen = torch.Generator(device=device).manual_seed(0)

    def rand(*shape):
        if gan_type == "bce":
            return torch.rand(shape, generator=gen, device=device, dtype=dtype) * 0.8 + 0.1
        return torch.randn(shape, generator=gen, device=device, dtype=dtype)

    return [rand(3, 1, 17, 19), rand(1 + 3 * 333)[1:].view(3, 333), rand(5, 3).t()]


def sanitizer_calls(device: str) -> int:
    """Small adversarial_loss and discriminator_loss calls for compute-sanitizer
    (tools/sanitize_case.py): per dtype x gan type x reduction (mean, per_sample), the generator
    side on real and on fake targets and the discriminator side (real and fake of different
    scale counts), forward and backward with an upstream gradient != 1. Returns the number of
    forward calls."""
    calls = 0
    for dtype in SANITIZER_DTYPES:
        for gan_type in reference.GAN_TYPES:
            for reduction in reference.ADV_REDUCTIONS:
                for side in ("real", "fake", "d"):
                    xs = [x.requires_grad_() for x in
                          _sanitizer_outputs(device, dtype, gan_type)]
                    if side == "d":
                        loss = _FUSED[1](xs[:1], xs[1:], gan_type, real_label=0.9, weight=0.5,
                                         aggregation="sum", reduction=reduction)
                    else:
                        loss = _FUSED[0](xs, side == "real", gan_type, weight=0.75,
                                         reduction=reduction)
                    loss.backward(torch.full_like(loss, 0.75))
                    calls += 1
    return calls


SUITE = Suite(name="adversarial", op="adversarial_loss", cpu_cases=CPU_CASES,
              gpu_cases=GPU_CASES, reference=reference_loss, ganloss=ganloss_loss,
              make_inputs=make_inputs, call=call, floor_bytes=floor_bytes,
              self_checks=self_checks, check_stages=CHECK_STAGES,
              sanitizer_calls=sanitizer_calls, graph_replay=True,
              cpu_goal={"reference": 2.0, "reference_compiled": 1.0})  # 2x eager, >= compile
