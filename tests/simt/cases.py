"""The cases of the SIMT emulation tier: every CUDA kernel instantiation of the feature loss,
emulated, against the float64 reference, and the self-test kernels with what each must show.

Importable without the module (tests/test_simt.py takes the case names from here); run_case()
runs one case in the process that loaded it (run_cases.py)."""
import math
import zlib
from dataclasses import dataclass, field

import torch

DTYPES = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16}
CRITERIA = ("l1", "mse", "charbonnier", "fro")
REDUCTIONS = ("mean", "sum", "per_sample")
# none; full (a mask of x's shape); nchw1 / nhwc1: one channel over contiguous / channels_last x
MASKS = ("none", "full", "nchw1", "nhwc1")
# (seed, policy): uniform random, random warp priorities, priorities with random demotions
SCHEDULES = ((1, 0), (2, 1), (3, 2))
EPS = 1e-3


@dataclass
class FeatureCase:
    name: str
    dtype: str
    criterion: str
    reduction: str
    mask: str
    shapes: list
    mask_dtype: str = ""      # default: the input dtype
    misaligned: bool = False  # x, y, mask start one element into their buffers
    weights: list = field(default_factory=list)


def _feature_cases():
    # Layer shapes: odd sizes (scalar path and tails), an aligned layer longer than one chunk
    # (vector path, several chunks and rows), an empty layer (no chunks, launch boundaries).
    odd, aligned, empty = (2, 3, 5, 7), (2, 16, 40, 40), (2, 0, 4, 4)
    cases = []
    for di, dt in enumerate(DTYPES):
        k = 0
        for crit in CRITERIA:
            for mask in MASKS:
                if crit == "fro" and mask != "none":
                    continue  # fro takes no masks
                red = REDUCTIONS[(k + di) % 3]
                k += 1
                flat = mask == "none" and red != "per_sample"  # a 1-D layer
                shapes = [odd, aligned, empty] + ([(1000,)] if flat else [])
                mask_dtype = "f32" if dt in ("f16", "bf16") and k % 2 else ""
                cases.append(FeatureCase(f"feature/{dt}-{crit}-{mask}-{red}", dt, crit, red, mask,
                                         shapes, mask_dtype, weights=[0.5, 2.0, 1.0, 3.0][:len(shapes)]))
    # More than 24 layers (several launches), empty layers at the boundaries of launch 1 and 2.
    many = [(2, 3, 4, 1 + i % 5) for i in range(30)]
    many[23] = many[24] = (2, 0, 4, 4)
    for red in REDUCTIONS:
        cases.append(FeatureCase(f"feature/f32-mse-none-{red}-30layers", "f32", "mse", red, "none",
                                 many))
    cases.append(FeatureCase("feature/f16-l1-full-per_sample-30layers", "f16", "l1", "per_sample",
                             "full", many))
    # Misaligned pointers: every tensor starts one element into its buffer (scalar path).
    for dt in ("f32", "f16"):
        cases.append(FeatureCase(f"feature/{dt}-charbonnier-full-mean-misaligned", dt,
                                 "charbonnier", "mean", "full", [(2, 8, 16, 16)], misaligned=True))
    # A layer of 1M elements (many blocks).
    cases.append(FeatureCase("feature/f32-l1-none-mean-1M", "f32", "l1", "mean", "none",
                             [(4, 64, 64, 64)]))
    cases.append(FeatureCase("feature/bf16-mse-nchw1-per_sample-1M", "bf16", "mse", "per_sample",
                             "nchw1", [(4, 64, 64, 64)]))
    return cases


FEATURE_CASES = {c.name: c for c in _feature_cases()}


@dataclass
class GramCase:
    """A style_loss (op "style") or gram_matrix (op "gram") case on [B, C, K] features."""
    name: str
    dtype: str
    shapes: list              # (B, C, K) per layer
    op: str = "style"
    criterion: str = "l1"
    reduction: str = "mean"
    target: str = "features"  # features | gram ([B, C, C]) | gram1 ([1, C, C]) | gram16 (fp16 [B, C, C])
    channels_last: bool = False  # features with stride(1) == 1
    tf32: bool = False
    target_grad: bool = True
    weights: list = field(default_factory=list)


