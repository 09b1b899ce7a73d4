"""Shared test settings: devices, dtypes with ids, tolerances, verbose comparisons."""
import pytest
import torch

import ganloss_cuda

HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, requires_cuda])]
DTYPES = [pytest.param(torch.float64, id="f64"), pytest.param(torch.float32, id="f32"),
          pytest.param(torch.float16, id="f16"), pytest.param(torch.bfloat16, id="bf16")]

# Relative tolerance of gradients (stored in the input dtype) against the float64 oracle,
# scaled by the largest oracle gradient. The loss accumulates in fp32/fp64 whatever the input.
GRAD_RTOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
# float16 gradients below its smallest normal (6e-5) are subnormals spaced 2**-24 apart.
GRAD_ATOL = {torch.float64: 0.0, torch.float32: 0.0, torch.float16: 2.0**-24, torch.bfloat16: 0.0}
LOSS_RTOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-5, torch.bfloat16: 1e-5}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _extension_loaded():
    """Tests of the compiled ops must not pass silently on the reference fallback."""
    if not ganloss_cuda.available():
        pytest.fail(f"ganloss_cuda extension not loaded: {ganloss_cuda.load_error}")


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
