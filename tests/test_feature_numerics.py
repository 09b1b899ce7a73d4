"""Numbers under real training conditions (issue 6, items 1-4, 9, 17): fp16/bf16 gradients under
loss scaling, fp32 accumulation against torch's own fp32 error, float64 range, NaN propagation,
cost independent of the batch split, and the memory of backward. The rounding and accumulation
tests run on CUDA too (against torch's own CUDA fp32 error), the rest on CPU."""
import json
import math
import os
import time

import pytest
import torch

import ganloss_cuda as gl
from _subprocess import code, run_python
from conftest import DEVICES, peak_rss_bytes, reset_peak_rss, ulp, ulp_error
from ganloss_cuda import functional as F
from ganloss_cuda import reference as R

MASKABLE = ["l1", "mse", "charbonnier"]
REDUCTIONS = ["mean", "sum", "per_sample"]
# (criterion, masked) pairs: every criterion, masks on all but fro (which takes none)
CRITERION_MASK = [(c, m) for c in MASKABLE for m in (False, True)] + [("fro", False)]
CM_IDS = [f"{c}-{'masked' if m else 'plain'}" for c, m in CRITERION_MASK]


def one_channel_mask(shape):
    """A BasicSR (N, 1, H, W) mask for a 4-D layer, a full mask otherwise, values in [0.5, 1)."""
    mshape = (shape[0], 1) + tuple(shape[2:]) if len(shape) == 4 else shape
    return torch.rand(mshape) * 0.5 + 0.5


def float64_loss_and_grads(xs, ys, masks, upstream, **kw):
    """The reference in float64 on the same (rounded) inputs, and its gradients for `upstream`."""
    xd = [x.detach().double().requires_grad_() for x in xs]
    yd = [y.detach().double().requires_grad_() for y in ys]
    md = [m.double() for m in masks] if masks else None
    loss = R.feature_loss(xd, yd, masks=md, **kw)
    grads = torch.autograd.grad(loss, xd + yd, torch.full_like(loss, upstream))
    return loss, grads


# ---------------------------------------------------------------------------------------------
# Item 1: fp16/bf16 gradients are the true gradient rounded once, whatever the loss scale.

LOW_PRECISION = [pytest.param(torch.float16, id="f16"), pytest.param(torch.bfloat16, id="bf16")]
UPSTREAMS = [pytest.param(2.0**k, id=f"g2^{k}") for k in (-24, 0, 16, 24)]
# Slack for the fp32 accumulation behind the per-sample factors (masked mean, fro), relative.
ACC_RTOL = 1e-5


def assert_rounded_once(actual, true, what):
    """actual == true rounded to actual.dtype, within 1 ulp plus ACC_RTOL * |true|."""
    dtype = actual.dtype
    err = ulp_error(actual, true, dtype)
    bound = 1.0 + ACC_RTOL * true.detach().double().abs() / ulp(true, dtype)
    excess = (err - bound).flatten()
    worst = int(excess.argmax())
    assert excess[worst] <= 0, (
        f"{what}: {err.flatten()[worst].item():.3g} ulp at flat index {worst}: got "
        f"{actual.flatten()[worst].item()!r}, true {true.flatten()[worst].item()!r}; "
        f"{int((excess > 0).sum())} of {excess.numel()} elements off by more than 1 ulp")


def test_ulp_helpers():
    f64 = torch.float64
    t = torch.tensor([1.0, 1.5, 2.0**-14, 2.0**-20, 0.0, 65504.0], dtype=f64)
    expected = torch.tensor([2.0**-10, 2.0**-10, 2.0**-24, 2.0**-24, 2.0**-24, 32.0], dtype=f64)
    assert torch.equal(ulp(t, torch.float16), expected)
    assert ulp(torch.tensor(1.0), torch.bfloat16) == 2.0**-7
    assert ulp(torch.tensor(0.0), torch.float32) == 2.0**-149
    true = torch.tensor([1.0 + 2.0**-12, 7e4, 7e4, -7e4, 3.0], dtype=f64)
    got = torch.tensor([1.0, float("inf"), 65504.0, float("-inf"), float("nan")]).half()
    assert ulp_error(got, true, torch.float16).tolist() == [0.25, 0.0, math.inf, 0.0, math.inf]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("criterion,masked", CRITERION_MASK, ids=CM_IDS)