def _gram_cases():
    # Layer shapes: split-K (K >= 2 * kGramMinSlab: 2 slabs) with C = 3 (one tile, odd K), odd C
    # over two tiles (3 tile pairs, mirrored) with K tails, and a full aligned tile (16-byte loads
    # along K, or along C for channels_last).
    shapes = [(2, 3, 519), (2, 65, 77), (2, 64, 96)]
    engines = [("f64", False), ("f32", False), ("f32", True), ("f16", False), ("bf16", False)]
    targets = ("features", "gram", "gram1")
    cases = []
    for ei, (dt, tf32) in enumerate(engines):
        tag = dt + ("-tf32" if tf32 else "")
        # Tensor-core engines (emulated mma_sync is slow): L1 (no lo split) and one split criterion.
        crits = ("l1", "mse", "fro") if dt in ("f64", "f32") and not tf32 else ("l1", "fro" if ei % 2 else "mse")
        for ci, crit in enumerate(crits):
            red = REDUCTIONS[(ei + ci) % 3]
            target = targets[(ei + 2 * ci) % 3]
            cl = (ei + ci) % 2 == 1
            cases.append(GramCase(f"gram/{tag}-{crit}-{red}-{target}{'-cl' if cl else ''}", dt,
                                  shapes, "style", crit, red, target, cl, tf32,
                                  target_grad=(ei + ci) % 4 != 3, weights=[0.5, 2.0, 1.5]))
        for cl in (False, True):
            cases.append(GramCase(f"gram/{tag}-gram_matrix{'-cl' if cl else ''}", dt,
                                  [(1, 65, 40)] if cl else [(1, 3, 519)], "gram",
                                  channels_last=cl, tf32=tf32))
    # More layers than one launch holds (kGramLayersPerLaunch = 12), with empty layers; a target
    # Gram in another dtype than the accumulation type.
    many = [(2, 1 + i % 5, 3 + 7 * i) for i in range(14)]
    many[11] = (2, 0, 8)
    many[12] = (2, 4, 0)
    for red in REDUCTIONS:
        cases.append(GramCase(f"gram/f32-mse-{red}-14layers", "f32", many, "style", "mse", red))
    many[11] = (2, 2, 8)
    cases.append(GramCase("gram/f32-l1-per_sample-gram16-14layers", "f32", many, "style", "l1",
                          "per_sample", "gram16"))
    return cases


GRAM_CASES = {c.name: c for c in _gram_cases()}

@dataclass
class AdvCase:
    """An adversarial_loss call: one tensor per discriminator scale, each with its target."""
    name: str
    dtype: str
    gan_type: str
    shapes: list
    real: list                # per tensor: target real (else fake)
    is_disc: bool = True
    per_sample: bool = False
    labels: tuple = (1.0, 0.0)  # real_label, fake_label
    values: str = "randn"     # randn | extreme (+-100, +-inf among them) | nan
    misaligned: bool = False  # every tensor starts one element into its buffer (scalar path)


GAN_TYPES = ("lsgan", "vanilla", "bce", "wgan", "softplus", "hinge")


