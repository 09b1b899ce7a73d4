"""Public functions. Signatures match ``ganloss_cuda.reference``; the compiled ops run when they
are loaded and have a kernel for the inputs' device, the reference otherwise (one warning)."""
import warnings
from typing import Optional, Sequence

import torch
from torch import Tensor

from . import _ext, reference
from .reference import Tensors, feature_args


class FallbackWarning(UserWarning):
    """The compiled ops are not used; results come from ganloss_cuda.reference."""


_warned = set()


def _use_extension(op: str, device: torch.device) -> bool:
    # Meta tensors go to the fake kernels that ops.py registers for every loaded build.
    if _ext.has_kernel(op, device.type) or (device.type == "meta" and _ext.available()):
        return True
    reason = _ext.load_error or f"the extension was built without {device.type.upper()} kernels"
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"ganloss_cuda: using the pure-torch reference ({reason}); "
                      "`python -m ganloss_cuda.info` shows the build", FallbackWarning, stacklevel=3)
    return False


def feature_loss(inputs: Tensors, targets: Tensors, weights: Optional[Sequence[float]] = None,
                 criterion: str = "l1", reduction: str = "mean",
                 masks: Optional[Sequence[Optional[Tensor]]] = None, eps: float = 1e-12) -> Tensor:
    r"""Weighted multi-layer feature (or pixel) loss, fused over all layers.

    .. math:: L = \sum_l w_l \, \mathrm{reduce}\big(\rho(x_l - y_l) \, [m_l]\big)

    with :math:`\rho(d)` = ``|d|`` (``"l1"``), ``d^2`` (``"mse"``), ``sqrt(d^2 + eps)``
    (``"charbonnier"``, BasicSR), or the Frobenius norm ``||x_l - y_l||_F`` of the whole layer
    (``"fro"``, BasicSR's perceptual ``'fro'``; per sample under ``"per_sample"``).

    Args:
        inputs: tensor or list of tensors ``x_l`` (any shapes, dim 0 = batch); one dtype
            (float16/bfloat16/float32/float64) and device for all.
        targets: tensors ``y_l``, each of the shape of ``x_l``. Detach them unless you want
            their gradient (the usual case costs no extra pass).
        weights: per-layer scalars ``w_l >= 0`` (default 1).
        criterion: ``"l1"`` | ``"mse"`` | ``"charbonnier"`` | ``"fro"``.
        reduction: ``"mean"`` (each layer over its own elements: BasicSR, pix2pixHD, SPADE),
            ``"sum"``, or ``"per_sample"`` (a vector [N] of per-sample means; all layers must
            share N).
        masks: optional element weights per layer, shaped like ``x_l`` or with one channel
            (``(N, 1, H, W)``), BasicSR semantics: ``mean`` divides by the sum of the mask
            expanded over channels (no eps). Masks are constants (no gradient).
        eps: Charbonnier epsilon (BasicSR default 1e-12).

    Returns:
        float32 loss (float64 for float64 inputs) of shape ``()``, or ``(N,)`` for
        ``"per_sample"``. Gradients flow to ``inputs`` and to ``targets`` that require grad.
        Empty layers contribute 0.

    Example:
        >>> loss = feature_loss(vgg(fake), [f.detach() for f in vgg(real)],
        ...                     weights=[1/32, 1/16, 1/8, 1/4, 1.0])
    """
    inputs, targets, weights, criterion, reduction, masks, eps = feature_args(
        inputs, targets, weights, criterion, reduction, masks, eps)
    if inputs and _use_extension("feature_loss", inputs[0].device):
        for i, m in enumerate(masks):
            if m is not None and m.requires_grad and torch.is_grad_enabled():
                raise ValueError(f"masks[{i}] requires grad, but masks are constants here; "
                                 "detach it (or use ganloss_cuda.reference.feature_loss)")
        from . import ops
        return ops.feature_loss(inputs, targets, masks, weights, criterion, reduction, eps)
    return reference.feature_loss(inputs, targets, weights, criterion, reduction, masks, eps)