def test_low_precision_grads_rounded_once(device, dtype, upstream, reduction, criterion, masked):
    """Loss scaling (GradScaler) multiplies the upstream gradient by up to 2**24: the gradient must
    not vanish in a large layer with a small weight (VGG 1/32), nor overflow in a small layer with
    a large weight (feature matching 10-200), where the true gradient fits in the dtype."""
    shapes = [(2, 4, 32, 64), (2, 4, 6, 6)]  # 16384 elements at w=1/4096; 288 at w=200
    weights = [1 / 4096, 200.0]
    xs = [torch.randn(shapes[0]).to(dtype).requires_grad_(),
          (torch.randn(shapes[1]) * 300).to(dtype).requires_grad_()]
    ys = [torch.randn_like(x, dtype=torch.float32).to(dtype).mul_(s).requires_grad_()
          for x, s in zip(xs, (1, 300))]
    masks = [one_channel_mask(s) for s in shapes] if masked else None
    kw = dict(weights=weights, criterion=criterion, reduction=reduction)
    on_device = [t.detach().to(device).requires_grad_() for t in xs + ys]
    loss = F.feature_loss(on_device[:2], on_device[2:], **kw,
                          masks=[m.to(device) for m in masks] if masks else None)
    grads = [g.cpu() for g in torch.autograd.grad(loss, on_device, torch.full_like(loss, upstream))]
    _, true = float64_loss_and_grads(xs, ys, masks, upstream, **kw)
    for i in range(2):  # the true dy is -dx, and rounding is symmetric
        assert grads[i].dtype == dtype
        assert_rounded_once(grads[i], true[i], f"dx{i}")
        assert torch.equal(grads[2 + i], -grads[i]), f"dy{i} != -dx{i}"


def test_fp16_grad_survives_loss_scale_issue_repro():
    x = torch.randn(1, 64, 128, 128).half().requires_grad_()
    y = torch.randn_like(x)
    (F.feature_loss([x], [y], weights=[1 / 32]) * 2**16).backward()
    true = torch.sign(x.detach().double() - y.double()) * (2**16 / 32 / x.numel())  # 0.00195
    assert_rounded_once(x.grad, true, "x.grad")


def test_fp16_grad_of_direct_op_call_survives_loss_scale():
    """torch.ops.ganloss.feature_loss called directly with input_grad=True (the registered
    autograd, as torch.compile uses it): its 16-bit forward gradients are not scaled after
    rounding; the backward recomputes them with the upstream gradient applied first."""
    x = torch.randn(1, 64, 128, 128).half().requires_grad_()
    y = torch.randn_like(x)
    loss = torch.ops.ganloss.feature_loss([x], [y], [], [1 / 32], "l1", "mean", 1e-12, True,
                                          False)[0]
    (loss * 2**16).backward()
    true = torch.sign(x.detach().double() - y.double()) * (2**16 / 32 / x.numel())
    assert_rounded_once(x.grad, true, "x.grad")


def test_fp16_fro_grad_does_not_overflow_issue_repro():
    x = torch.full((2, 8), 6e4).half().requires_grad_()
    F.feature_loss([x], [-x.detach()], criterion="fro").backward()
    assert_rounded_once(x.grad, torch.full((2, 8), 0.25, dtype=torch.float64), "x.grad")