def _adversarial_cases():
    # Three scales of odd sizes (a 16-byte aligned first row with a tail, misaligned second rows:
    # both paths) and, without per_sample, a 1-element tensor; a scale longer than one chunk
    # (4096 fp32 / 8192 16-bit elements per row: several chunks per segment).
    scales, big = [(2, 1, 30, 30), (2, 1, 15, 15), (2, 1, 7, 3)], [(2, 1, 100, 100), (2, 1, 5, 5)]
    cases = []
    for di, dt in enumerate(DTYPES):
        for gi, gan in enumerate(GAN_TYPES):
            k = di * len(GAN_TYPES) + gi
            per_sample = k % 2 == 1
            is_disc = k % 3 != 2
            shapes = scales + ([] if per_sample else [(1,)])
            real = [i < 2 for i in range(len(shapes))] if is_disc else [k % 4 < 2] * len(shapes)
            labels = (0.9, 0.1) if k % 4 == 1 else (1.0, 0.0)
            side = "D" if is_disc else "G"
            name = f"adversarial/{dt}-{gan}-{side}-{'per_sample' if per_sample else 'mean'}"
            cases.append(AdvCase(name, dt, gan, shapes, real, is_disc, per_sample, labels))
    for gi, gan in enumerate(GAN_TYPES):  # multi-chunk segments
        dt = ("f32", "bf16")[gi % 2]
        cases.append(AdvCase(f"adversarial/{dt}-{gan}-D-{'per_sample' if gi % 2 else 'mean'}-big",
                             dt, gan, big, [True, False], True, gi % 2 == 1))
    # 40 chunks in one segment: the finalize's lanes sum more than one chunk partial each.
    cases.append(AdvCase("adversarial/f32-lsgan-G-mean-40chunks", "f32", "lsgan",
                         [(1, 1, 400, 400), (1, 1, 3, 3)], [False, False], False))
    for gan in ("lsgan", "vanilla", "wgan", "softplus", "hinge"):  # bce: probabilities only
        for dt, values in (("f32", "extreme"), ("f16", "extreme"), ("f32", "nan")):
            cases.append(AdvCase(f"adversarial/{dt}-{gan}-{values}", dt, gan, scales,
                                 [True, False, True], True, values == "nan", values=values))
    # More inputs than one launch holds (kAdvMaxTensorsPerLaunch = 32): two launches.
    many = [(2, 1 + i % 3, 3, 2 + i % 4) for i in range(40)]
    for per_sample in (False, True):
        cases.append(AdvCase(f"adversarial/f32-vanilla-D-{'per_sample' if per_sample else 'mean'}"
                             "-40scales", "f32", "vanilla", many, [i % 3 != 0 for i in range(40)],
                             True, per_sample, (0.9, 0.0)))
    for dt in ("f32", "f16"):
        cases.append(AdvCase(f"adversarial/{dt}-lsgan-D-mean-misaligned", dt, "lsgan",
                             [(2, 1, 40, 40), (3, 8, 8)], [True, False], misaligned=True))
    return cases


ADV_CASES = {c.name: c for c in _adversarial_cases()}

# Self-tests: name -> what must happen. "ok": runs and gives `expected`; "error: TEXT": the launch
# fails with TEXT in the message; "garbage": some output is NaN or differs between schedules.
SELFTESTS = {
    "block_sum": ("ok", [32896.0] * 4),
    "atomics": ("ok", [1024.0]),
    "dynamic_smem": ("ok", [float(i) for i in range(16384)]),
    "shuffles": ("ok", [float(i + 3 if i + 3 < 32 else i) for i in range(32)]
                 + [float(i - 5 if i >= 5 else i) for i in range(32)]
                 + [float(31 - i) for i in range(32)]
                 + [float(i ^ 1) for i in range(32)] + [1.0] * 32),
    "missing_syncthreads": ("garbage", None),
    "unwritten_shared": ("garbage", None),
    "half_barrier": ("error: deadlock", None),
    "divergent_barrier": ("error: __syncthreads reached from different lines", None),
    "half_warp_mask": ("error: is outside the mask 0x0000ffff", None),
    "source_outside_mask": ("error: which is outside the mask", None),
    "smem_over_limit": ("error: bytes of dynamic shared memory exceed", None),
}
# Crashes the process under AddressSanitizer: run on its own (tests/test_simt.py).
CRASH_SELFTESTS = {"out_of_bounds": "heap-buffer-overflow"}

CASES = [*FEATURE_CASES, *GRAM_CASES, *ADV_CASES, *(f"selftest/{n}" for n in SELFTESTS)]
# The CUDA ops each family's cases exercise (case names start with "<family>/").
OPS = {"feature": ["feature_loss", "feature_loss_backward", "feature_loss_scale_grads_"],
       "gram": ["gram_matrix", "gram_matrix_backward", "style_loss", "style_loss_backward"],
       "adversarial": ["adversarial_loss", "adversarial_loss_backward"]}


# ---------------------------------------------------------------------------------------------
# Running a case (needs the module, passed in).

