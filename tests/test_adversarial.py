"""Adversarial losses over multi-scale discriminator outputs: parity with the float64 reference
for every type, side, label values, aggregation and reduction; gradients (upstream 1, not 1,
2^16 for 16-bit inputs); extreme logits; NaN; determinism; the registered ops under opcheck,
torch.compile(fullgraph=True) and CUDA-graph capture."""
import math

import pytest
import torch

from conftest import (DEVICES, DTYPES, GRAD_ATOL, GRAD_RTOL, LOSS_RTOL, assert_close,
                      check_compile_fullgraph, check_gradcheck, check_opcheck)
from ganloss_cuda import functional as F
from ganloss_cuda import reference as R

ops = torch.ops.ganloss

GAN_TYPES = ["lsgan", "vanilla", "bce", "wgan", "softplus", "hinge"]
# pix2pixHD-like patch outputs of three scales (odd sizes), and a (N, 1) logit.
SCALES = [(2, 1, 17, 33), (2, 1, 9, 17), (2, 1, 5, 9)]


def _logits(shapes, gan_type, dtype, device, scale=2.0):
    xs = [scale * torch.randn(s, device=device) for s in shapes]
    if gan_type == "bce":  # probabilities of a sigmoid discriminator
        xs = [x.sigmoid() for x in xs]
    return [x.to(dtype).requires_grad_() for x in xs]


def _double(ts):
    return [t.detach().double().requires_grad_() for t in ts]