def test_fp16_masked_mse_large_weight_does_not_overflow():
    x = (torch.randn(2, 3, 8, 8) * 100).half().requires_grad_()
    y = torch.zeros_like(x)
    m = torch.ones(2, 1, 8, 8)
    F.feature_loss([x], [y], weights=[200.0], criterion="mse", masks=[m]).backward()
    true = 200 * 2 * x.detach().double() / (3 * m.double().sum())
    assert_rounded_once(x.grad, true, "x.grad")


@pytest.mark.slow
def test_fp16_grad_of_2pow27_element_layer():
    """One fp16 layer of 2**27 elements (l1, mean) under a loss scale of 2**16: the unit gradient
    1/2**27 is below fp16's smallest subnormal, the scaled one (2**-11 * 0.75) is not."""
    n, w, g = 2**27, 0.75, 2.0**16
    x = torch.empty(n, dtype=torch.float16).uniform_(-1, 1).requires_grad_()
    y = torch.zeros(n, dtype=torch.float16)
    (F.feature_loss([x.view(1, n)], [y.view(1, n)], weights=[w]) * g).backward()
    step = 2**22
    for i in range(0, n, step):
        d = x.detach()[i:i + step].double() - y[i:i + step].double()
        true = torch.sign(d) * (g * w / n)
        assert_rounded_once(x.grad[i:i + step], true, f"x.grad[{i}:{i + step}]")


# ---------------------------------------------------------------------------------------------
# Item 2: fp32 loss and gradients as accurate as torch's own fp32 computation.

# The allowance for the rounding of a result returned in fp32 (see assert_within_2x_of_torch).
ULP_SLACK = 1.0


def fp32_errors(x, y, mask, criterion, reduction, eps=1e-12, device="cpu"):
    """Errors against float64 (reference on the same fp32 inputs, on CPU) of ganloss and of torch
    eager fp32 (the reference in fp32: BasicSR's formulas), both on `device`, for the loss and
    for dloss/dx (upstream 1)."""
    kw = dict(criterion=criterion, reduction=reduction, eps=eps, weights=[0.75])
    out = {}
    x64 = x.double().requires_grad_()
    masks64 = None if mask is None else [mask.double()]
    true = R.feature_loss([x64], [y.double()], masks=masks64, **kw)
    (true_grad,) = torch.autograd.grad(true, x64, torch.ones_like(true))
    masks = None if mask is None else [mask.to(device)]
    for name, fn in (("ours", F.feature_loss), ("torch", R.feature_loss)):
        x32 = x.to(device, copy=True).requires_grad_()
        loss = fn([x32], [y.to(device)], masks=masks, **kw)
        (grad,) = torch.autograd.grad(loss, x32, torch.ones_like(loss))
        loss, grad = loss.detach().cpu().double(), grad.cpu().double()
        out[name] = ((loss - true.detach()).abs(), (grad - true_grad).abs().max())
    slack_loss = ULP_SLACK * ulp(true, torch.float32)
    slack_grad = ULP_SLACK * ulp(true_grad.abs().max(), torch.float32)
    return out, slack_loss, slack_grad, true.detach(), true_grad.abs().max()


