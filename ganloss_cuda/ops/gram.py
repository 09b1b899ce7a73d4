"""The Gram/style family's compiled ops: fake (meta) kernels, autograd, and the public
``gram_matrix`` and ``style_loss``, which run the ops or fall back to the reference. ``OPS`` lists
the family's ops (schemas in csrc/ganloss.cpp).

The ops take features as [B, C, K] views (``reference.gram_view``: the batch folded into the rows
for normalization 'nchw') and the scale 1/norm. fp32 features use TF32 tensor cores on CUDA only
when torch.get_float32_matmul_precision() is not "highest" (read when the op is called or
traced). Nothing here synchronises with the device (torch.compile fullgraph, CUDA graphs).

Layer rule: imports torch, ``_args``, ``_ext`` and ``reference`` only.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor

from .. import _ext, reference
from .._args import Tensors, no_grad_for
from ..reference import check_style_args, gram_view, style_args
from .._args import acc_dtype
from ..reference.gram import check_gram_args, gram_shape

OPS = ("gram_matrix", "gram_matrix_backward", "style_loss", "style_loss_backward")

_ops = torch.ops.ganloss


@torch.compiler.assume_constant_result  # a constant of the traced graph
def _allow_tf32() -> bool:
    return torch.get_float32_matmul_precision() != "highest"


def _readable(t: Tensor) -> Tensor:
    """The layout the kernels read a [B, C, K] operand in (csrc readable_features): t itself when
    its K or C axis has stride 1, else a contiguous copy; gradients are allocated like it."""
    if t.numel() == 0 or t.stride(2) == 1 or t.shape[2] == 1 or t.stride(1) == 1 or t.shape[1] == 1:
        return t
    return t.contiguous()


def _check_op_features(inputs, targets, target_is_gram: bool):
    """What the fake kernels check besides the public function's checks: the ops' [B, C, K]
    operands, and one device (a meta tensor mixed with CPU ones gets the device error)."""
    x0 = inputs[0]
    for i, (x, y) in enumerate(zip(inputs, targets)):
        if x.dim() != 3:
            raise ValueError(f"inputs[{i}] must be 3-D [B, C, K] features, got shape "
                             f"{tuple(x.shape)}")
        if x.device != x0.device:
            raise ValueError(f"inputs[{i}] is on {x.device} but inputs[0] is on {x0.device}")
        if y.device != x.device:
            raise ValueError(f"targets[{i}] is on {y.device} but inputs[{i}] is on {x.device}")
        if not target_is_gram and y.shape != x.shape:
            raise ValueError(f"targets[{i}] has shape {tuple(y.shape)} but inputs[{i}] has "
                             f"{tuple(x.shape)}")


# FakeTensor kernels: output shapes, dtypes and strides from the inputs alone (torch.compile
# traces through them; meta tensors run them in eager mode).
def _gram_matrix_fake(features, scale, allow_tf32):
    if features.dim() != 3:
        raise ValueError(f"features must be 3-D [B, C, K] features, got shape "
                         f"{tuple(features.shape)}")
    b, c, _ = features.shape
    return features.new_empty((b, c, c), dtype=acc_dtype(features.dtype))


def _gram_matrix_backward_fake(grad, features, scale, allow_tf32):
    if grad.device != features.device:
        raise ValueError(f"grad is on {grad.device} but features is on {features.device}")
    return torch.empty_like(_readable(features))


def _segments(inputs, reduction: str) -> int:
    return sum(x.shape[0] for x in inputs) if reduction == "per_sample" else len(inputs)


def _style_loss_fake(inputs, targets, weights, scales, criterion, reduction, target_is_gram,
                     allow_tf32):
    _check_op_features(inputs, targets, target_is_gram)
    x0 = inputs[0]
    acc = acc_dtype(x0.dtype)
    loss = x0.new_empty((x0.shape[0],) if reduction == "per_sample" else (), dtype=acc)
    stats = x0.new_empty((_segments(inputs, reduction), 2), dtype=torch.float64)
    diffs = [x.new_empty((x.shape[0], x.shape[1], x.shape[1]), dtype=acc) for x in inputs]
    return loss, stats, diffs


def _style_loss_backward_fake(grad, stats, diffs, inputs, targets, weights, scales, criterion,
                              reduction, target_is_gram, input_grad, target_grad, allow_tf32):
    _check_op_features(inputs, targets, target_is_gram)
    dxs = [torch.empty_like(_readable(x)) for x in inputs] if input_grad else []
    dys = [y.new_empty(y.shape) if target_is_gram else torch.empty_like(_readable(y))
           for y in targets] if target_grad else []
    return dxs, dys


# Autograd (torch.library): eager calls, torch.compile and direct calls of the ops.
def _gram_setup_context(ctx, inputs, output):
    features, scale, allow_tf32 = inputs
    ctx.save_for_backward(features)
    ctx.args = (scale, allow_tf32)


def _gram_backward(ctx, grad):
    _check_once()
    (features,) = ctx.saved_tensors
    scale, allow_tf32 = ctx.args
    return _ops.gram_matrix_backward(grad, features, scale, allow_tf32), None, None


def _style_setup_context(ctx, inputs, output):
    xs, ys, weights, scales, criterion, reduction, target_is_gram, allow_tf32 = inputs
    _loss, stats, diffs = output
    ctx.mark_non_differentiable(stats, *diffs)
    ctx.set_materialize_grads(False)
    ctx.num_layers = len(xs)
    ctx.args = (weights, scales, criterion, reduction, target_is_gram, allow_tf32)
    ctx.save_for_backward(stats, *xs, *ys, *diffs)


def _style_backward(ctx, grad, _stats_grad, _diffs_grad):
    _check_once()
    n = ctx.num_layers
    weights, scales, criterion, reduction, target_is_gram, allow_tf32 = ctx.args
    need_x, need_y = any(ctx.needs_input_grad[0]), any(ctx.needs_input_grad[1])
    dxs = dys = []
    if grad is not None and (need_x or need_y):
        stats, *rest = ctx.saved_tensors
        xs, ys, diffs = rest[:n], rest[n:2 * n], rest[2 * n:]
        dxs, dys = _ops.style_loss_backward(grad, stats, diffs, xs, ys, weights, scales,
                                            criterion, reduction, target_is_gram, need_x, need_y,
                                            allow_tf32)
    none = [None] * n
    return (dxs or none, dys or none, no_grad_for(weights), no_grad_for(scales), None, None, None,
            None)



def _check_once():
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        raise RuntimeError("ganloss gram_matrix and style_loss are differentiable once: backward "
                           "with create_graph=True (double backward) is not supported")


def gram_matrix(features: Tensor, normalization: str = "chw") -> Tensor:
    r"""Gram matrix of features, computed and returned in float32 (float64 for float64 features)
    whatever their dtype, so a 16-bit input never overflows (the anchors' fp16 ``bmm`` does above
    65504).

    .. math:: G_n = F_n F_n^\top / \mathrm{norm}, \quad F_n = \mathrm{features}[n]
              \text{ viewed as } (C, H W)

    Args:
        features: (N, C, *spatial), float16/bfloat16/float32/float64, contiguous or
            channels_last (read in place), any other strides (copied).
        normalization: ``"chw"`` (/ C*H*W: BasicSR, mmagic, fast-neural-style), ``"hw"``
            (/ H*W: Gatys et al.), ``"nchw"`` (the batch folded into the rows,
            F = features.view(N*C, H*W), / N*C*H*W: the PyTorch tutorial; returns (N*C, N*C)),
            ``"none"`` (piq).

    Returns:
        (N, C, C) (or (N*C, N*C) for ``"nchw"``); differentiable once.
    """
    check_gram_args(features, normalization)
    if not _ext.use_extension("gram_matrix", features.device):
        return reference.gram_matrix(features, normalization)
    f, scale = gram_view(features, normalization)
    return _ops.gram_matrix(f, scale, _allow_tf32()).reshape(gram_shape(features, normalization))


def _op_targets(targets, target_is_gram: bool, normalization: str):
    if not target_is_gram:
        return [gram_view(y, normalization)[0] for y in targets]
    return [g.unsqueeze(0) if g.dim() == 2 else g for g in targets]  # 'nchw': (N*C, N*C)


def style_loss(inputs: Tensors, targets: Tensors, weights: Optional[Sequence[float]] = None,
               criterion: str = "l1", normalization: str = "chw", reduction: str = "mean",
               target_is_gram: bool = False) -> Tensor:
    r"""Weighted multi-layer style (Gram) loss, each layer's Gram difference formed in float32.

    .. math:: L = \sum_l w_l \, \mathrm{reduce}\big(\rho(D_l)\big), \quad
              D_l = G(x_l) - G(y_l) \text{ or } G(x_l) - \mathrm{targets}_l

    with :math:`G` as in :func:`gram_matrix` and :math:`\rho(d)` = ``|d|`` (``"l1"``), ``d^2``
    (``"mse"``), or the Frobenius norm ``||D_l||_F`` of the whole layer (``"fro"``, BasicSR;
    per sample under ``"per_sample"``). Neither Gram is ever stored in 16 bits, and D is never
    formed through the expanded norm.

    Args:
        inputs: tensor or list of features ``x_l`` (N, C, *spatial); one dtype and device.
        targets: features ``y_l`` of the same shapes, or, with ``target_is_gram``, their Grams
            as :func:`gram_matrix` returns them with the same normalization ((N, C, C), or
            (1, C, C) broadcast over the batch: compute a style image's Grams once and reuse
            them; (N*C, N*C) for ``"nchw"``). Detach them unless you want their gradient.
        weights: per-layer scalars ``w_l >= 0`` (default 1).
        criterion: ``"l1"`` (BasicSR, mmagic default) | ``"mse"`` (fast-neural-style, the
            tutorial, piq) | ``"fro"`` (BasicSR).
        normalization: ``"chw"`` | ``"hw"`` | ``"nchw"`` | ``"none"``, as in :func:`gram_matrix`.
        reduction: ``"mean"`` over each layer's N*C*C Gram entries (nn.L1Loss / nn.MSELoss),
            ``"sum"``, or ``"per_sample"``: a vector (N,) of per-sample means over C*C (piq's
            value before its batch reduction; not with ``"nchw"``).
        target_is_gram: targets are Grams, not features.

    Returns:
        float32 loss (float64 for float64 inputs) of shape () or (N,). Gradients flow to
        ``inputs`` and to targets (features or Grams) that require grad.

    Example:
        >>> style_grams = [gram_matrix(f) for f in vgg(style_image)]   # once, (1, C, C)
        >>> loss = 1e10 * style_loss(vgg(output), style_grams, criterion="mse",
        ...                          target_is_gram=True)
    """
    args = style_args(inputs, targets, weights, criterion, normalization, reduction,
                      target_is_gram)
    check_style_args(*args)
    inputs, targets, weights = args[:3]
    if not _ext.use_extension("style_loss", inputs[0].device):
        return reference.style_loss(*args)
    views = [gram_view(x, normalization) for x in inputs]
    features, scales = [f for f, _ in views], [s for _, s in views]
    return _ops.style_loss(features, _op_targets(targets, target_is_gram, normalization), weights,
                           scales, criterion, reduction, target_is_gram, _allow_tf32())[0]


if _ext.available():  # the registrations need the schemas of the loaded library
    torch.library.register_fake("ganloss::gram_matrix")(_gram_matrix_fake)
    torch.library.register_fake("ganloss::gram_matrix_backward")(_gram_matrix_backward_fake)
    torch.library.register_fake("ganloss::style_loss")(_style_loss_fake)
    torch.library.register_fake("ganloss::style_loss_backward")(_style_loss_backward_fake)
    torch.library.register_autograd("ganloss::gram_matrix", _gram_backward,
                                    setup_context=_gram_setup_context)
    torch.library.register_autograd("ganloss::style_loss", _style_backward,
                                    setup_context=_style_setup_context)
