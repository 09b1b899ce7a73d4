"""Gram matrix and fused multi-layer style loss: parity with the float64 reference for every
normalisation, criterion, reduction and target kind, gradients (upstream 1, not 1, 2^16),
layouts, edge cases, determinism; the registered ops under opcheck and
torch.compile(fullgraph=True). Sizes users run are in test_gram_numerics.py."""
import pytest
import torch

from conftest import (DEVICES, DTYPES, GRAD_ATOL, GRAD_RTOL, LOSS_RTOL, TF32_GRAD_RTOL,
                      TF32_LOSS_RTOL, assert_close, check_compile_fullgraph, check_gradcheck,
                      check_opcheck)
from ganloss_cuda import functional as F
from ganloss_cuda import reference as R
from ganloss_cuda.ops import gram as gram_ops

ops = torch.ops.ganloss

CRITERIA = ["l1", "mse", "fro"]
REDUCTIONS = ["mean", "sum", "per_sample"]
NORMALIZATIONS = ["chw", "hw", "nchw", "none"]
TARGETS = ["features", "gram", "gram_batch1"]
# Odd channel counts and spatial sizes, a 2-D layer (K = 1) and a 3-D one.
SHAPES = [(2, 5, 7, 3), (2, 16, 4, 4), (2, 3, 11), (2, 4)]
# Gram entries are sums of K products: the 16-bit inputs are exact, sums are in fp32.
GRAM_RTOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-5, torch.bfloat16: 1e-5}


def _features(shapes, dtype, device, scale=1.0):
    return [(scale * torch.randn(s, device=device)).to(dtype) for s in shapes]


def _targets(kind, xs, normalization):
    """Targets of the given kind for inputs xs: features, or the Grams of other features (per
    sample, or of sample 0 broadcast over the batch)."""
    ys = [torch.randn_like(x, dtype=torch.float32).to(x.dtype) for x in xs]
    if kind == "features":
        return ys
    grams = [R.gram_matrix(y, normalization) for y in ys]
    return [g[:1] for g in grams] if kind == "gram_batch1" else grams


def _oracle_inputs(ts):
    return [t.detach().double().requires_grad_(t.requires_grad) for t in ts]


