"""Imports ganloss_cuda, which must load its JIT build with no warning, checks feature_loss and its
gradients against the reference for every criterion in float64 and float32, and prints the build
facts as one JSON line. Run by tests/test_jit.py in a fresh interpreter."""
import json
import warnings

import torch

warnings.simplefilter("error", UserWarning)  # a FallbackWarning would fail the run
import ganloss_cuda  # noqa: E402
from ganloss_cuda import _ext, reference  # noqa: E402

assert _ext.build_info.get("source") == "jit", (_ext.load_error, _ext.build_info)
assert ganloss_cuda.available() and _ext.has_kernel("feature_loss", "cpu")
g = torch.Generator().manual_seed(0)
for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
    x = [torch.randn(2, 3, 4, 5, generator=g, dtype=dtype),
         torch.randn(2, 7, generator=g, dtype=dtype)]
    y = [torch.randn(t.shape, generator=g, dtype=dtype) for t in x]
    for criterion in ("l1", "mse", "charbonnier", "fro"):
        xs = [t.clone().requires_grad_() for t in x]
        got = ganloss_cuda.feature_loss(xs, y, weights=[0.5, 2.0], criterion=criterion)
        xr = [t.clone().requires_grad_() for t in x]
        ref = reference.feature_loss(xr, y, weights=[0.5, 2.0], criterion=criterion)
        torch.testing.assert_close(got, ref, rtol=tol, atol=tol)
        got.backward()
        ref.backward()
        for a, b in zip(xs, xr):
            torch.testing.assert_close(a.grad, b.grad, rtol=tol, atol=tol)
print(json.dumps(_ext.build_info))