def check(fn, ref_fn, tensors, upstream=None):
    """fn(tensors) against ref_fn(tensors in float64): loss and gradients."""
    dtype = tensors[0].dtype
    loss = fn(tensors)
    td = _double(tensors)
    ref = ref_fn(td)
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert_close(loss, ref, LOSS_RTOL[dtype], "loss")
    g = torch.rand_like(ref) + 0.5 if upstream is None else torch.full_like(ref, upstream)
    grads = torch.autograd.grad(loss, tensors, g.to(loss.dtype))
    for i, (a, b) in enumerate(zip(grads, torch.autograd.grad(ref, td, g))):
        assert a.dtype == dtype and a.shape == tensors[i].shape
        over = b.to(dtype).isinf() & b.isfinite()  # beyond the dtype's range: the same inf
        assert torch.equal(a.double()[over], b.to(dtype).double()[over]), f"grad[{i}] overflow"
        assert_close(a.masked_fill(over, 0), b.masked_fill(over, 0), GRAD_RTOL[dtype],
                     f"grad[{i}]", GRAD_ATOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gan_type", GAN_TYPES)
@pytest.mark.parametrize("target_is_real", [True, False])
@pytest.mark.parametrize("is_disc", [True, False])
@pytest.mark.parametrize("aggregation", ["mean", "sum"])
@pytest.mark.parametrize("reduction", ["mean", "per_sample"])
def test_adversarial_loss_matches_reference(device, dtype, gan_type, target_is_real, is_disc,
                                            aggregation, reduction):
    kw = dict(target_is_real=target_is_real, gan_type=gan_type, is_disc=is_disc,
              real_label=0.9, fake_label=0.1, weight=0.5, aggregation=aggregation,
              reduction=reduction)
    check(lambda xs: F.adversarial_loss(xs, **kw), lambda xs: R.adversarial_loss(xs, **kw),
          _logits(SCALES, gan_type, dtype, device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gan_type", GAN_TYPES)
@pytest.mark.parametrize("reduction", ["mean", "per_sample"])
def test_discriminator_loss_real_and_fake_in_one_call(device, dtype, gan_type, reduction):
    """Real and fake outputs of different shapes and scale counts (taming: real and fake may
    differ), equal to the sum of the two adversarial losses."""
    tensors = _logits(SCALES + [(2, 1, 6, 6), (2, 1, 3, 3)], gan_type, dtype, device)
    kw = dict(gan_type=gan_type, weight=0.5, aggregation="sum", reduction=reduction)

    def fn(t, impl=F):
        return impl.discriminator_loss(t[:3], t[3:], **kw)

    check(fn, lambda t: fn(t, R), tensors)
    parts = (R.adversarial_loss(_double(tensors[:3]), True, gan_type, True, weight=0.5,
                                aggregation="sum", reduction=reduction)
             + R.adversarial_loss(_double(tensors[3:]), False, gan_type, True, weight=0.5,
                                  aggregation="sum", reduction=reduction))
    assert_close(fn(tensors), parts, LOSS_RTOL[dtype], "real + fake")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES[2:])
@pytest.mark.parametrize("gan_type", GAN_TYPES)
@pytest.mark.parametrize("upstream", [1.0, 0.375, 2.0**16])
def test_16bit_gradients_under_loss_scaling(device, dtype, gan_type, upstream):
    kw = dict(gan_type=gan_type, weight=1.0)
    check(lambda t: F.discriminator_loss(t[:1], t[1:], **kw),
          lambda t: R.discriminator_loss(t[:1], t[1:], **kw),
          _logits([(4, 1, 30, 30), (4, 1, 7, 7)], gan_type, dtype, device), upstream)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("gan_type", ["lsgan", "vanilla", "wgan", "softplus", "hinge"])
def test_extreme_logits_give_the_stable_answer(device, gan_type):
    """|x| = 100 and inf: the limits (0, inf, a finite gradient), never a NaN from inf - inf or
    0 * inf inside a term; NaN inputs give NaN."""
    x = torch.tensor([[100.0, -100.0, math.inf, -math.inf]], device=device, requires_grad=True)
    for real in (True, False):
        for label in ((1.0, 0.0), (0.9, 0.1)):
            kw = dict(target_is_real=real, gan_type=gan_type, is_disc=True, real_label=label[0],
                      fake_label=label[1])
            loss = F.adversarial_loss(x, **kw)
            ref = R.adversarial_loss(x.detach().double(), **kw)
            # wgan's mean of -x over +inf and -inf is NaN in exact arithmetic too
            assert not loss.isnan() or gan_type == "wgan"
            torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=0, equal_nan=True)
            (dx,) = torch.autograd.grad(loss, [x])
            assert not dx.isnan().any(), (real, label, dx)
    nan = torch.tensor([[0.5, math.nan]], device=device, requires_grad=True)
    loss = F.adversarial_loss(nan, True, gan_type, is_disc=True)
    assert loss.isnan()
    assert torch.autograd.grad(loss, [nan])[0].isnan().any() or gan_type in ("wgan", "hinge")


@pytest.mark.parametrize("device", DEVICES)
def test_vanilla_extremes_values(device):
    """BCE with logits at +-100 and +-inf for labels 1 and 0: softplus(-x) / softplus(x)."""
    x = torch.tensor([100.0, -100.0, math.inf, -math.inf], device=device)
    real = F.adversarial_loss(x, True, "vanilla", reduction="mean")
    assert real.item() == math.inf  # softplus(inf) at x = -inf
    x = x[:3]
    assert F.adversarial_loss(x, True, "vanilla").item() == pytest.approx(100.0 / 3, rel=1e-6)
    assert F.adversarial_loss(x, False, "vanilla").item() == math.inf


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("gan_type", ["wgan", "softplus", "hinge"])
def test_labels_are_accepted_and_ignored_where_the_anchors_ignore_them(device, gan_type):
    x = torch.randn(2, 1, 6, 6, device=device)
    plain = F.discriminator_loss(x, x + 1, gan_type)
    assert torch.equal(plain, F.discriminator_loss(x, x + 1, gan_type, real_label=0.7,
                                                   fake_label=0.2))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_fp32_within_twice_torch_error_at_1m_elements(device, gan_type):
    """A 2^20-element fp32 discriminator output (4 x 512 x 512 patch logits): loss and gradient
    error against float64 at most 2x that of the reference run in fp32 (torch's own sums), plus
    one fp32 ulp of the result."""
    (x,) = _logits([(4, 1, 512, 512)], gan_type, torch.float32, device)
    x64 = x.detach().double().requires_grad_()
    x32 = x.detach().clone().requires_grad_()
    kw = dict(gan_type=gan_type, is_disc=True, real_label=0.9)
    ours, torch32, exact = (F.adversarial_loss(x, True, **kw), R.adversarial_loss(x32, True, **kw),
                            R.adversarial_loss(x64, True, **kw))
    one_ulp = abs(exact.item()) * 2.0**-23
    assert abs(ours.item() - exact.item()) <= 2 * abs(torch32.item() - exact.item()) + one_ulp
    (dx,), (dx32,), (dx64,) = (torch.autograd.grad(v, [t]) for v, t in
                               ((ours, x), (torch32, x32), (exact, x64)))
    err, torch_err = (dx.double() - dx64).abs().max(), (dx32.double() - dx64).abs().max()
    assert err <= 2 * torch_err + dx64.abs().max() * 2.0**-23, (err, torch_err)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    for gan_type in GAN_TYPES:
        xs = [t.detach().double().requires_grad_() for t in
              _logits([(2, 1, 3, 3), (2, 2)], gan_type, torch.float64, device, scale=0.7)]

        def fn(a, b, t=gan_type):
            return F.discriminator_loss([a], [b], t, real_label=0.8, weight=0.5,
                                        reduction="per_sample")

        check_gradcheck(fn, tuple(xs))


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_and_batch_one(device):
    base = torch.randn(1, 3, 8, 10, device=device)
    views = [base[:, :1], base.transpose(2, 3)[:, 1:2], base[..., ::2]]
    views = [v.detach().requires_grad_() for v in views]
    for gan_type in ("lsgan", "hinge"):
        kw = dict(gan_type=gan_type, reduction="per_sample")
        check(lambda t: F.discriminator_loss(t[:2], t[2:], **kw),
              lambda t: R.discriminator_loss(t[:2], t[2:], **kw), views)


@pytest.mark.parametrize("device", DEVICES)
def test_bitwise_repeatable(device):
    xs = _logits([(4, 1, 130, 250), (4, 1, 66, 126)], "vanilla", torch.float32, device)
    runs = []
    for _ in range(3):
        loss = F.discriminator_loss(xs[:1], xs[1:], "vanilla", reduction="per_sample")
        runs.append((loss, *torch.autograd.grad(loss.sum(), xs)))
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            assert torch.equal(a, b)


def test_double_backward_raises():
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.grad(F.adversarial_loss(x, True, "lsgan"), [x], create_graph=True)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_eager_op_error_that_the_checks_pass_is_raised_unchanged(monkeypatch, requires_grad):
    """Eager calls leave the tensor checks to the op and run the Python checks only when it
    raises: an error those checks do not know (here a stand-in for the CUDA size limit) reaches
    the caller as the op raised it."""
    from ganloss_cuda.ops import adversarial as ops_adversarial

    class Calls:
        @staticmethod
        def adversarial_loss(*args):
            raise ValueError("inputs[0] is too large for the CUDA kernels")

    monkeypatch.setattr(ops_adversarial, "_calls", Calls)
    x = torch.randn(2, 1, 4, 4, requires_grad=requires_grad)
    with pytest.raises(ValueError, match="^inputs\\[0\\] is too large for the CUDA kernels$"):
        F.adversarial_loss(x, True, "lsgan")


def test_eager_calls_are_seen_by_the_profiler_and_dispatch_modes():
    """The eager entry points call the registered ops through the dispatcher: torch.profiler
    records them by name and a TorchDispatchMode sees both, as through torch.ops."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Seen(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    x = torch.randn(4, 1, requires_grad=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        F.adversarial_loss(x, True, "softplus", reduction="per_sample").sum().backward()
    names = {e.key for e in prof.key_averages()}
    assert {"ganloss::adversarial_loss", "ganloss::adversarial_loss_backward"} <= names
    seen = Seen()
    with seen:
        F.adversarial_loss(x, True, "softplus", reduction="per_sample").sum().backward()
    assert any(op.startswith("ganloss.adversarial_loss.") for op in seen.ops), seen.ops
    assert any(op.startswith("ganloss.adversarial_loss_backward.") for op in seen.ops), seen.ops


@pytest.mark.parametrize("fn", [F.adversarial_loss, R.adversarial_loss])
def test_remembered_setting_checks_tell_types_apart(fn):
    """The checked settings are remembered per call site values (lru_cache, typed): after
    weight=1 and real_label=1 passed, True (== 1, same hash) is still refused, and an unhashable
    setting still gets the checks' own message."""
    x = [torch.randn(2, 1)]
    fn(x, True, weight=1, real_label=1)
    with pytest.raises(TypeError, match="^weight must be a number, got bool$"):
        fn(x, True, weight=True)
    with pytest.raises(TypeError, match="^real_label must be a number, got bool$"):
        fn(x, True, real_label=True)
    with pytest.raises(TypeError, match="^gan_type must be a str, got list$"):
        fn(x, True, gan_type=["vanilla"])
    with pytest.raises(ValueError, match="^weight must be a finite non-negative number, got nan$"):
        fn(x, True, weight=math.nan)


@pytest.mark.parametrize("device", DEVICES)
def test_under_autocast_bce_is_accepted(device):
    """torch refuses binary_cross_entropy under autocast; ours computes it in float32."""
    p = torch.rand(2, 1, 8, 8, device=device).half().requires_grad_()
    with torch.autocast(device_type=device, dtype=torch.float16 if device == "cuda" else
                        torch.bfloat16):
        loss = F.adversarial_loss(p, True, "bce")
    assert loss.dtype == torch.float32
    assert_close(loss, R.adversarial_loss(p.detach().double(), True, "bce"), 1e-5, "loss")


# ---------------------------------------------------------------------------------------------
# The registered ops.

def sample_inputs(device):
    """Op-level calls: (inputs, real, gan_type, is_disc, real_label, fake_label, weights,
    per_sample)."""
    xs = [torch.randn(2, 1, 5, 7, device=device), torch.randn(2, 3, device=device)]
    yield xs, [True, False], "lsgan", True, 1.0, 0.0, [0.5, 0.5], False
    yield xs, [True, True], "vanilla", False, 0.9, 0.1, [1.0, 2.0], True
    yield [x.sigmoid() for x in xs], [False, True], "bce", True, 1.0, 0.0, [0.5, 0.5], False
    yield [x.double() for x in xs], [True, False], "hinge", True, 1.0, 0.0, [1.0, 1.0], True
    yield xs[:1], [True], "hinge", False, 1.0, 0.0, [1.0], False
    yield xs, [True, False], "softplus", True, 1.0, 0.0, [1.0, 1.0], False
    yield xs, [True, False], "wgan", True, 1.0, 0.0, [0.25, 1.0], False


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for xs, *args in sample_inputs(device):
        for need in (False, True):
            check_opcheck(ops.adversarial_loss.default,
                          ([x.clone().requires_grad_(need) for x in xs], *args))
        grad = torch.rand_like(ops.adversarial_loss(xs, *args)) + 0.5
        check_opcheck(ops.adversarial_loss_backward.default, (grad, xs, *args))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device):
    real = [torch.randn(2, 1, 9, 9, device=device, requires_grad=True),
            torch.randn(2, 1, 5, 5, device=device, requires_grad=True)]
    fake = [torch.randn(2, 1, 9, 9, device=device, requires_grad=True)]

    def step(real, fake):
        d = F.discriminator_loss(real, fake, "hinge", weight=0.5)
        g = F.adversarial_loss(fake, True, "hinge", reduction="per_sample").mean()
        return d + 0.1 * g

    out = check_compile_fullgraph(step, (real, fake), 1e-6)
    assert_close(out, step(_double(real), _double(fake)), 1e-5, "compiled loss")