def assert_within_2x_of_torch(x, y, mask, criterion, reduction, eps=1e-12, device="cpu"):
    """The rule: error_ours <= 2 * error_torch + 1 fp32 ulp of the float64 result, where both
    errors are measured against the float64 computation (the reference in float64) on the same
    fp32 inputs, and error_torch is that of torch eager fp32 (the reference run in fp32: BasicSR's
    formulas). The ulp allows for the rounding of a result returned in fp32 and for elementwise
    fp32 steps done in another order than torch's (x * m before / sum(m); s * rho'(d) before the
    per-sample factor), whose rounding torch may avoid by luck: half an ulp is not enough for an
    exact-sum kernel on layers of 1 to ~1000 elements. Accumulation drift is hundreds of ulps.
    The loss is compared per entry (per_sample: per sample), the gradient dloss/dx on its largest
    absolute error over the elements."""
    out, slack_loss, slack_grad, true, gmax = fp32_errors(x, y, mask, criterion, reduction, eps,
                                                          device)
    (ours_loss, ours_grad), (torch_loss, torch_grad) = out["ours"], out["torch"]
    loss_bound = 2 * torch_loss + slack_loss
    worst = int((ours_loss - loss_bound).flatten().argmax())
    assert (ours_loss <= loss_bound).all(), (
        f"loss relative error {(ours_loss / true.abs()).flatten()[worst].item():.2e} vs torch fp32 "
        f"{(torch_loss / true.abs()).flatten()[worst].item():.2e} "
        f"(true {true.flatten()[worst].item()})")
    assert ours_grad <= 2 * torch_grad + slack_grad, (
        f"grad relative error {(ours_grad / gmax).item():.2e} vs torch fp32 "
        f"{(torch_grad / gmax).item():.2e}")


def fp32_data(shape, kind):
    """x, y in fp32: 'rand' (independent), 'offset' (y = x + 0.1: constant difference), or
    'converging' (y = x + 1e-4 * randn: a model near convergence)."""
    x = torch.rand(shape)
    if kind == "rand":
        return x, torch.rand(shape)
    if kind == "offset":
        return x, x + 0.1
    return x, x + 1e-4 * torch.randn(shape)


def fp32_mask(shape, masked):
    """BasicSR-like mask: one channel for a 4-D layer; a constant 0.1 (the issue's repro) for a
    3-channel image, uniform [0, 1) otherwise."""
    if not masked:
        return None
    mshape = (shape[0], 1) + tuple(shape[2:]) if len(shape) == 4 else shape
    return torch.full(mshape, 0.1) if len(shape) == 4 and shape[1] == 3 else torch.rand(mshape)


@pytest.mark.parametrize("kind", ["offset", "converging"])  # random terms (rand) drift less
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("criterion,masked", CRITERION_MASK, ids=CM_IDS)
def test_fp32_256x256_within_2x_of_torch(kind, reduction, criterion, masked):
    shape = (1, 3, 256, 256)
    x, y = fp32_data(shape, kind)
    eps = 1e-3 if kind == "converging" else 1e-12
    assert_within_2x_of_torch(x, y, fp32_mask(shape, masked), criterion, reduction, eps)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (3, 5), (2, 3, 17, 19), (2, 8, 256, 256)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("criterion,masked", CRITERION_MASK, ids=CM_IDS)
def test_fp32_sizes_within_2x_of_torch(device, shape, reduction, criterion, masked):
    """From 1 element to a 1M-element layer (2 x 8 x 256 x 256), near convergence; on CUDA
    against torch's own CUDA fp32 error (this checks the kernels' accumulation order)."""
    x, y = fp32_data(shape, "converging")
    assert_within_2x_of_torch(x, y, fp32_mask(shape, masked), criterion, reduction, eps=1e-3,
                              device=device)


def test_fp32_masked_l1_issue_repro():
    """gl.L1Loss with a constant 0.1 mask: loss and gradient against BasicSR's formula in torch
    eager fp32, both against float64, by the rule of assert_within_2x_of_torch."""
    x, y = torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)
    m = torch.full((1, 1, 256, 256), 0.1)

    def basicsr(x, y, m):
        return ((x - y).abs() * m).sum() / m.expand_as(x).sum()

    results = {}
    for name, fn in (("ours", gl.L1Loss()), ("torch", basicsr), ("float64", basicsr)):
        dt = torch.float64 if name == "float64" else torch.float32
        xg = x.to(dt, copy=True).requires_grad_()
        loss = fn(xg, y.to(dt), m.to(dt))
        loss.backward()
        results[name] = (loss.item(), xg.grad.double())
    true, true_grad = results.pop("float64")
    gmax = true_grad.abs().max().item()
    err = {k: (abs(v - true), (g - true_grad).abs().max().item()) for k, (v, g) in results.items()}
    (ours_loss, ours_grad), (torch_loss, torch_grad) = err["ours"], err["torch"]
    msg = (f"loss relative error {ours_loss / true:.2e} (torch fp32 {torch_loss / true:.2e}), "
           f"grad {ours_grad / gmax:.2e} (torch fp32 {torch_grad / gmax:.2e})")
    assert ours_loss <= 2 * torch_loss + ULP_SLACK * ulp(torch.tensor(true), torch.float32), msg
    assert ours_grad <= 2 * torch_grad + ULP_SLACK * ulp(torch.tensor(gmax), torch.float32), msg