def _inputs(case: FeatureCase):
    g = torch.Generator().manual_seed(zlib.crc32(case.name.encode()))
    dtype = DTYPES[case.dtype]
    mdtype = DTYPES[case.mask_dtype or case.dtype]

    def place(t):
        """t in the case's memory layout: one element into its buffer, or channels_last."""
        if case.misaligned:
            buf = torch.empty(t.numel() + 1, dtype=t.dtype)
            buf[1:] = t.reshape(-1)
            return buf[1:].view(t.shape)
        if case.mask == "nhwc1" and t.dim() == 4 and t.shape[1] > 1:
            return t.contiguous(memory_format=torch.channels_last)
        return t

    xs, ys, ms = [], [], []
    for shape in case.shapes:
        x = (torch.randn(shape, generator=g) * 2).to(dtype)
        y = torch.randn(shape, generator=g).to(dtype)
        if case.criterion == "l1":  # exact ties: the sign's zero
            y.view(-1)[::17] = x.view(-1)[::17]
        xs.append(place(x))
        ys.append(place(y))
        if case.mask != "none":
            mshape = shape if case.mask == "full" else (shape[0], 1, *shape[2:])
            keep = torch.rand(mshape, generator=g) > 0.3
            ms.append(place((keep * torch.rand(mshape, generator=g)).to(mdtype)))
    return xs, ys, ms


def _upstream(loss):
    """Upstream gradients: 1, 0.75, 2^16 (GradScaler), and per-sample values."""
    ups = [1.0, 0.75, 2.0 ** 16]
    out = [torch.full_like(loss, u) for u in ups]
    if loss.dim() == 1:
        out.append(torch.linspace(-2.0, 3.0, loss.numel(), dtype=loss.dtype))
    return out


def _reference(case, xs, ys, ms, upstream):
    from ganloss_cuda.reference import feature as ref

    x64 = [x.detach().double().requires_grad_() for x in xs]
    y64 = [y.detach().double().requires_grad_() for y in ys]
    m64 = [m.double() for m in ms] if ms else None
    loss = ref.feature_loss(x64, y64, case.weights or None, case.criterion, case.reduction, m64,
                            EPS)
    grads = []
    for u in upstream:
        gx = torch.autograd.grad(loss, x64 + y64, u.double(), retain_graph=True, allow_unused=True)
        grads.append([torch.zeros_like(t) if g is None else g for t, g in zip(x64 + y64, gx)])
    return loss.detach(), grads


def _check(actual, expected, dtype, kind, what):
    """The tests' tolerance rule; a 16-bit gradient whose exact value rounds to +-inf (a sum
    reduction times 2^16) must be that inf."""
    from ganloss_cuda._tolerance import assert_close

    try:
        if kind == "grad" and dtype in (torch.float16, torch.bfloat16):
            rounded = expected.to(dtype)
            inf = rounded.isinf()
            if not torch.equal(actual[inf], rounded[inf]):
                raise AssertionError("gradients that overflow the dtype are not the same inf")
            actual, expected = actual[~inf], expected[~inf]
        assert_close(actual, expected, dtype, kind)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None


def _check_stats(stats, xs, ys, args):
    """Per-segment sums of terms and mask and grad factors, against the CPU kernel's: the same
    fp64 sums of the same terms in another order."""
    import ganloss_cuda  # noqa: F401  (registers the ops)

    cpu = torch.ops.ganloss.feature_loss(xs, ys, *args, False, False)[1]
    scale = cpu.abs().amax(dim=0).clamp_min(1e-300)
    if not torch.allclose(stats / scale, cpu / scale, rtol=0, atol=1e-12, equal_nan=True):
        raise AssertionError(f"stats differ from the CPU kernel's:\n{stats}\n{cpu}")


def _bits(tensors):
    return [t.detach().contiguous().view(-1).view(torch.uint8).clone() for t in tensors]


