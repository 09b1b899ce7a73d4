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