def errors_in_chunks(n, criterion, masked, step=2**22):
    """assert_within_2x_of_torch for one (1, n) layer (mean, near convergence, eps 1e-3) without
    float64 copies of the whole layer: the float64 truth is computed in chunks of `step`.
    Returns {"ours"/"torch": (loss error, max grad error)}, the true loss and max |true grad|."""
    eps, w = 1e-3, 0.75
    x = torch.rand(1, n)
    y = x + 1e-4 * torch.randn(1, n)
    m = torch.full((1, n), 0.1) if masked else None  # constant terms: drift adds up (issue repro)
    kw = dict(weights=[w], criterion=criterion, eps=eps, masks=None if m is None else [m])

    def chunks():
        for i in range(0, n, step):
            d = x[0, i:i + step].double() - y[0, i:i + step].double()
            yield i, d, (m[0, i:i + step].double() if masked else torch.ones_like(d))

    rho = (lambda d: d.abs()) if criterion == "l1" else (lambda d: torch.sqrt(d * d + eps))
    drho = torch.sign if criterion == "l1" else (lambda d: d / torch.sqrt(d * d + eps))
    s = ms = 0.0
    for _, d, mm in chunks():
        s, ms = s + float((rho(d) * mm).sum()), ms + float(mm.sum())
    true = w * (s / ms)
    results, grads = {}, {}
    for name, fn in (("ours", F.feature_loss), ("torch", R.feature_loss)):
        xg = x.clone().requires_grad_()
        loss = fn([xg], [y], **kw)
        loss.backward()
        results[name], grads[name] = abs(loss.item() - true), xg.grad
        del xg, loss
    gerr = {"ours": 0.0, "torch": 0.0}
    for i, d, mm in chunks():
        tg = w * drho(d) * mm / ms
        for name, g in grads.items():
            gerr[name] = max(gerr[name], float((g[0, i:i + step].double() - tg).abs().max()))
    return {k: (results[k], gerr[k]) for k in results}, true, w / ms  # |rho'| * m <= 1


@pytest.mark.slow
def test_fp32_50M_element_layer_within_2x_of_torch():
    """One layer of 5e7 elements, Charbonnier with a constant 0.1 mask (mean), near convergence
    (nearly equal terms: the worst case for a running fp32 sum): the rule of
    assert_within_2x_of_torch, with the float64 truth computed in chunks."""
    out, true, gmax = errors_in_chunks(50_000_000, "charbonnier", masked=True)
    (ours_loss, ours_grad), (torch_loss, torch_grad) = out["ours"], out["torch"]
    slack_loss = ULP_SLACK * float(ulp(torch.tensor(true), torch.float32))
    assert ours_loss <= 2 * torch_loss + slack_loss, (
        f"loss relative error {ours_loss / true:.2e} vs torch fp32 {torch_loss / true:.2e}")
    slack_grad = ULP_SLACK * float(ulp(torch.tensor(gmax), torch.float32))
    assert ours_grad <= 2 * torch_grad + slack_grad, (
        f"grad error {ours_grad / gmax:.2e} vs torch fp32 {torch_grad / gmax:.2e} of max |grad|")


# ---------------------------------------------------------------------------------------------
# Items 3 and 4: float64 range and NaN propagation.