def run_feature_case(m, case: FeatureCase):
    """Forward (loss, stats, gradients for upstream 1), backward and gradient scaling for every
    upstream gradient against the float64 reference under the first schedule of SCHEDULES; then
    the forward and the upstream-0.75 backward under the others, bitwise equal to the first."""
    dtype = DTYPES[case.dtype]
    xs, ys, ms = _inputs(case)
    args = (ms, case.weights, case.criterion, case.reduction, EPS)
    wide = dtype in (torch.float32, torch.float64)  # gradients from the forward
    first = None
    for seed, policy in SCHEDULES:
        m.set_schedule(seed, policy)
        loss, stats, dxs, dys = m.feature_loss(xs, ys, *args, wide, wide)
        upstream = _upstream(loss)
        if first is None:
            ref_loss, ref_grads = _reference(case, xs, ys, ms, upstream)
            _check(loss, ref_loss, dtype, "loss", "loss")
            _check_stats(stats, xs, ys, args)
        outputs = [loss, stats, *dxs, *dys]
        for k, u in enumerate(upstream):
            if first is not None and k != 1:  # other schedules: upstream 0.75 only
                continue
            bx, by = m.feature_loss_backward(u, stats, xs, ys, *args, True, True)
            for i, g in enumerate(bx + by):
                _check(g, ref_grads[k][i], dtype, "grad", f"backward, upstream {k}, gradient {i}")
            scaled = [t.clone() for t in dxs]
            if wide:  # the forward's gradients, scaled in place
                m.feature_loss_scale_grads_(u, stats, case.reduction, scaled)
                for i, g in enumerate(scaled):
                    _check(g, ref_grads[k][i], dtype, "grad", f"scaled, upstream {k}, input {i}")
            if k == 1:
                outputs += [*bx, *by, *scaled]
        bits = _bits(outputs)
        if first is None:
            first = bits
        elif any(not torch.equal(a, b) for a, b in zip(first, bits)):
            raise AssertionError(f"results differ between schedules {SCHEDULES[0]} and "
                                 f"{(seed, policy)}")


# ---------------------------------------------------------------------------------------------
# Gram / style cases.


def _tf32_rtol() -> float:
    """The tolerance table's TF32 row (10-bit mantissas), for the loss, D and the gradients."""
    from ganloss_cuda._tolerance import TF32_LOSS_RTOL

    return TF32_LOSS_RTOL


def _gram_inputs(case: GramCase):
    g = torch.Generator().manual_seed(zlib.crc32(case.name.encode()))
    dtype = DTYPES[case.dtype]
    acc = torch.float64 if dtype == torch.float64 else torch.float32

    def place(t):
        return t.transpose(1, 2).contiguous().transpose(1, 2) if case.channels_last else t

    xs, ys = [], []
    for b, c, k in case.shapes:
        xs.append(place(torch.randn(b, c, k, generator=g).to(dtype)))
        y = torch.randn(b, c, k, generator=g).to(dtype)
        if case.target == "features":
            ys.append(place(y))
            continue
        y = y[:1] if case.target == "gram1" else y
        gram = torch.bmm(y.to(acc), y.to(acc).transpose(1, 2)) / max(c * k, 1)
        ys.append(gram.half() if case.target == "gram16" else gram)
    return xs, ys, [1.0 / max(c * k, 1) for _, c, k in case.shapes]


def _gram_check(actual, expected, case, kind, what):
    """The tolerance table's rule (_check), with the TF32 row for the tf32 engine; kind "diff"
    (D, G) is relative to `scale`, the largest Gram entry."""
    if case.tf32:
        bound = _tf32_rtol() * expected.abs().max().item() if expected.numel() else 0.0
        try:
            torch.testing.assert_close(actual.double(), expected.double(), rtol=0.0, atol=bound)
        except AssertionError as e:
            raise AssertionError(f"{what}: {e}") from None
    else:  # a target Gram's gradient is in the target's dtype (gram16: fp16)
        dtype = actual.dtype if actual.dtype == torch.float16 else DTYPES[case.dtype]
        _check(actual, expected, dtype, kind, what)
        if kind == "grad" and actual.dtype == DTYPES[case.dtype] in (torch.float16, torch.bfloat16):
            _check_rounded_once(actual, expected, actual.dtype, what)


def _check_rounded_once(actual, expected, dtype, what):
    """A 16-bit feature gradient is the float64 value rounded once: within half an ulp of it,
    plus 1e-5 of the largest gradient for the fp32 GEMM and D (a 16-bit A without its lo term is
    off by about 2^-12 of the products' sum)."""
    e, a = expected.detach().double().reshape(-1), actual.detach().double().reshape(-1)
    keep = e.to(dtype).isfinite()
    e, a = e[keep], a[keep]
    if e.numel() == 0:
        return
    mant, emin = (10, -14) if dtype == torch.float16 else (7, -126)
    ulp = torch.ldexp(torch.ones_like(e), (torch.frexp(e)[1] - 1).clamp_min(emin) - mant)
    excess = (a - e).abs() - (0.5 * ulp + 1e-5 * e.abs().max())
    if excess.max() > 0:
        i = int(excess.argmax())
        raise AssertionError(f"{what}: not rounded once: {a[i].item()!r} for {e[i].item()!r} "
                             f"(half an ulp is {0.5 * ulp[i].item():.3g})")


