"""Shared test settings: devices, dtypes with ids, tolerances, verbose comparisons, and the checks
every op family runs on its sample inputs (opcheck, torch.compile fullgraph, gradcheck)."""
import pytest
import torch
from torch.utils._pytree import tree_leaves

from _subprocess import package_module

HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, requires_cuda])]
DTYPES = [pytest.param(torch.float64, id="f64"), pytest.param(torch.float32, id="f32"),
          pytest.param(torch.float16, id="f16"), pytest.param(torch.bfloat16, id="bf16")]

# The one tolerance table (ganloss_cuda/_tolerance.py), read without importing the package.
_tolerance = package_module("_tolerance")
LOSS_RTOL, GRAD_RTOL, GRAD_ATOL = _tolerance.LOSS_RTOL, _tolerance.GRAD_RTOL, _tolerance.GRAD_ATOL
TF32_LOSS_RTOL, TF32_GRAD_RTOL = _tolerance.TF32_LOSS_RTOL, _tolerance.TF32_GRAD_RTOL


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "extension_not_loaded: the test builds or loads ganloss_cuda only in "
        "subprocesses (or not at all); the pytest process neither imports nor checks it")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _extension_loaded(request):
    """Tests of the compiled ops must not pass silently on the reference fallback. The package is
    imported here, not at collection, so that the tests marked extension_not_loaded (which must
    be able to report a stale or broken build) never build it in the pytest process."""
    if request.node.get_closest_marker("extension_not_loaded"):
        return
    import ganloss_cuda

    if not ganloss_cuda.available():
        pytest.fail(f"ganloss_cuda extension not loaded: {ganloss_cuda.load_error}")


def describe(args):
    """The tensors in args as dtype[shape]@device (+grad where they require it), in order."""
    return ", ".join(f"{str(t.dtype)[6:]}{list(t.shape)}@{t.device}{'+grad' * t.requires_grad}"
                     for t in tree_leaves(args) if isinstance(t, torch.Tensor))


def check_opcheck(op, args):
    """torch.library.opcheck of op on args (schema, fake kernel, autograd registration, dynamic
    shapes); a failure names the op and the tensors it was given."""
    try:
        torch.library.opcheck(op, args)
    except Exception as e:
        raise AssertionError(f"opcheck of {op} failed on {describe(args)}") from e


def check_compile_fullgraph(fn, args, rtol):
    """torch.compile(fn, fullgraph=True) (a graph break is an error) gives eager fn's output, a
    scalar, and its gradients with respect to the tensors in args that require grad, within
    rtol. Returns the compiled output."""
    torch._dynamo.reset()
    wants = [t for t in tree_leaves(args) if isinstance(t, torch.Tensor) and t.requires_grad]
    out = torch.compile(fn, fullgraph=True)(*args)
    grads = torch.autograd.grad(out, wants)
    eager = fn(*args)
    assert_close(out, eager, rtol, "compiled output")
    for i, (g, e) in enumerate(zip(grads, torch.autograd.grad(eager, wants))):
        assert_close(g, e, rtol, f"compiled grad[{i}]")
    return out


def check_gradcheck(fn, inputs):
    """torch.autograd.gradcheck of fn at inputs, float64 tensors that all require grad (finite
    differences against the analytic backward)."""
    assert all(t.dtype == torch.float64 and t.requires_grad for t in inputs), describe(inputs)
    assert torch.autograd.gradcheck(fn, inputs)


def assert_close(actual, expected, rtol, what="", atol=0.0):
    """|actual - expected| <= rtol * max|expected| + atol, reporting the worst index."""
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if expected.numel() == 0:
        return
    assert torch.isnan(actual).eq(torch.isnan(expected)).all(), f"{what}: NaN pattern differs"
    finite = ~torch.isnan(expected)
    err = (actual - expected).abs().where(finite, torch.zeros(()))
    bound = rtol * expected.abs().where(finite, torch.zeros(())).max() + atol + 1e-300
    worst = int(err.argmax())
    assert err.max() <= bound, (
        f"{what}: max error {err.max().item():.3e} > {bound.item():.3e} at flat index {worst}: "
        f"{actual.flatten()[worst].item()!r} vs {expected.flatten()[worst].item()!r}")


_MANTISSA_BITS = {torch.float16: 10, torch.bfloat16: 7, torch.float32: 23, torch.float64: 52}


def ulp(values, dtype):
    """The spacing of `dtype` at |values| (float64 result): 2**(exponent - mantissa bits), with the
    subnormal spacing (float16: 2**-24) at and below the smallest normal, zero included."""
    v = values.detach().double().abs()
    min_exp = int(torch.finfo(dtype).smallest_normal.__float__().hex().split("p")[1])
    _, e = torch.frexp(v)  # v = m * 2**e, 0.5 <= m < 1: the leading bit is 2**(e - 1)
    lead = torch.where(v > 0, e - 1, torch.full_like(e, min_exp)).clamp(min=min_exp)
    return torch.ldexp(torch.ones_like(v), lead - _MANTISSA_BITS[dtype])


def ulp_error(actual, true, dtype):
    """|actual - true| in ulps of `dtype` at the float64 value `true`. Where `true` rounds to
    +-inf in `dtype`, or is NaN, the error is 0 if `actual` is that same value and inf if not."""
    a, t = actual.detach().double(), true.detach().double()
    finite = torch.isfinite(t) & torch.isfinite(t.to(dtype))
    err = (a - t).abs() / ulp(t.where(finite, torch.zeros(())), dtype)
    err = err.nan_to_num(nan=float("inf"))
    special = t.to(dtype).double()
    same = (a == special) | (a.isnan() & special.isnan())
    return torch.where(finite, err, torch.where(same, 0.0, float("inf")))


def reset_peak_rss():
    """Resets this process's resident-set high-water mark (Linux /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_bytes():
    """This process's resident-set high-water mark since the last reset_peak_rss()."""
    with open("/proc/self/status") as f:
        return 1024 * int(next(l for l in f if l.startswith("VmHWM:")).split()[1])
