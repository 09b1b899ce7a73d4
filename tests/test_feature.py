"""Fused multi-layer feature loss: parity with the float64 reference, gradients, layouts,
edge cases, determinism and argument errors; its registered ops under opcheck,
torch.compile(fullgraph=True), CUDA graphs, and the launch count on CUDA."""
import os
import re

import pytest
import torch

from _subprocess import code, run_python
from conftest import (DEVICES, DTYPES, GRAD_ATOL, GRAD_RTOL, LOSS_RTOL, assert_close,
                      check_compile_fullgraph, check_gradcheck, check_opcheck)
from ganloss_cuda import functional as F
from ganloss_cuda import reference as R

ops = torch.ops.ganloss

CRITERIA = ["l1", "mse", "charbonnier", "fro"]
REDUCTIONS = ["mean", "sum", "per_sample"]
LAYER_SETS = {
    "vgg_like": [(2, 8, 17, 19), (2, 16, 9, 10), (2, 32, 5, 5)],
    "odd_multichunk": [(3, 5, 7, 11), (3, 1, 1, 1), (3, 33001)],  # 33001 > 2 chunks per sample
    "batch1": [(1, 3, 31, 29)],
    "with_empty": [(2, 4, 6, 6), (2, 0, 5, 5), (2, 3, 4, 4)],
}


def make_case(shapes, dtype, device, masked, target_grad=False):
    xs = [torch.randn(s, device=device).to(dtype).requires_grad_() for s in shapes]
    ys = [torch.randn(s, device=device).to(dtype).requires_grad_(target_grad) for s in shapes]
    masks = None
    if masked:  # one-channel masks on 4-D layers (BasicSR (N,1,H,W)), full masks elsewhere
        masks = [torch.rand((s[0], 1) + s[2:] if len(s) == 4 else s, device=device) for s in shapes]
    weights = [0.5 + i for i in range(len(shapes))]
    return xs, ys, masks, weights


def oracle(xs, ys, masks, **kw):
    """The reference in float64 on the same (rounded) inputs, with its gradients."""
    xd = [x.detach().double().requires_grad_() for x in xs]
    yd = [y.detach().double().requires_grad_() for y in ys]
    md = [None if m is None else m.double() for m in masks] if masks else None
    return R.feature_loss(xd, yd, masks=md, **kw), xd, yd