def _style_reference(case, xs, ys, upstream, diffs):
    """float64: the loss (ganloss_cuda.reference.gram), each layer's D, and the gradients for
    each upstream value by autograd. L1's gradient takes the sign of the kernel's D (an entry
    within rounding of 0 may have either sign: the forward's D is checked separately)."""
    from ganloss_cuda.reference import gram as ref

    tig = case.target != "features"
    x64 = [x.detach().double().requires_grad_() for x in xs]
    y64 = [y.detach().double().requires_grad_() for y in ys]
    loss = ref.style_loss(x64, y64, case.weights or None, case.criterion, "chw", case.reduction,
                          tig)
    ds = [ref.gram_matrix(x, "chw") - (y if tig else ref.gram_matrix(y, "chw"))
          for x, y in zip(x64, y64)]
    if case.criterion == "l1":  # sum_l w_l reduce(D_l * sign(D_kernel_l)): L1 with fixed signs
        per_sample = case.reduction == "per_sample"
        loss_for_grad = 0.0
        for i, (d, dk) in enumerate(zip(ds, diffs)):
            if d.numel() == 0:
                continue
            e = (d * dk.double().sign()).flatten(1)
            w = case.weights[i] if case.weights else 1.0
            term = e.mean(1) if per_sample else (e.sum() if case.reduction == "sum" else e.mean())
            loss_for_grad = loss_for_grad + w * term
    else:
        loss_for_grad = loss
    grads = []
    for u in upstream:
        gx = torch.autograd.grad(loss_for_grad, x64 + y64, u.double().expand_as(loss),
                                 retain_graph=True, allow_unused=True)
        grads.append([torch.zeros_like(t) if g is None else g for t, g in zip(x64 + y64, gx)])
    return loss.detach(), [d.detach() for d in ds], grads


def _gram_scale(xs, ys, case):
    """The largest Gram entry of each layer (D's error scale)."""
    from ganloss_cuda.reference import gram as ref

    out = []
    for x, y in zip(xs, ys):
        g = ref.gram_matrix(x.double(), "chw").abs()
        t = (y.double() if case.target != "features" else ref.gram_matrix(y.double(), "chw")).abs()
        out.append(max(g.max().item() if g.numel() else 0.0, t.max().item() if t.numel() else 0.0))
    return out


def run_style_case(m, case: GramCase):
    """Forward (loss, D, stats against the CPU kernel's) and backward for every upstream gradient
    against float64, under the first schedule; then the forward and the upstream-0.75 backward
    under the others, bitwise equal to the first."""
    import ganloss_cuda  # noqa: F401  (registers the CPU ops)

    xs, ys, scales = _gram_inputs(case)
    tig = case.target != "features"
    args = (case.weights, scales, case.criterion, case.reduction, tig, case.tf32)
    first = None
    for seed, policy in SCHEDULES:
        m.set_schedule(seed, policy)
        loss, stats, diffs = m.style_loss(xs, ys, *args)
        upstream = _upstream(loss)[1:]  # 0.75, 2^16 (and per-sample values)
        outputs = [loss, stats, *diffs]
        if first is None:
            ref_loss, ref_diffs, ref_grads = _style_reference(case, xs, ys, upstream, diffs)
            _gram_check(loss, ref_loss, case, "loss", "loss")
            for i, (d, rd, s) in enumerate(zip(diffs, ref_diffs, _gram_scale(xs, ys, case))):
                rtol = _tf32_rtol() if case.tf32 else (1e-12 if case.dtype == "f64" else 1e-5)
                torch.testing.assert_close(d.double(), rd, rtol=0.0, atol=rtol * s,
                                           msg=lambda e, i=i: f"D of layer {i}: {e}")
            cpu = torch.ops.ganloss.style_loss(xs, ys, *args)[1]
            # Sums and f_seg (fro: w / ||D||) as close as two fp32 (fp64) GEMMs' D allow.
            rtol = _tf32_rtol() if case.tf32 else (1e-10 if case.dtype == "f64" else 4e-5)
            torch.testing.assert_close(stats, cpu, rtol=rtol, atol=0.0,
                                       msg=lambda e: f"stats differ from the CPU kernel's: {e}")
        for k, u in enumerate(upstream):
            if first is not None and k != 0:
                continue
            bx, by = m.style_loss_backward(u, stats, diffs, xs, ys, *args[:5], True,
                                           case.target_grad, case.tf32)
            expected = ref_grads[k][:len(xs)] + (ref_grads[k][len(xs):] if case.target_grad else [])
            for i, (g, e) in enumerate(zip(bx + by, expected)):
                _gram_check(g, e, case, "grad", f"backward, upstream {k}, gradient {i}")
            if k == 0:
                outputs += [*bx, *by]
        bits = _bits(outputs)
        if first is None:
            first = bits
        elif any(not torch.equal(a, b) for a, b in zip(first, bits)):
            raise AssertionError(f"results differ between schedules {SCHEDULES[0]} and "
                                 f"{(seed, policy)}")


