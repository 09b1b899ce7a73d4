"""Imports ganloss_cuda, which must not have its extension (run with GANLOSS_CUDA_DISABLE=1), and
checks that every public function and module computes the reference's values and gradients on
the pure-torch fallback. Prints one JSON line: the number of checks, and the FallbackWarnings
with the load error. Run by tests/test_fallback.py in a fresh interpreter."""
import json
import warnings

import torch

DTYPE = torch.float64
GEN = torch.Generator().manual_seed(0)


def rand(*shape):
    return torch.randn(*shape, generator=GEN, dtype=DTYPE)


def uniform(*shape):
    return torch.rand(*shape, generator=GEN, dtype=DTYPE)


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def check_feature_loss():
    """functional.feature_loss: every criterion and reduction, with and without masks, equal to the
    reference; then independent formulas for a few of them."""
    from ganloss_cuda import functional, reference

    checks = 0
    x = [rand(2, 3, 4, 5), rand(2, 6, 3), rand(2, 0, 4)]
    y = [rand(*t.shape) for t in x]
    full = [uniform(t.shape) for t in x]
    one_channel = [uniform(2, 1, 4, 5), None, uniform(2, 0, 4)]
    weights = [0.25, 1.5, 3.0]
    for criterion in reference.CRITERIA:
        for reduction in reference.REDUCTIONS:
            mask_sets = [None] if criterion == "fro" else [None, full, one_channel]
            for masks in mask_sets:
                xs = [t.clone().requires_grad_() for t in x]
                got = functional.feature_loss(xs, y, weights, criterion, reduction, masks)
                ref = reference.feature_loss(x, y, weights, criterion, reduction, masks)
                assert torch.equal(got, ref), (criterion, reduction, got, ref)
                assert got.shape == ((2,) if reduction == "per_sample" else ())
                got.sum().backward()
                assert all(t.grad is not None and torch.isfinite(t.grad).all()
                           for t in xs if t.numel())
                checks += 1
    d = x[0] - y[0]
    close(functional.feature_loss(x[0], y[0]), d.abs().mean())
    close(functional.feature_loss(x[0], y[0], criterion="mse", reduction="sum"), (d * d).sum())
    close(functional.feature_loss(x[0], y[0], criterion="fro"), d.norm())
    m = one_channel[0]
    close(functional.feature_loss([x[0]], [y[0]], masks=[m]),
          (d.abs() * m).sum() / m.expand_as(d).sum())
    return checks + 4


def check_module(module, args, ref_fn, grad_of):
    """module(*args) and ref_fn on copies of args: equal values, and equal gradients of the
    tensors grad_of picks; one check."""
    args_ref = [[t.detach().clone().requires_grad_(t.requires_grad) for t in a]
                if isinstance(a, list) else a for a in args]
    out = module(*args)
    ref = ref_fn(*args_ref)
    close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    for a, b in zip(grad_of(args), grad_of(args_ref)):
        assert a.grad is not None
        close(a.grad, b.grad)
    return 1


def check_pixel_modules():
    """L1Loss, MSELoss, CharbonnierLoss for every reduction, with and without a weight mask."""
    import ganloss_cuda

    checks = 0
    eps = 1e-6
    pred, target = rand(2, 3, 8, 8), rand(2, 3, 8, 8)
    weight = uniform(2, 1, 8, 8)
    formulas = {
        ganloss_cuda.L1Loss: lambda d: d.abs(),
        ganloss_cuda.MSELoss: lambda d: d * d,
        ganloss_cuda.CharbonnierLoss: lambda d: torch.sqrt(d * d + eps),
    }
    for cls, rho in formulas.items():
        for reduction in ("mean", "sum", "none"):
            for w in (None, weight):
                kwargs = {"eps": eps} if cls is ganloss_cuda.CharbonnierLoss else {}
                module = cls(loss_weight=0.5, reduction=reduction, **kwargs)

                def ref_fn(ps, ts, rho=rho, reduction=reduction, w=w):
                    e = rho(ps[0] - ts[0]) * (1 if w is None else w)
                    if reduction == "none":
                        return 0.5 * e
                    if reduction == "sum":
                        return 0.5 * e.sum()
                    return 0.5 * (e.mean() if w is None else e.sum() / w.expand_as(e).sum())

                p = pred.clone().requires_grad_()
                checks += check_module(lambda ps, ts, module=module, w=w: module(ps[0], ts[0], w),
                                       [[p], [target]], ref_fn, lambda a: a[0])
    return checks


def check_vgg_loss():
    """VGGLoss: pix2pixHD's weighted L1 over five layers."""
    import ganloss_cuda

    vgg_w = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
    xf = [rand(2, 4 * 2 ** i, 16 // 2 ** i, 16 // 2 ** i).requires_grad_() for i in range(5)]
    yf = [rand(*t.shape) for t in xf]
    return check_module(ganloss_cuda.VGGLoss(), [xf, yf],
                        lambda a, b: sum(w * (s - t).abs().mean() for w, s, t in zip(vgg_w, a, b)),
                        lambda a: a[0])


def check_feature_matching():
    """FeatureMatchingLoss in both styles: values and gradients by formula, logits skipped."""
    import ganloss_cuda

    def scales():
        return [[rand(2, 8, 16 // 2 ** s, 16 // 2 ** s), rand(2, 16, 8 // 2 ** s, 8 // 2 ** s),
                 rand(2, 1, 4, 4)] for s in range(2)]

    checks = 0
    fake = [[t.requires_grad_() for t in scale] for scale in scales()]
    real = scales()
    for style, coef in (("pix2pixhd", 0.5 * (4 / 4) * 10.0), ("spade", 10.0 / 2)):
        for t in (t for scale in fake for t in scale):
            t.grad = None
        out = ganloss_cuda.FeatureMatchingLoss(style=style)(fake, real)
        ref = sum(coef * (f - r).abs().mean()
                  for fs, rs in zip(fake, real) for f, r in zip(fs[:-1], rs[:-1]))
        close(out, ref.detach())
        out.backward()
        for fs, rs in zip(fake, real):
            for f, r in zip(fs[:-1], rs[:-1]):
                close(f.grad, coef * torch.sign(f - r).detach() / f.numel())
            assert fs[-1].grad is None  # the logits are skipped
        checks += 1
    return checks


def main():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import ganloss_cuda

        assert not ganloss_cuda.available()
        checks = (check_feature_loss() + check_pixel_modules() + check_vgg_loss()
                  + check_feature_matching())
    fallback = [w for w in caught if issubclass(w.category, ganloss_cuda.FallbackWarning)]
    print(json.dumps({"fallback_warnings": len(fallback), "checks": checks,
                      "messages": [str(w.message) for w in fallback],
                      "load_error": ganloss_cuda.load_error}))


if __name__ == "__main__":
    main()