def check_against_oracle(xs, ys, masks, weights, criterion, reduction, upstream=None):
    dtype = xs[0].dtype
    kw = dict(weights=weights, criterion=criterion, reduction=reduction)
    loss = F.feature_loss(xs, ys, masks=masks, **kw)
    ref, xd, yd = oracle(xs, ys, masks, **kw)
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert_close(loss, ref, LOSS_RTOL[dtype], "loss")
    g = torch.randn_like(ref) if upstream is None else torch.full_like(ref, upstream)
    wants = [t for t in xs + ys if t.requires_grad]
    refs = [t for t, w in zip(xd + yd, xs + ys) if w.requires_grad]
    grads = torch.autograd.grad(loss, wants, g.to(loss.dtype))
    ref_grads = torch.autograd.grad(ref, refs, g, allow_unused=True)  # unused: empty layers
    ref_grads = [torch.zeros_like(t) if r is None else r for t, r in zip(refs, ref_grads)]
    for i, (a, b) in enumerate(zip(grads, ref_grads)):
        assert a.dtype == dtype and a.shape == b.shape
        assert_close(a, b, GRAD_RTOL[dtype], f"grad[{i}]", GRAD_ATOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layers", list(LAYER_SETS))
def test_matches_reference(device, dtype, criterion, reduction, layers):
    xs, ys, _, weights = make_case(LAYER_SETS[layers], dtype, device, masked=False)
    check_against_oracle(xs, ys, None, weights, criterion, reduction)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("criterion", ["l1", "mse", "charbonnier"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_masks_and_target_grad(device, dtype, criterion, reduction):
    shapes = LAYER_SETS["odd_multichunk"] + [(3, 4, 6, 7)]
    xs, ys, masks, weights = make_case(shapes, dtype, device, masked=True, target_grad=True)
    check_against_oracle(xs, ys, masks, weights, criterion, reduction)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_upstream_gradient_of_one(device, reduction):
    xs, ys, _, weights = make_case(LAYER_SETS["vgg_like"], torch.float32, device, masked=False)
    check_against_oracle(xs, ys, None, weights, "l1", reduction, upstream=1.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(device, criterion, reduction):
    shapes = [(2, 3, 4, 5), (2, 7)]
    xs = [torch.randn(s, dtype=torch.float64, device=device, requires_grad=True) for s in shapes]
    ys = [torch.randn(s, dtype=torch.float64, device=device, requires_grad=True) for s in shapes]
    masks = None if criterion == "fro" else [torch.rand(2, 1, 4, 5, dtype=torch.float64, device=device), None]

    def fn(*t):
        return F.feature_loss(list(t[:2]), list(t[2:]), [0.7, 1.3], criterion, reduction, masks)

    check_gradcheck(fn, xs + ys)


@pytest.mark.parametrize("device", DEVICES)
def test_layouts(device):
    """Non-contiguous, channels_last, mixed layouts and a misaligned storage offset."""
    base = torch.randn(2, 6, 10, 12, device=device)
    cl = base.contiguous(memory_format=torch.channels_last)
    shape = (2, 5, 9, 7)
    offset = torch.randn(2 * 5 * 9 * 7 + 1, device=device)[1:].view(shape)  # misaligned by 4 bytes
    xs = [base[:, ::2, :, 1:], cl, cl, offset]
    ys = [torch.randn(2, 3, 10, 11, device=device), torch.randn_like(cl).contiguous(memory_format=torch.channels_last),
          torch.randn(2, 6, 10, 12, device=device), torch.randn(shape, device=device)]
    xs = [x.detach().requires_grad_() for x in xs]
    masks = [None, torch.rand(2, 1, 10, 12, device=device), torch.rand(2, 6, 10, 12, device=device).contiguous(
        memory_format=torch.channels_last), None]
    for reduction in REDUCTIONS:
        check_against_oracle(xs, ys, masks, [1.0, 2.0, 0.5, 1.5], "mse", reduction)
    loss = F.feature_loss(xs[1], ys[1])
    (dx,) = torch.autograd.grad(loss, xs[1])
    assert dx.is_contiguous(memory_format=torch.channels_last)  # read and written in place


@pytest.mark.parametrize("device", DEVICES)
def test_large(device):
    shapes = [(2, 64, 256, 256), (2, 512, 16, 16)]  # 8.4 M elements, 512 chunks in layer 0
    xs, ys, _, weights = make_case(shapes, torch.float32, device, masked=False)
    check_against_oracle(xs, ys, None, weights, "l1", "mean")


@pytest.mark.parametrize("device", DEVICES)
def test_empty_layers(device):
    xs = [torch.randn(0, 3, 4, 4, device=device, requires_grad=True),
          torch.randn(2, 0, device=device, requires_grad=True)]
    ys = [torch.randn_like(x) for x in xs]
    for reduction in ("mean", "sum"):
        loss = F.feature_loss(xs, ys, reduction=reduction)
        assert loss.item() == 0.0
        grads = torch.autograd.grad(loss, xs)
        assert [g.shape for g in grads] == [x.shape for x in xs]


EMPTY_MASKED_PROGRAM = """
    import torch
    import ganloss_cuda as gl
    from ganloss_cuda import functional as F
    assert gl.available(), gl.load_error
    x = torch.zeros(2, 0, 4, 5, requires_grad=True)
    for reduction in ("mean", "sum", "per_sample"):
        loss = F.feature_loss([x], [torch.zeros(2, 0, 4, 5)], masks=[torch.ones(2, 1, 4, 5)],
                              reduction=reduction)
        loss.sum().backward()
        print(reduction, loss.tolist(), tuple(x.grad.shape))
    print(gl.L1Loss()(x, torch.zeros(2, 0, 4, 5), weight=torch.ones(2, 1, 4, 5)).item())
"""


def test_empty_layer_with_one_channel_mask_does_not_crash():
    """Zero channels under a one-channel mask once divided by zero in the plan (SIGFPE): run in a
    subprocess (this process's environment) so that a crash fails this test, not the whole run."""
    proc, _ = run_python(code(EMPTY_MASKED_PROGRAM), os.environ, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.split("\n")[:4] == [
        "mean 0.0 (2, 0, 4, 5)", "sum 0.0 (2, 0, 4, 5)", "per_sample [0.0, 0.0] (2, 0, 4, 5)", "0.0"]


@pytest.mark.parametrize("device", DEVICES)
def test_nan_propagates(device):
    x = torch.randn(2, 3, 4, 4, device=device)
    x[1, 2, 3, 0] = float("nan")
    loss = F.feature_loss([x.requires_grad_()], [torch.randn_like(x)], reduction="per_sample")
    assert not torch.isnan(loss[0]) and torch.isnan(loss[1])


@pytest.mark.parametrize("device", DEVICES)
def test_bitwise_repeatable(device):
    xs, ys, masks, weights = make_case(LAYER_SETS["odd_multichunk"] + [(3, 64, 64, 64)], torch.float32,
                                       device, masked=True)

    def run():
        loss = F.feature_loss(xs, ys, weights, "charbonnier", "mean", masks)
        return loss, torch.autograd.grad(loss, xs)

    threads = torch.get_num_threads()
    first = run()
    torch.set_num_threads(1)
    try:
        second = run()
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(first[0], second[0])
    assert all(torch.equal(a, b) for a, b in zip(first[1], second[1]))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_twice_and_accumulation(device):
    """retain_graph: the second backward recomputes from the saved inputs."""
    xs, ys, _, weights = make_case(LAYER_SETS["vgg_like"], torch.float32, device, masked=False)
    loss = F.feature_loss(xs, ys, weights, "mse")
    (2 * loss).backward(retain_graph=True)
    first = [x.grad.clone() for x in xs]
    (3 * loss).backward()
    for x, g in zip(xs, first):
        assert_close(x.grad, g * 2.5, 1e-6, "accumulated grad")


@pytest.mark.parametrize("device", DEVICES)
def test_no_grad_and_partial_requires_grad(device):
    xs, ys, _, _ = make_case(LAYER_SETS["vgg_like"], torch.float32, device, masked=False)
    with torch.no_grad():
        assert_close(F.feature_loss(xs, ys), R.feature_loss(xs, ys), 1e-6, "no_grad loss")
    xs[1].requires_grad_(False)
    check_against_oracle(xs, ys, None, None, "l1", "mean")


def test_double_backward_raises():
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    loss = F.feature_loss(x, torch.randn(2, 3, dtype=torch.float64), criterion="mse")
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(loss, x, create_graph=True)


def test_mask_requiring_grad_raises():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    m = torch.rand(2, 1, 4, 4, requires_grad=True)
    with pytest.raises(ValueError, match=r"masks\[0\] requires grad"):
        F.feature_loss([x], [x.detach()], masks=[m])


def _t(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=dtype)


# (kwargs, exception type, message): the same type and message from the compiled ops and the
# reference; a wrong dtype is a TypeError, any other bad argument a ValueError.
BAD_INPUTS = [
    (dict(inputs=[], targets=[]), ValueError, r"inputs must hold at least one tensor"),
    (dict(inputs=[_t(2, 3)] * 2, targets=[_t(2, 3)]), ValueError, r"targets has 1 tensors but inputs has 2"),
    (dict(inputs=[_t(2, 64, 32, 32)] * 4, targets=[_t(2, 64, 32, 32)] * 3 + [_t(2, 64, 32, 31)]), ValueError,
     r"targets\[3\] has shape \(2, 64, 32, 31\) but inputs\[3\] has \(2, 64, 32, 32\)"),
    (dict(inputs=[_t(2, 3), _t(2, 3, dtype=torch.float64)], targets=[_t(2, 3)] * 2), TypeError,
     r"inputs\[1\] has dtype torch.float64 but inputs\[0\] has torch.float32"),
    (dict(inputs=[_t(2, 3)], targets=[_t(2, 3, dtype=torch.float16)]), TypeError, r"targets\[0\] has dtype"),
    (dict(inputs=[_t(2, 3).int()], targets=[_t(2, 3).int()]), TypeError,
     r"inputs\[0\] must be float16, bfloat16, float32 or float64, got torch.int32"),
    (dict(inputs=[_t(2, 3)] * 2, targets=[_t(2, 3)] * 2, weights=[1.0]), ValueError, r"weights has 1 entries but inputs has 2"),
    (dict(inputs=[_t(2, 3)] * 2, targets=[_t(2, 3)] * 2, weights=[1.0, -2.0]), ValueError,
     r"weights\[1\] must be a finite non-negative number, got -2$"),
    (dict(inputs=[_t(2, 3)], targets=[_t(2, 3)], weights=[float("nan")]), ValueError, r"weights\[0\] must be a finite non-negative"),
    (dict(inputs=[_t(2, 3)], targets=[_t(2, 3)], weights=1.0), TypeError, r"weights must be a list of numbers, got float"),
    (dict(inputs=[_t(2, 3)], targets=[_t(2, 3)], weights=[None]), TypeError, r"weights\[0\] must be a number, got NoneType"),
    (dict(inputs=[_t(2, 3)], targets=[_t(2, 3)], criterion="huber"), ValueError,
     r"criterion must be 'l1', 'mse', 'charbonnier' or 'fro', got 'huber'"),
    (dict(inputs=[_t(2, 3)], targets=[_t(2, 3)], reduction="none"), ValueError,
     r"reduction must be 'mean', 'sum' or 'per_sample', got 'none'"),
    (dict(inputs=[_t(2, 3)], targets=[_t(2, 3)], criterion="charbonnier", eps=0.0), ValueError, r"eps must be a positive number"),
    (dict(inputs=[_t(2, 3)], targets=[_t(2, 3)], eps=None), TypeError, r"eps must be a number, got NoneType"),
    (dict(inputs=[_t(2, 3), _t(3, 3)], targets=[_t(2, 3), _t(3, 3)], reduction="per_sample"), ValueError,
     r"inputs\[1\] has batch size 3 but inputs\[0\] has 2"),
    (dict(inputs=[_t(2, 3), torch.tensor(1.0)], targets=[_t(2, 3), torch.tensor(2.0)], reduction="per_sample"), ValueError,
     r"inputs\[1\] is a 0-dim tensor"),
    (dict(inputs=[_t(2, 3, 4, 4)] * 2, targets=[_t(2, 3, 4, 4)] * 2, masks=[None]), ValueError, r"masks has 1 entries but inputs has 2"),
    (dict(inputs=[_t(2, 3, 4, 4)] * 2, targets=[_t(2, 3, 4, 4)] * 2, masks=[None, _t(2, 2, 4, 4)]), ValueError,
     r"masks\[1\] has shape \(2, 2, 4, 4\) but must be \(2, 3, 4, 4\) or \(2, 1, 4, 4\)"),
    (dict(inputs=[_t(2, 3, 4, 4)], targets=[_t(2, 3, 4, 4)], masks=[_t(2, 1, 4, 4)], criterion="fro"), ValueError,
     r"masks\[0\] is set, but criterion 'fro' takes no masks"),
    (dict(inputs=[_t(2, 3, 4, 4)], targets=[_t(2, 3, 4, 4)], masks=[_t(2, 1, 4, 4).int()]), TypeError, r"masks\[0\] must be float16"),
    (dict(inputs=[_t(2, 3, 4, 4)], targets=[_t(2, 3, 4, 4).to("meta")]), ValueError,
     r"targets\[0\] is on meta but inputs\[0\] is on cpu"),
    (dict(inputs=[_t(2, 3, 4, 4).to("meta")], targets=[_t(2, 3, 4, 4)]), ValueError,
     r"targets\[0\] is on cpu but inputs\[0\] is on meta"),
    (dict(inputs=[_t(2, 3, 4, 4)], targets=[_t(2, 3, 4, 4)], masks=[_t(2, 1, 4, 4).to("meta")]), ValueError,
     r"masks\[0\] is on meta but inputs\[0\] is on cpu"),
    (dict(inputs=[_t(2, 3, 4, 4), _t(2, 3).to("meta")], targets=[_t(2, 3, 4, 4), _t(2, 3).to("meta")]), ValueError,
     r"inputs\[1\] is on meta but inputs\[0\] is on cpu"),
]


@pytest.mark.parametrize("impl", [F, R], ids=["ganloss", "reference"])
@pytest.mark.parametrize("kwargs,error,message", BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_inputs_name_the_argument(impl, kwargs, error, message):
    with pytest.raises(error, match=message):
        impl.feature_loss(**kwargs)


def test_bad_list_element_type():
    for impl in (F, R):
        with pytest.raises(TypeError, match=r"targets\[1\] must be a Tensor"):
            impl.feature_loss([_t(2), _t(2)], [_t(2), 3.0])


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=[pytest.mark.cuda])])
def test_device_mismatch_names_argument(device):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    for impl in (F, R):
        with pytest.raises(ValueError, match=r"targets\[0\] is on cpu but inputs\[0\] is on cuda"):
            impl.feature_loss([_t(2, 3).cuda()], [_t(2, 3)])


def test_many_layers_more_than_one_launch():
    """More layers than one CUDA launch holds (24) still form one loss."""
    shapes = [(2, 3, 5 + i % 3, 4) for i in range(30)]
    xs, ys, masks, weights = make_case(shapes, torch.float32, "cpu", masked=True)
    for reduction in REDUCTIONS:
        check_against_oracle(xs, ys, masks, weights, "l1", reduction)


def test_per_sample_averages_to_mean():
    """With one batch size for all layers, the mean of per_sample equals mean."""
    xs, ys, _, w = make_case([(4, 3, 8, 8), (4, 12, 4, 4)], torch.float64, "cpu", masked=False)
    for c in ("l1", "mse", "charbonnier"):
        mean = F.feature_loss(xs, ys, w, c, "mean")
        per = F.feature_loss(xs, ys, w, c, "per_sample")
        assert_close(per.mean(), mean, 1e-12, c)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES[2:])
@pytest.mark.parametrize("criterion", ["l1", "mse"])
def test_low_precision_error_at_most_twice_eager(device, dtype, criterion):
    """flash-attention's rule (style.md): against the float64 oracle, our error is at most twice
    that of the anchors' own computation in the same low precision (F.l1_loss / F.mse_loss on
    fp16/bf16 tensors, no autocast)."""
    import torch.nn.functional as TF

    xs, ys, _, weights = make_case(LAYER_SETS["vgg_like"], dtype, device, masked=False)
    anchor = TF.l1_loss if criterion == "l1" else TF.mse_loss
    kw = dict(weights=weights, criterion=criterion)
    ref, xd, _ = oracle(xs, ys, None, **kw)
    ref_grads = torch.autograd.grad(ref, xd)
    ours = F.feature_loss(xs, ys, **kw)
    eager = sum(w * anchor(x, y) for w, x, y in zip(weights, xs, ys))
    tiny = 1e-6 * ref.abs()
    assert (ours - ref).abs() <= 2 * (eager.double() - ref).abs() + tiny
    for a, b, r in zip(torch.autograd.grad(ours, xs), torch.autograd.grad(eager, xs), ref_grads):
        floor = 1e-6 * r.abs().max()
        assert (a.double() - r).abs().max() <= 2 * (b.double() - r).abs().max() + floor


@pytest.mark.parametrize("device", DEVICES)
def test_under_autocast(device):
    """AMP: bf16 features from an autocast region go in as they are; the loss is fp32."""
    conv = torch.nn.Conv2d(3, 8, 3).to(device)
    img, tgt = torch.randn(2, 3, 16, 16, device=device), torch.randn(2, 3, 16, 16, device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        fx, fy = conv(img), conv(tgt).detach()
        loss = F.feature_loss([fx], [fy], criterion="mse")
    assert fx.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert_close(loss, R.feature_loss([fx.double()], [fy.double()], criterion="mse"), 1e-5, "loss")
    loss.backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


# ---------------------------------------------------------------------------------------------
# The registered ops: opcheck on sample_inputs, torch.compile(fullgraph=True), CUDA graphs and
# the launch count on CUDA.

def sample_inputs(device):
    """(inputs, targets, masks, weights, criterion, reduction) for the ops, covering the argument
    space."""
    shapes = [(2, 3, 5, 4), (2, 7), (2, 2, 3, 3)]
    xs = [torch.randn(s, device=device) for s in shapes]
    ys = [torch.randn(s, device=device) for s in shapes]
    masks = [torch.rand(2, 1, 5, 4, device=device), None, torch.rand(2, 2, 3, 3, device=device)]
    yield xs, ys, [], [1.0, 0.5, 2.0], "l1", "mean"
    yield xs, ys, masks, [], "charbonnier", "per_sample"
    yield xs, ys, [], [0.25, 1.0, 1.0], "fro", "sum"
    yield [x.double() for x in xs], [y.double() for y in ys], masks, [], "mse", "mean"
    yield [xs[0].contiguous(memory_format=torch.channels_last)], [ys[0].transpose(2, 3).contiguous().transpose(2, 3)], [], [], "l1", "sum"


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_forward(device):
    for xs, ys, masks, weights, criterion, reduction in sample_inputs(device):
        for input_grad, target_grad in ((False, False), (True, False), (True, True)):
            xr = [x.clone().requires_grad_(input_grad) for x in xs]
            yr = [y.clone().requires_grad_(target_grad) for y in ys]
            args = (xr, yr, masks, weights, criterion, reduction, 1e-3, input_grad, target_grad)
            check_opcheck(ops.feature_loss.default, args)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_backward_and_scale(device):
    for xs, ys, masks, weights, criterion, reduction in sample_inputs(device):
        loss, stats, dxs, dys = ops.feature_loss(xs, ys, masks, weights, criterion, reduction, 1e-3,
                                                 True, True)
        grad = torch.rand_like(loss) + 0.5
        check_opcheck(ops.feature_loss_backward.default,
                      (grad, stats, xs, ys, masks, weights, criterion, reduction, 1e-3, True, True))
        check_opcheck(ops.feature_loss_scale_grads_.default, (grad, stats, reduction, dxs))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device):
    xs = [torch.randn(2, 4, 6, 6, device=device, requires_grad=True),
          torch.randn(2, 8, 3, 3, device=device, requires_grad=True)]
    ys = [torch.randn(2, 4, 6, 6, device=device), torch.randn(2, 8, 3, 3, device=device)]

    def step(xs, ys):
        loss = F.feature_loss(xs, ys, [0.5, 2.0], "mse", "per_sample")
        return (loss * torch.arange(1.0, 3.0, device=device)).sum()

    out = check_compile_fullgraph(step, (xs, ys), 1e-6)
    ref = step([x.detach().double().requires_grad_() for x in xs], [y.double() for y in ys])
    assert_close(out, ref, 1e-5, "compiled loss")


@pytest.mark.cuda
@pytest.mark.parametrize("mode", ["reduce-overhead", "default"])
def test_torch_compile_cuda_modes(mode):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    torch._dynamo.reset()
    xs = [torch.randn(4, 16, 32, 32, device="cuda", requires_grad=True) for _ in range(3)]
    ys = [torch.randn_like(x) for x in xs]
    compiled = torch.compile(lambda xs, ys: F.feature_loss(xs, ys, [1.0, 0.5, 0.25]), mode=mode,
                             fullgraph=True)
    for _ in range(3):  # cudagraph trees record on the later calls
        loss = compiled(xs, ys)
        grads = torch.autograd.grad(loss, xs)
    ref = R.feature_loss(xs, ys, [1.0, 0.5, 0.25])
    assert_close(loss, ref, 1e-5, "loss")
    for g, r in zip(grads, torch.autograd.grad(ref, xs)):
        assert_close(g, r, 1e-5, "grad")


@pytest.mark.cuda
def test_cuda_graph_capture_and_replay():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    xs = [torch.randn(2, 8, 40, 40, device="cuda", requires_grad=True), torch.randn(2, 3, 7, device="cuda", requires_grad=True)]
    ys = [torch.randn_like(x) for x in xs]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm up on the side stream, as torch.cuda.graphs requires
        for _ in range(2):
            F.feature_loss(xs, ys, [1.0, 3.0], "charbonnier").backward()
    torch.cuda.current_stream().wait_stream(stream)
    for x in xs:
        x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss = F.feature_loss(xs, ys, [1.0, 3.0], "charbonnier")
        loss.backward()
    for _ in range(3):
        with torch.no_grad():
            for x, y in zip(xs, ys):
                x.copy_(torch.randn_like(x))
                y.copy_(torch.randn_like(y))
        graph.replay()
        torch.cuda.synchronize()
        ref = R.feature_loss(xs, ys, [1.0, 3.0], "charbonnier")
        assert_close(loss, ref, 1e-5, "replayed loss")
        for x, r in zip(xs, torch.autograd.grad(ref, xs)):
            assert_close(x.grad, r, 1e-5, "replayed grad")


@pytest.mark.cuda
def test_one_kernel_per_direction():
    """One forward and one backward kernel whatever the number of layers (up to 24 per launch)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from torch.profiler import ProfilerActivity, profile

    xs = [torch.randn(2, 4 + i, 16, 16, device="cuda", requires_grad=True) for i in range(12)]
    ys = [torch.randn_like(x) for x in xs]
    F.feature_loss(xs, ys).backward()  # warm up
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        loss = F.feature_loss(xs, ys)
        torch.cuda.synchronize()
        (3 * loss).backward()  # upstream 3: the scale kernel does real work
        torch.cuda.synchronize()
    kernels = [e.name for e in prof.events() if e.device_type.name == "CUDA" and "ganloss" in e.name]
    # A kernel is named after its op: <op>_kernel.
    for op in ("feature_loss", "feature_loss_scale_grads"):
        assert sum(re.search(rf"\b{op}_kernel\b", k) is not None for k in kernels) == 1, kernels