@pytest.mark.parametrize("reduction", ["mean", "per_sample"])
@pytest.mark.parametrize("criterion,masked", CRITERION_MASK, ids=CM_IDS)
def test_float64_huge_weight_applied_after_division(reduction, criterion, masked):
    """w * (sum / count): weights=[1e308] with |d| = 1.25 is 1.25e308 for l1, not inf."""
    x = torch.zeros(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    y = torch.full((2, 3, 4, 4), 1.25 if criterion != "fro" else 1.25 / 96**0.5,
                   dtype=torch.float64)
    y[:, 0] *= 0.5  # not all equal
    masks = [torch.rand(2, 1, 4, 4, dtype=torch.float64) + 0.5] if masked else None
    kw = dict(weights=[1e308], criterion=criterion, reduction=reduction, masks=masks)
    loss = F.feature_loss([x], [y], **kw)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    x64 = x.detach().requires_grad_()
    true = R.feature_loss([x64], [y], **kw)
    (true_grad,) = torch.autograd.grad(true.sum(), x64)
    assert torch.isfinite(true).all() and torch.isfinite(true_grad).all()
    torch.testing.assert_close(loss, true, rtol=1e-14, atol=0)
    torch.testing.assert_close(grad, true_grad, rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16],
                         ids=["f64", "f32", "f16", "bf16"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_fro_nan_input_gives_nan_gradient_like_torch(dtype, reduction):
    """A NaN in sample 0 makes sample 0's (per_sample) or the whole (mean, sum) Frobenius norm
    NaN, and its gradient x / ||x|| NaN in every element it covers, as torch.norm's backward."""
    x = torch.randn(2, 3, 4, 4).to(dtype)
    x[0, 1, 2, 3] = float("nan")
    x.requires_grad_()
    y = torch.randn(2, 3, 4, 4).to(dtype)
    kw = dict(criterion="fro", reduction=reduction, weights=[0.5])
    (grad,) = torch.autograd.grad(F.feature_loss([x], [y], **kw).sum(), x)
    x64 = x.detach().double().requires_grad_()
    (true_grad,) = torch.autograd.grad(R.feature_loss([x64], [y.double()], **kw).sum(), x64)
    nan = true_grad.isnan()
    assert nan.any()
    assert torch.equal(grad.isnan(), nan), (
        f"{int(nan.sum())} NaN expected in the gradient, got {int(grad.isnan().sum())}")


# ---------------------------------------------------------------------------------------------
# Item 9: the cost of mean and sum does not depend on how the elements are split along dim 0.

SPLIT_N = 10_000_000


def split_cases():
    """name -> (x, y, masks) of SPLIT_N elements; BASELINE says which case each is compared with."""
    def pair(shape):
        return torch.rand(shape), torch.rand(shape)
    n, b = SPLIT_N, SPLIT_N // 64
    return {
        "(1, N)": (*pair((1, n)), None),
        "(N,)": (*pair((n,)), None),
        "(N/4, 4)": (*pair((n // 4, 4)), None),
        # one-channel masked 4-D: a big batch of small images against one tall image
        "masked (1, 4, N/16, 4)": (*pair((1, 4, 4 * b, 4)), [torch.rand(1, 1, 4 * b, 4)]),
        "masked (N/64, 4, 4, 4)": (*pair((b, 4, 4, 4)), [torch.rand(b, 1, 4, 4)]),
    }


BASELINE = {"(N,)": "(1, N)", "(N/4, 4)": "(1, N)",
            "masked (N/64, 4, 4, 4)": "masked (1, 4, N/16, 4)"}


def fwd_bwd(x, y, masks, reduction):
    x = x.detach().requires_grad_()
    F.feature_loss([x], [y], masks=masks, reduction=reduction).backward()
    return x


def split_times(reduction: str) -> dict:
    """name -> the minimum fwd+bwd seconds of each split case over interleaved rounds: at least
    5, and up to 40 while a ratio to its baseline is above 1.5x."""
    cases = split_cases()
    best = {k: math.inf for k in cases}
    for round_ in range(40):
        for name, (x, y, masks) in cases.items():
            t0 = time.perf_counter()
            fwd_bwd(x, y, masks, reduction)
            best[name] = min(best[name], time.perf_counter() - t0)
        if round_ >= 4 and max(best[k] / best[b] for k, b in BASELINE.items()) <= 1.5:
            break
    return best


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_batch_split_time(reduction):
    """fwd+bwd time of each split within 1.5x of its batch-1 layout (the target, 1.2x, is reported
    in the message: a shared 2-core machine shows up to 1.4x between identical calls). Measured in
    a fresh interpreter: inside the long test process, state left by earlier tests made one layout
    1.6x and 3.4x slower (minimum of 40 rounds) in 2 of 4 CI rehearsals, while alone it passes."""
    proc, _ = run_python(code(f"""
        import json, sys
        sys.path.insert(0, "tests")
        from test_feature_numerics import split_times
        print(json.dumps(split_times({reduction!r})))
    """), os.environ, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = json.loads(proc.stdout.strip().splitlines()[-1])
    ratios = {k: best[k] / best[base] for k, base in BASELINE.items()}
    report = ", ".join(f"{k}: {1e3 * best[k]:.1f} ms ({ratios.get(k, 1):.2f}x)" for k in best)
    above_target = [k for k, r in ratios.items() if r > 1.2]
    assert max(ratios.values()) <= 1.5, f"{report}; above the 1.2x target: {above_target}"


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_batch_split_memory(reduction):
    """Peak extra resident memory of fwd+bwd of each split within 1.2x (+4 MB) of the batch-1
    layout (RSS high-water mark, reset before each case)."""
    cases = split_cases()
    fwd_bwd(*cases["(1, N)"], reduction)  # thread pools, allocator warm
    extra = {}
    for name, (x, y, masks) in cases.items():
        reset_peak_rss()
        base = peak_rss_bytes()
        g = fwd_bwd(x, y, masks, reduction)
        extra[name] = peak_rss_bytes() - base
        del g
    report = ", ".join(f"{k}: +{v / 2**20:.0f} MB" for k, v in extra.items())
    for k, base in BASELINE.items():
        assert extra[k] <= 1.2 * extra[base] + 4 * 2**20, f"{k} vs {base}: {report}"


# ---------------------------------------------------------------------------------------------
# Item 17: backward reads x and y and writes dx: no second gradient-sized buffer.

@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["f32", "f16"])
def test_backward_peak_memory_is_one_gradient(dtype):
    """fwd+bwd of a 5e7-element layer (l1, mean, loss scale 2**10) holds at most one gradient
    beyond the inputs, + 10% of it; and x.grad is right."""
    n, scale = 50_000_000, 2.0**10
    x = torch.rand(1, n).to(dtype)
    y = torch.rand(1, n).to(dtype)
    warm = torch.rand(1, 1000).to(dtype).requires_grad_()
    (F.feature_loss([warm], [warm.detach() + 1]) * scale).backward()
    x.requires_grad_()
    reset_peak_rss()
    base = peak_rss_bytes()
    (F.feature_loss([x], [y]) * scale).backward()
    extra = peak_rss_bytes() - base
    grad_bytes = x.numel() * x.element_size()
    assert extra <= 1.1 * grad_bytes, (
        f"fwd+bwd peak +{extra / 2**20:.0f} MB, one gradient is {grad_bytes / 2**20:.0f} MB")
    step = 2**22
    for i in range(0, n, step):
        d = x.detach()[0, i:i + step].double() - y[0, i:i + step].double()
        assert_rounded_once(x.grad[0, i:i + step], torch.sign(d) * (scale / n), f"x.grad[{i}:]")