@pytest.mark.cuda
def test_cuda_graph_capture_of_a_step():
    """The D and G losses of a step captured in a CUDA graph and replayed equal eager."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    real = [torch.randn(4, 1, 67, 131, device="cuda"), torch.randn(4, 1, 35, 67, device="cuda")]
    fake = [t.clone().requires_grad_() for t in real]

    def step():
        d = F.discriminator_loss(real, [f.detach() for f in fake], "lsgan", weight=0.5,
                                 aggregation="sum")
        g = F.adversarial_loss(fake, True, "lsgan", aggregation="sum")
        g.backward()
        return d, g

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()  # warm-up off the default stream
    torch.cuda.current_stream().wait_stream(stream)
    for f in fake:
        f.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        d, g = step()
    for t in real + fake:
        t.data.copy_(torch.randn_like(t))
    graph.replay()
    torch.cuda.synchronize()
    ref_d = R.discriminator_loss(_double(real), _double(fake), "lsgan", weight=0.5,
                                 aggregation="sum")
    fd = _double(fake)
    ref_g = R.adversarial_loss(fd, True, "lsgan", aggregation="sum")
    assert_close(d, ref_d, 1e-5, "replayed D loss")
    assert_close(g, ref_g, 1e-5, "replayed G loss")
    for f, r in zip(fake, torch.autograd.grad(ref_g, fd)):
        assert_close(f.grad, r, 1e-5, "replayed G grad")
