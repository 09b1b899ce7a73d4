"""The feature family's compiled ops: fake (meta) kernels, autograd, the op call with autograd
(``compiled_feature_loss``) and the public ``feature_loss``, which runs it or falls back to the
reference. ``OPS`` lists the family's ops (schemas in csrc/ganloss.cpp).

The registrations run only when the library is loaded (they need its schemas); the module imports
either way. Nothing here synchronises with the device, so the ops work under
torch.compile(fullgraph=True) and inside CUDA graphs.

Layer rule: imports torch, ``_args``, ``_ext`` and ``reference`` only.
"""
from typing import List, Optional, Sequence

import torch
from torch import Tensor
from torch._subclasses.functional_tensor import FunctionalTensor

from .. import _ext, reference
from .._args import Tensors, acc_dtype, batch_size, no_grad_for
from ..reference import check_feature_args, feature_args

OPS = ("feature_loss", "feature_loss_backward", "feature_loss_scale_grads_")

_ops = torch.ops.ganloss


def _grad_like(t: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """The gradient of t as the kernels allocate it (the work plan's read_as_is in csrc): t's own
    layout when x and y are read in place, else contiguous."""
    cl = torch.channels_last
    as_is = (x.is_contiguous() and y.is_contiguous()) or (
        x.dim() == 4 and x.is_contiguous(memory_format=cl) and y.is_contiguous(memory_format=cl))
    return torch.empty_like(t) if as_is else t.new_empty(t.shape)


def _grads_fake(inputs, targets, input_grad, target_grad):
    dxs = [_grad_like(x, x, y) for x, y in zip(inputs, targets)] if input_grad else []
    dys = [_grad_like(y, x, y) for x, y in zip(inputs, targets)] if target_grad else []
    return dxs, dys


def _segments(tensors, reduction: str) -> int:
    """Rows of stats: one per (layer, sample) for per_sample, one per layer otherwise."""
    return sum(batch_size(t) for t in tensors) if reduction == "per_sample" else len(tensors)


# FakeTensor kernels ("meta kernels", registered at the end of the file): output shapes, dtypes
# and strides from the inputs alone. torch.compile traces through them without running the op,
# so the op is one node in the graph rather than a graph break. They also run in eager mode when
# any argument is a meta tensor, so they check the arguments like the real kernels do: a meta
# tensor mixed with CPU ones gets the device error, never an uninitialised loss.
def _feature_loss_fake(inputs, targets, masks, weights, criterion, reduction, eps, input_grad,
                       target_grad):
    check_feature_args(inputs, targets, list(weights), criterion, reduction, masks, eps)
    x0 = inputs[0]
    out_dtype = acc_dtype(x0.dtype)
    loss = x0.new_empty((batch_size(x0),) if reduction == "per_sample" else (), dtype=out_dtype)
    stats = x0.new_empty((_segments(inputs, reduction), 3), dtype=torch.float64)
    return (loss, stats, *_grads_fake(inputs, targets, input_grad, target_grad))


def _feature_loss_backward_fake(grad, stats, inputs, targets, masks, weights, criterion,
                                reduction, eps, input_grad, target_grad):
    check_feature_args(inputs, targets, list(weights), criterion, reduction, masks, eps)
    return _grads_fake(inputs, targets, input_grad, target_grad)


def _feature_loss_scale_grads_fake(grad, stats, reduction, grads):
    return None


def _scaled(grad: Tensor, stats: Tensor, reduction: str, grads: List[Tensor]) -> List[Tensor]:
    """Out-of-place twin of feature_loss_scale_grads_ for traced graphs: cudagraph trees skip
    graphs that mutate their inputs, and inductor fuses this multiply anyway."""
    out, seg = [], 0
    for t in grads:
        n = _segments([t], reduction)
        factor = stats[seg:seg + n, 2] * grad
        seg += n
        shape = (n,) + (1,) * (t.dim() - 1) if reduction == "per_sample" else ()
        acc = acc_dtype(t.dtype)
        out.append((t.to(acc) * factor.to(acc).reshape(shape)).to(t.dtype))
    return out


def _grads_from_forward(dtype: torch.dtype) -> bool:
    """fp32/fp64 gradients come from the forward pass (the backward then only scales them); 16-bit
    ones from the backward, computed in fp32 with the upstream (loss-scaled) gradient applied
    before the single rounding: an upstream factor applied after rounding to 16 bits would
    underflow or overflow under GradScaler."""
    return dtype in (torch.float32, torch.float64)


def _traced(t: Tensor) -> bool:
    """Inside torch.compile / AOTAutograd tracing (functionalized tensors), where the backward
    must not mutate its saved tensors."""
    return torch.compiler.is_compiling() or isinstance(t, FunctionalTensor)


def _save(ctx, xs, ys, masks, args, stats, dxs, dys, private: bool):
    """What the backward needs. dxs/dys: gradients the forward computed for an upstream gradient
    of 1 (None when it did not); the first backward scales and hands them on, any later backward
    (retain_graph) recomputes from the saved inputs. private: nothing but ctx holds dxs/dys, so
    the eager backward may scale them in place."""
    # Otherwise autograd passes a materialised zero tensor for every unused output to the
    # backward: one more gradient-sized buffer per layer.
    ctx.set_materialize_grads(False)
    ctx.num_layers, ctx.num_masks = len(xs), len(masks)
    ctx.args = args
    ctx.save_for_backward(stats, *xs, *ys, *masks)
    ctx.dxs, ctx.dys, ctx.private = dxs, dys, private


def _gradients(ctx, grad, need_x: bool, need_y: bool):
    """(dxs, dys) for the upstream gradient `grad`: lists of one tensor per layer, or []."""
    if torch.is_grad_enabled() and not _traced(grad):
        raise RuntimeError("ganloss feature_loss is differentiable once: backward with "
                           "create_graph=True (double backward) is not supported")
    if grad is None:  # the loss does not reach what backward started from (no zeros materialised)
        return [], []
    stats, *rest = ctx.saved_tensors
    n = ctx.num_layers
    xs, ys, masks = rest[:n], rest[n:2 * n], rest[2 * n:2 * n + ctx.num_masks]
    weights, criterion, reduction, eps = ctx.args
    if (ctx.dxs is None and need_x) or (ctx.dys is None and need_y):
        return _ops.feature_loss_backward(grad, stats, xs, ys, masks, weights, criterion,
                                          reduction, eps, need_x, need_y)
    parts = [ctx.dxs if need_x else [], ctx.dys if need_y else []]
    if ctx.private and not _traced(grad):  # scale in place and hand the buffers on
        ctx.dxs = ctx.dys = None  # (autograd may keep them as .grad)
        for part in parts:  # one list per call: stats has one row per segment of each list
            if part:
                _ops.feature_loss_scale_grads_(grad, stats, reduction, part)
        return parts
    return [_scaled(grad, stats, reduction, part) for part in parts]


# torch.library's autograd of the op: used by torch.compile and by direct calls of
# torch.ops.ganloss.feature_loss (whose gradient outputs the caller can see: never in place).
def _setup_context(ctx, inputs, output):
    xs, ys, masks, weights, criterion, reduction, eps, input_grad, target_grad = inputs
    loss, stats, dxs, dys = output
    ctx.mark_non_differentiable(stats, *dxs, *dys)
    usable = _grads_from_forward(xs[0].dtype)  # a direct call may ask for 16-bit ones: not used
    _save(ctx, xs, ys, masks, (weights, criterion, reduction, eps), stats,
          dxs if input_grad and usable else None, dys if target_grad and usable else None,
          private=False)


def _backward(ctx, grad, _stats_grad, _dxs_grad, _dys_grad):
    dxs, dys = _gradients(ctx, grad, any(ctx.needs_input_grad[0]), any(ctx.needs_input_grad[1]))
    masks, weights = ctx.saved_tensors[1 + 2 * ctx.num_layers:], ctx.args[0]
    none = [None] * ctx.num_layers
    return (dxs or none, dys or none, no_grad_for(masks), no_grad_for(weights), None, None, None,
            None, None)



class _EagerFeatureLoss(torch.autograd.Function):
    """Eager autograd of the op over the flat leaves (*inputs, *targets): the logic of the
    registered autograd above without torch.library's per-call pytree work (about 0.1 ms per
    forward and again per backward). The op runs below the Autograd dispatch key."""

    @staticmethod
    def forward(ctx, call, *leaves):
        xs, ys, masks, weights, criterion, reduction, eps, input_grad, target_grad = call
        with torch._C._AutoDispatchBelowAutograd():
            loss, stats, dxs, dys = _ops.feature_loss(*call)
        _save(ctx, xs, ys, masks, (weights, criterion, reduction, eps), stats,
              dxs if input_grad else None, dys if target_grad else None, private=True)
        return loss

    @staticmethod
    def backward(ctx, grad):
        n = ctx.num_layers
        need = ctx.needs_input_grad[1:]
        dxs, dys = _gradients(ctx, grad, any(need[:n]), any(need[n:]))
        return (None, *(dxs or [None] * n), *(dys or [None] * n))


def compiled_feature_loss(inputs: Sequence[Tensor], targets: Sequence[Tensor],
                          masks: Sequence[Optional[Tensor]], weights: Sequence[float],
                          criterion: str, reduction: str, eps: float) -> Tensor:
    """The op with autograd. Arguments as in feature_loss, already normalised to lists; the forward
    computes the gradients only where the backward uses them (_grads_from_forward)."""
    inputs, targets = list(inputs), list(targets)
    need_grad = torch.is_grad_enabled() and any(t.requires_grad for t in inputs + targets)
    precompute = need_grad and _grads_from_forward(inputs[0].dtype)
    call = (inputs, targets, list(masks), list(weights), criterion, reduction, eps,
            precompute and any(x.requires_grad for x in inputs),
            precompute and any(y.requires_grad for y in targets))
    if torch.compiler.is_compiling():
        return _ops.feature_loss(*call)[0]
    if not need_grad:
        with torch._C._AutoDispatchBelowAutograd():
            return _ops.feature_loss(*call)[0]
    return _EagerFeatureLoss.apply(call, *inputs, *targets)


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
    if inputs and _ext.use_extension("feature_loss", inputs[0].device):
        for i, m in enumerate(masks):
            if m is not None and m.requires_grad and torch.is_grad_enabled():
                raise ValueError(f"masks[{i}] requires grad, but masks are constants here; "
                                 "detach it (or use ganloss_cuda.reference.feature_loss)")
        return compiled_feature_loss(inputs, targets, masks, weights, criterion, reduction, eps)
    return reference.feature_loss(inputs, targets, weights, criterion, reduction, masks, eps)


if _ext.available():  # the registrations need the schemas of the loaded library
    torch.library.register_fake("ganloss::feature_loss")(_feature_loss_fake)
    torch.library.register_fake("ganloss::feature_loss_backward")(_feature_loss_backward_fake)
    torch.library.register_fake("ganloss::feature_loss_scale_grads_")(
        _feature_loss_scale_grads_fake)
    torch.library.register_autograd("ganloss::feature_loss", _backward,
                                    setup_context=_setup_context)