def run_gram_matrix_case(m, case: GramCase):
    """gram_matrix and gram_matrix_backward (dG of magnitude 1 and 2^16) against float64, bitwise
    equal under every schedule."""
    (x,), _, (scale,) = _gram_inputs(case)
    g = torch.Generator().manual_seed(7)
    c = x.shape[1]
    dgs = [torch.randn(x.shape[0], c, c, generator=g).to(torch.float64 if case.dtype == "f64"
                                                          else torch.float32) * u
           for u in (1.0, 2.0 ** 16)]
    x64 = x.double()
    first = None
    for seed, policy in SCHEDULES:
        m.set_schedule(seed, policy)
        gram = m.gram_matrix(x, scale, case.tf32)
        outputs = [gram]
        for k, dg in enumerate(dgs):
            outputs.append(m.gram_matrix_backward(dg, x, scale, case.tf32))
        if first is None:
            expected = torch.bmm(x64, x64.transpose(1, 2)) * scale
            _gram_check(gram, expected, case, "loss", "gram_matrix")
            for k, dg in enumerate(dgs):
                dg64 = dg.double()
                expected = torch.bmm(dg64 + dg64.transpose(1, 2), x64) * scale
                _gram_check(outputs[1 + k], expected, case, "grad", f"gram_matrix_backward {k}")
        bits = _bits(outputs)
        if first is None:
            first = bits
        elif any(not torch.equal(a, b) for a, b in zip(first, bits)):
            raise AssertionError(f"results differ between schedules {SCHEDULES[0]} and "
                                 f"{(seed, policy)}")


# ---------------------------------------------------------------------------------------------
# Adversarial cases.


def _adv_inputs(case: AdvCase):
    """Logits ~ 2 randn (BCE: probabilities in [0.01, 0.99]); extreme: +-100 and +-inf among them;
    nan: a NaN in sample 0 of the first scale. Weights 0.5, 0.75, ..."""
    g = torch.Generator().manual_seed(zlib.crc32(case.name.encode()))
    dtype = DTYPES[case.dtype]
    xs = []
    for i, shape in enumerate(case.shapes):
        x = torch.randn(shape, generator=g) * 2
        if case.gan_type == "bce":
            x = torch.sigmoid(x).clamp(0.01, 0.99)  # not 0 or 1 once rounded (log's NaN grad)
        flat = x.view(-1)
        if case.values == "extreme":
            flat[::7], flat[3::11], flat[5::13], flat[6::17] = 100.0, -100.0, math.inf, -math.inf
        if case.values == "nan" and i == 0:
            flat[3] = math.nan
        x = x.to(dtype)
        if case.misaligned:
            buf = torch.empty(x.numel() + 1, dtype=dtype)
            buf[1:] = x.reshape(-1)
            x = buf[1:].view(x.shape)
        xs.append(x)
    return xs, [0.5 + 0.25 * i for i in range(len(xs))]


def _adv_call(case, xs, weights):
    return (xs, case.real, case.gan_type, case.is_disc, *case.labels, weights, case.per_sample)