def check_style(xs, ys, upstream, **kw):
    """Loss and gradients (inputs, and targets that require grad) against the reference in
    float64 on the same inputs, for upstream gradient `upstream` (a number, or None: random)."""
    dtype = xs[0].dtype
    loss = F.style_loss(xs, ys, **kw)
    xd, yd = _oracle_inputs(xs), _oracle_inputs(ys)
    ref = R.style_loss(xd, yd, **kw)
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert_close(loss, ref, LOSS_RTOL[dtype], "loss")
    g = torch.randn_like(ref) if upstream is None else torch.full_like(ref, upstream)
    wants = [t for t in xs + ys if t.requires_grad]
    refs = [t for t in xd + yd if t.requires_grad]
    grads = torch.autograd.grad(loss, wants, g.to(loss.dtype))
    ref_grads = torch.autograd.grad(ref, refs, g, allow_unused=True)  # unused: empty layers
    ref_grads = [torch.zeros_like(t) if r is None else r for t, r in zip(refs, ref_grads)]
    for i, (a, b, t) in enumerate(zip(grads, ref_grads, wants)):
        assert a.dtype == t.dtype and a.shape == t.shape
        assert_close(a, b, GRAD_RTOL[t.dtype], f"grad[{i}]", GRAD_ATOL[t.dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_style_loss_matches_reference(device, dtype, criterion, reduction, normalization, target):
    if normalization == "nchw" and (reduction == "per_sample" or target == "gram_batch1"):
        pytest.skip("the batch is folded into one Gram")
    xs = [x.requires_grad_() for x in _features(SHAPES, dtype, device)]
    ys = [y.requires_grad_() for y in _targets(target, xs, normalization)]
    check_style(xs, ys, None, weights=[0.5 + i for i in range(len(xs))], criterion=criterion,
                normalization=normalization, reduction=reduction,
                target_is_gram=target != "features")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_gram_matrix_matches_reference(device, dtype, normalization):
    for shape in SHAPES + [(1, 65, 9, 9)]:
        x = torch.randn(shape, device=device).to(dtype).requires_grad_()
        xd = x.detach().double().requires_grad_()
        g, ref = F.gram_matrix(x, normalization), R.gram_matrix(xd, normalization)
        assert g.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        assert_close(g, ref, GRAM_RTOL[dtype], f"gram {shape}")
        up = torch.randn_like(ref)  # not symmetric: the backward symmetrises
        (dx,) = torch.autograd.grad(g, [x], up.to(g.dtype))
        (ref_dx,) = torch.autograd.grad(ref, [xd], up)
        assert dx.dtype == dtype
        assert_close(dx, ref_dx, GRAD_RTOL[dtype], f"grad {shape}", GRAD_ATOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES[2:])
@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("upstream", [1.0, 0.375, 2.0**16])
def test_16bit_gradients_under_loss_scaling(device, dtype, criterion, upstream):
    """GradScaler multiplies the loss by 2^16: the 16-bit gradient must be the float64 one times
    the upstream gradient, rounded once (no overflow, no flush to zero from an early rounding)."""
    xs = [x.requires_grad_() for x in _features([(2, 8, 6, 6), (2, 24, 3, 5)], dtype, device)]
    ys = _targets("features", xs, "chw")
    check_style(xs, ys, upstream, criterion=criterion)


@pytest.mark.parametrize("device", DEVICES)
def test_layouts(device):
    """channels_last and strided features (read in place or copied), sliced targets."""
    base = torch.randn(2, 6, 5, 7, device=device)
    layouts = {
        "contiguous": base,
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "transposed_hw": base.transpose(2, 3).contiguous().transpose(2, 3),
        "sliced": torch.randn(2, 12, 5, 7, device=device)[:, ::2],
    }
    y = torch.randn(2, 6, 5, 7, device=device)
    for name, x in layouts.items():
        for target in (y, y.contiguous(memory_format=torch.channels_last)):
            xr = x.detach().clone().requires_grad_() if name == "contiguous" else x.requires_grad_()
            check_style([xr], [target], None, criterion="mse")
            assert_close(F.gram_matrix(x), R.gram_matrix(x.double()), 1e-5, name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_gradcheck(device, criterion, reduction, target):
    x = torch.randn(2, 3, 4, 2, device=device, dtype=torch.float64, requires_grad=True)
    y = _targets(target, [x], "chw")[0].detach().requires_grad_()

    def fn(x, y):
        return F.style_loss([x], [y], [1.5], criterion, "chw", reduction, target != "features")

    check_gradcheck(fn, (x, y))
    check_gradcheck(lambda x: F.gram_matrix(x, "none"), (x,))


@pytest.mark.parametrize("device", DEVICES)
def test_empty_layers(device):
    """Empty layers (N, C or H*W of 0) contribute 0; with a target Gram, K = 0 gives D = -G."""
    shapes = [(2, 4, 3, 3), (2, 0, 3, 3), (2, 3, 0, 5), (0, 3, 2, 2)]
    xs = [torch.randn(s, device=device, requires_grad=True) for s in shapes]
    ys = [torch.randn(s, device=device) for s in shapes]
    for criterion in CRITERIA:
        check_style(xs, ys, None, criterion=criterion)
    grams = [torch.randn(2, 3, 3, device=device), torch.randn(1, 0, 0, device=device)]
    check_style([xs[2], xs[1]], grams, None, criterion="mse", target_is_gram=True)


@pytest.mark.parametrize("device", DEVICES)
def test_nan_propagates(device):
    x = torch.randn(2, 3, 4, 4, device=device, requires_grad=True)
    y = torch.randn(2, 3, 4, 4, device=device)
    x.data[1, 2, 0, 0] = float("nan")
    for criterion in CRITERIA:
        loss = F.style_loss([x], [y], criterion=criterion)
        assert loss.isnan()
        (dx,) = torch.autograd.grad(loss, [x])
        assert dx[1].isnan().any()


@pytest.mark.parametrize("device", DEVICES)
def test_bitwise_repeatable(device):
    xs = [torch.randn(2, 32, 40, 40, device=device, requires_grad=True),
          torch.randn(2, 64, 20, 20, device=device, requires_grad=True)]
    ys = [torch.randn_like(x) for x in xs]
    runs = []
    for _ in range(3):
        loss = F.style_loss(xs, ys, criterion="l1", reduction="per_sample")
        runs.append((loss, *torch.autograd.grad(loss.sum(), xs)))
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGETS)
def test_batch_one(device, dtype, target):
    xs = [x.requires_grad_() for x in _features([(1, 7, 5, 5), (1, 33, 3, 2)], dtype, device)]
    ys = [y.requires_grad_() for y in _targets(target, xs, "chw")]
    for reduction in REDUCTIONS:
        check_style(xs, ys, None, criterion="l1", reduction=reduction,
                    target_is_gram=target != "features")


@pytest.mark.parametrize("device", DEVICES)
def test_target_gram_cached_and_broadcast(device):
    """fast-neural-style: the style image's Grams computed once, (1, C, C), reused for a batch;
    equal to the loss against the style features repeated over the batch."""
    style = torch.randn(1, 8, 6, 6, device=device)
    x = torch.randn(3, 8, 6, 6, device=device, requires_grad=True)
    grams = [F.gram_matrix(style)]
    by_gram = F.style_loss([x], grams, criterion="mse", target_is_gram=True)
    by_features = F.style_loss([x], [style.expand(3, -1, -1, -1)], criterion="mse")
    assert_close(by_gram, by_features, 1e-6, "loss")
    assert_close(torch.autograd.grad(by_gram, [x])[0], torch.autograd.grad(by_features, [x])[0],
                 1e-6, "grad")


def test_tf32_follows_matmul_precision(monkeypatch):
    seen = []
    real = ops.style_loss

    def spy(*args):
        seen.append(args[-1])
        return real(*args)

    monkeypatch.setattr(gram_ops._ops, "style_loss", spy)
    x = torch.randn(2, 3, 4, 4)
    before = torch.get_float32_matmul_precision()
    try:
        for precision in ("highest", "high", "medium"):
            torch.set_float32_matmul_precision(precision)
            F.style_loss(x, x)
    finally:
        torch.set_float32_matmul_precision(before)
    assert seen == [False, True, True]


def test_double_backward_raises():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.grad(F.style_loss(x, y), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.grad(F.gram_matrix(x).sum(), [x], create_graph=True)


# ---------------------------------------------------------------------------------------------
# The registered ops: opcheck on sample_inputs and torch.compile(fullgraph=True).

def sample_inputs(device):
    """(inputs, targets, weights, scales, criterion, reduction, target_is_gram) for style_loss as
    the ops take them ([B, C, K]), covering the argument space."""
    xs = [torch.randn(2, 3, 20, device=device), torch.randn(2, 5, 7, device=device)]
    ys = [torch.randn_like(x) for x in xs]
    grams = [torch.randn(2, 3, 3, device=device), torch.randn(1, 5, 5, device=device)]
    cl = torch.randn(2, 4, 5, 6, device=device).contiguous(memory_format=torch.channels_last)
    yield xs, ys, [1.0, 0.5], [1 / 60, 1 / 35], "l1", "mean", False
    yield xs, grams, [], [1.0, 1.0], "mse", "per_sample", True
    yield ([x.double() for x in xs], [y.double() for y in ys], [2.0, 1.0], [0.1, 0.2], "fro", "sum",
           False)
    yield [cl.flatten(2)], [cl.flatten(2) * 2], [], [1 / 120], "mse", "mean", False


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for xs, ys, weights, scales, criterion, reduction, is_gram in sample_inputs(device):
        for need in (False, True):
            xr = [x.clone().requires_grad_(need) for x in xs]
            yr = [y.clone().requires_grad_(need) for y in ys]
            check_opcheck(ops.style_loss.default,
                          (xr, yr, weights, scales, criterion, reduction, is_gram, False))
        loss, stats, diffs = ops.style_loss(xs, ys, weights, scales, criterion, reduction, is_gram,
                                            False)
        grad = torch.rand_like(loss) + 0.5
        check_opcheck(ops.style_loss_backward.default,
                      (grad, stats, diffs, xs, ys, weights, scales, criterion, reduction, is_gram,
                       True, True, False))
        f = xs[0].clone().requires_grad_()
        check_opcheck(ops.gram_matrix.default, (f, scales[0], False))
        g = torch.randn(f.shape[0], f.shape[1], f.shape[1], device=device, dtype=diffs[0].dtype)
        check_opcheck(ops.gram_matrix_backward.default, (g, xs[0], scales[0], False))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device):
    xs = [torch.randn(2, 4, 6, 6, device=device, requires_grad=True),
          torch.randn(2, 8, 3, 3, device=device, requires_grad=True)]
    ys = [torch.randn(2, 4, 6, 6, device=device), torch.randn(2, 8, 3, 3, device=device)]
    grams = [F.gram_matrix(y)[:1] for y in ys]

    def step(xs, ys, grams):
        a = F.style_loss(xs, ys, [0.5, 2.0], "mse", "chw", "per_sample")
        b = F.style_loss(xs, grams, None, "l1", "chw", "mean", True)
        return (a * torch.arange(1.0, 3.0, device=device)).sum() + b + F.gram_matrix(xs[1]).sum()

    out = check_compile_fullgraph(step, (xs, ys, grams), 1e-6)
    ref = step([x.detach().double().requires_grad_() for x in xs], [y.double() for y in ys],
               [g.double() for g in grams])
    assert_close(out, ref, 1e-5, "compiled loss")


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["highest", "high"])
def test_cuda_fp32_matmul_precision(precision):
    """fp32 features: exact FFMA products by default, TF32 tensor cores when the user allows
    them (within the TF32 tolerance, and not bitwise the exact result)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x = torch.randn(2, 64, 48, 48, device="cuda", requires_grad=True)
    y = torch.randn_like(x)
    xd = x.detach().double().requires_grad_()
    ref = R.style_loss(xd, y.double(), criterion="mse")
    (ref_dx,) = torch.autograd.grad(ref, [xd])
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision(precision)
        loss = F.style_loss(x, y, criterion="mse")
        (dx,) = torch.autograd.grad(loss, [x])
    finally:
        torch.set_float32_matmul_precision(before)
    exact = precision == "highest"
    assert_close(loss, ref, LOSS_RTOL[torch.float32] if exact else TF32_LOSS_RTOL, "loss")
    assert_close(dx, ref_dx, GRAD_RTOL[torch.float32] if exact else TF32_GRAD_RTOL, "grad")
    if not exact:
        assert not torch.equal(loss, F.style_loss(x, y, criterion="mse"))


@pytest.mark.cuda
def test_cuda_graph_replay():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    xs = [torch.randn(2, 64, 32, 32, device="cuda", requires_grad=True)]
    ys = [torch.randn_like(xs[0])]
    F.style_loss(xs, ys).backward()  # warm-up outside capture
    graph = torch.cuda.CUDAGraph()
    xs[0].grad = None
    with torch.cuda.graph(graph):
        loss = F.style_loss(xs, ys)
        loss.backward()
    graph.replay()
    eager = R.style_loss([xs[0].detach().double()], [ys[0].double()])
    assert_close(loss, eager, 1e-5, "replayed loss")
