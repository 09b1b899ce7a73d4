"""The Gram/style family at the sizes users run (VGG layers up to 256x256, C up to 512): accuracy
against float64, fp32 within 2x of torch's own fp32 error, the fp16 AMP overflow the anchors hit
(an un-normalised Gram above 65504) and bf16 near convergence, where a bf16-stored Gram loses the
difference of two nearly equal Grams."""
import pytest
import torch

from conftest import DEVICES, DTYPES, GRAD_ATOL, GRAD_RTOL, LOSS_RTOL, assert_close
from ganloss_cuda import functional as F
from ganloss_cuda import reference as R

# VGG-like layers: relu1_x at 256x256 (4.2M elements), relu3_x, relu5_x.
REALISTIC = [(1, 64, 256, 256), (2, 256, 32, 32), (2, 512, 16, 16)]


def _anchor_gram(x):
    """BasicSR / mmagic / fast-neural-style `_gram_mat`, verbatim: bmm in the features' dtype
    (fp16 or bf16 under autocast), then the division."""
    n, c, h, w = x.size()
    features = x.view(n, c, w * h)
    return features.bmm(features.transpose(1, 2)) / (c * h * w)


def _rel(a, b):
    return ((a.double() - b.double()).abs() / b.double().abs()).item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", REALISTIC, ids=["64x256x256", "256x32x32", "512x16x16"])
def test_realistic_layers_match_float64(device, dtype, shape):
    """Loss and gradient (upstream 2^16 for 16-bit inputs, 0.75 otherwise) against float64. The
    fp32 gradient of K = 65536 sums is allowed twice the error of torch's own fp32 gradient when
    that exceeds the table's 1e-5."""
    x = torch.randn(shape, device=device).relu().to(dtype).requires_grad_()
    y = torch.randn(shape, device=device).relu().to(dtype)
    xd = x.detach().double().requires_grad_()
    g = 2.0**16 if dtype in (torch.float16, torch.bfloat16) else 0.75
    for criterion in ("l1", "mse"):
        loss = F.style_loss(x, y, criterion=criterion)
        ref = R.style_loss(xd, y.double(), criterion=criterion)
        assert_close(loss, ref, LOSS_RTOL[dtype], f"{criterion} loss")
        (dx,) = torch.autograd.grad(loss, [x], torch.tensor(g, device=device))
        (ref_dx,) = torch.autograd.grad(ref, [xd], torch.tensor(g, dtype=torch.float64,
                                                                device=device))
        rtol = GRAD_RTOL[dtype]
        if dtype == torch.float32:
            x32 = x.detach().clone().requires_grad_()
            (torch_dx,) = torch.autograd.grad(R.style_loss(x32, y, criterion=criterion), [x32],
                                              torch.tensor(g, device=device))
            torch_err = (torch_dx.double() - ref_dx).abs().max() / ref_dx.abs().max()
            rtol = max(rtol, 2 * torch_err.item())
        assert_close(dx, ref_dx, rtol, f"{criterion} grad", GRAD_ATOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("eps", [1.0, 1e-2, 1e-3])
def test_fp32_within_twice_torch_error(device, eps):
    """fp32 loss and gradient error against float64 at most 2x that of torch's own fp32 (the
    reference run in fp32: bmm, subtraction, mean), plus one fp32 ulp of the result; y = x + eps
    noise reaches the near-convergence regime where the Gram difference cancels."""
    shape = (2, 128, 64, 64)
    x = torch.randn(shape, device=device).relu().requires_grad_()
    y = (x.detach() + eps * torch.randn(shape, device=device)).relu()
    x64 = x.detach().double().requires_grad_()
    for criterion in ("l1", "mse"):
        ours = F.style_loss(x, y, criterion=criterion)
        x32 = x.detach().clone().requires_grad_()
        torch_fp32 = R.style_loss(x32, y, criterion=criterion)
        exact = R.style_loss(x64, y.double(), criterion=criterion)
        one_ulp = exact.abs().item() * 2.0**-23
        torch_err = abs(torch_fp32.item() - exact.item())
        assert abs(ours.item() - exact.item()) <= 2 * torch_err + one_ulp
        (dx,), (dx32,), (dx64,) = (torch.autograd.grad(v, [t]) for v, t in
                                   ((ours, x), (torch_fp32, x32), (exact, x64)))
        err, torch_err = (dx.double() - dx64).abs().max(), (dx32.double() - dx64).abs().max()
        assert err <= 2 * torch_err + dx64.abs().max() * 2.0**-23, (criterion, err, torch_err)


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_amp_gram_overflow(device):
    """fp16 features of about 3 at 128x128: the un-normalised Gram (~1.5e5) exceeds 65504. The
    anchors' fp16 bmm gives inf/NaN; ours gives the float64 answer on the same fp16 inputs."""
    x = (3.0 + 0.5 * torch.randn(2, 64, 128, 128, device=device)).half().requires_grad_()
    y = (3.0 + 0.5 * torch.randn(2, 64, 128, 128, device=device)).half()
    assert (x.detach().double().flatten(2) ** 2).sum(-1).max() > 65504
    anchor = torch.nn.functional.l1_loss(_anchor_gram(x.detach()).float(),
                                         _anchor_gram(y).float())
    assert not torch.isfinite(anchor)
    xd = x.detach().double().requires_grad_()
    for criterion in ("l1", "mse", "fro"):
        loss = F.style_loss(x, y, criterion=criterion)
        ref = R.style_loss(xd, y.double(), criterion=criterion)
        assert torch.isfinite(loss)
        assert_close(loss, ref, LOSS_RTOL[torch.float16], criterion)
        (dx,), (ref_dx,) = torch.autograd.grad(loss, [x]), torch.autograd.grad(ref, [xd])
        assert torch.isfinite(dx).all()
        assert_close(dx, ref_dx, GRAD_RTOL[torch.float16], f"{criterion} grad",
                     GRAD_ATOL[torch.float16])


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_near_convergence(device):
    """y = x + 1e-2 noise in bf16: the Grams agree to ~1e-2, near bf16's 8-bit resolution. A
    bf16-stored Gram (the anchors under bf16 autocast) loses the difference (5e-2 .. 9e-2 relative
    error over seeds); ours keeps it (1e-6 .. 2e-5, as torch's fp32 Grams)."""
    x = torch.randn(2, 64, 128, 128, device=device).relu().bfloat16()
    y = (x.float() + 1e-2 * torch.randn_like(x, dtype=torch.float32)).bfloat16()
    assert not torch.equal(x, y)
    exact = R.style_loss(x.double(), y.double())
    ours = F.style_loss(x, y)
    anchor = torch.nn.functional.l1_loss(_anchor_gram(x).float(), _anchor_gram(y).float())
    assert _rel(ours, exact) < 1e-4
    assert _rel(anchor, exact) > 1e-2