def _adv_check(actual, expected, dtype, kind, what, keep=None):
    """The tolerance rule (_check) on the finite expected values (and where keep is set);
    non-finite expected values must be matched exactly (NaN for NaN, the same inf)."""
    e, a = expected.detach().double(), actual.detach().double()
    if keep is None:
        keep = torch.ones_like(e, dtype=torch.bool)
    fin = e.isfinite() & keep
    bad = ~e.isfinite() & keep
    if not (torch.equal(a[bad].isnan(), e[bad].isnan())
            and torch.equal(a[bad].nan_to_num(0.0), e[bad].nan_to_num(0.0))):
        raise AssertionError(f"{what}: non-finite values differ: {a[bad]} for {e[bad]}")
    _check(a[fin], e[fin], dtype, kind, what)


def run_adversarial_case(m, case: AdvCase):
    """Forward and backward (upstream 1, 0.75, 2^16, per-sample values) against float64
    (reference.adversarial.loss_of_call, gradients by autograd) under the first schedule; the
    forward and the upstream-0.75 backward bitwise equal under the others. At a NaN input the
    gradient is not checked (torch's and the kernels' derivatives at NaN differ for hinge)."""
    from ganloss_cuda.reference.adversarial import loss_of_call

    dtype = DTYPES[case.dtype]
    xs, weights = _adv_inputs(case)
    first = None
    for seed, policy in SCHEDULES:
        m.set_schedule(seed, policy)
        loss = m.adversarial_loss(*_adv_call(case, xs, weights))
        upstream = _upstream(loss)
        if first is None:
            x64 = [x.detach().double().requires_grad_() for x in xs]
            ref = loss_of_call(_adv_call(case, x64, weights))
            _adv_check(loss, ref, dtype, "loss", "loss")
        outputs = [loss]
        for k, u in enumerate(upstream):
            if first is not None and k != 1:
                continue
            dxs = m.adversarial_loss_backward(u, *_adv_call(case, xs, weights))
            if first is None:
                ref_dxs = torch.autograd.grad(ref, x64, u.double(), retain_graph=True)
                for i, (dx, rdx) in enumerate(zip(dxs, ref_dxs)):
                    _adv_check(dx, rdx, dtype, "grad", f"backward, upstream {k}, input {i}",
                               keep=~xs[i].isnan())
                    if dtype in (torch.float16, torch.bfloat16):
                        fin = xs[i].isfinite()
                        _check_rounded_once(dx[fin], rdx[fin], dtype,
                                            f"backward, upstream {k}, input {i}")
            if k == 1:
                outputs += dxs
        bits = _bits(outputs)
        if first is None:
            first = bits
        elif any(not torch.equal(a, b) for a, b in zip(first, bits)):
            raise AssertionError(f"results differ between schedules {SCHEDULES[0]} and "
                                 f"{(seed, policy)}")


def run_selftest(m, name):
    kind, expected = SELFTESTS[name]
    size = 16384 if name == "dynamic_smem" else 1024
    arg = 4 if name in ("block_sum", "atomics", "missing_syncthreads") else 0
    results = []
    for seed, policy in SCHEDULES:
        m.set_schedule(seed, policy)
        out = torch.zeros(size)
        try:
            m.selftest(name, out, arg)
        except RuntimeError as e:
            if kind.startswith("error: ") and kind[7:] in str(e):
                return
            raise
        if kind.startswith("error"):
            raise AssertionError(f"expected a failed launch ({kind}), but it ran")
        results.append(out)
    if kind == "ok":
        for out in results:
            got = out[:len(expected)].tolist()
            if got != expected:
                raise AssertionError(f"got {got[:8]}..., expected {expected[:8]}...")
    elif kind == "garbage":
        if not any(o.isnan().any() for o in results) and all(torch.equal(results[0], o) for o in results):
            raise AssertionError("the bug went unnoticed: no NaN and the same output for every schedule")


def run_case(m, name):
    if name.startswith("selftest/"):
        return run_selftest(m, name.split("/", 1)[1])
    if name.startswith("adversarial/"):
        return run_adversarial_case(m, ADV_CASES[name])
    if name.startswith("gram/"):
        case = GRAM_CASES[name]
        return (run_style_case if case.op == "style" else run_gram_matrix_case)(m, case)
    return run_feature_case(m, FEATURE_CASES[name])
