"""Python registrations for the compiled ops: fake (meta) kernels and autograd.

Imported only once the library is loaded. The schemas live in csrc/ganloss.cpp; the kernels in
csrc/cpu and csrc/cuda. Nothing here synchronises with the device, so the ops work under
torch.compile(fullgraph=True) and inside CUDA graphs.
"""
from typing import List, Optional, Sequence

import torch
from torch import Tensor
from torch._subclasses.functional_tensor import FunctionalTensor

from .reference import check_feature_args

_ops = torch.ops.ganloss


def _grad_like(t: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """The gradient of t as the kernels allocate it (csrc/feature_plan.cpp, read_as_is): t's own
    layout when x and y are read in place, else contiguous."""
    cl = torch.channels_last
    as_is = (x.is_contiguous() and y.is_contiguous()) or (
        x.dim() == 4 and x.is_contiguous(memory_format=cl) and y.is_contiguous(memory_format=cl))
    return torch.empty_like(t) if as_is else t.new_empty(t.shape)


def _batch(t: Tensor):
    return t.shape[0] if t.dim() > 0 else 1


def _grads_fake(inputs, targets, input_grad, target_grad):
    dxs = [_grad_like(x, x, y) for x, y in zip(inputs, targets)] if input_grad else []
    dys = [_grad_like(y, x, y) for x, y in zip(inputs, targets)] if target_grad else []
    return dxs, dys


def _segments(tensors, reduction: str) -> int:
    """Rows of stats: one per (layer, sample) for per_sample, one per layer otherwise."""
    return sum(_batch(t) for t in tensors) if reduction == "per_sample" else len(tensors)


# Registers a FakeTensor kernel ("meta kernel"): output shapes, dtypes and strides from the
# inputs alone. torch.compile traces through it without running the op, so the op is one node
# in the graph rather than a graph break. It also runs in eager mode when any argument is a meta
# tensor, so it checks the arguments like the real kernels do: a meta tensor mixed with CPU ones
# gets the device error, never an uninitialised loss.
@torch.library.register_fake("ganloss::feature_loss")
def _feature_loss_fake(inputs, targets, masks, weights, criterion, reduction, eps, input_grad,
                       target_grad):
    check_feature_args(inputs, targets, list(weights), criterion, reduction, masks, eps)
    x0 = inputs[0]
    out_dtype = torch.float64 if x0.dtype == torch.float64 else torch.float32
    loss = x0.new_empty((_batch(x0),) if reduction == "per_sample" else (), dtype=out_dtype)
    stats = x0.new_empty((_segments(inputs, reduction), 3), dtype=torch.float64)
    return (loss, stats, *_grads_fake(inputs, targets, input_grad, target_grad))


@torch.library.register_fake("ganloss::feature_loss_backward")
def _feature_loss_backward_fake(grad, stats, inputs, targets, masks, weights, criterion,
                                reduction, eps, input_grad, target_grad):
    check_feature_args(inputs, targets, list(weights), criterion, reduction, masks, eps)
    return _grads_fake(inputs, targets, input_grad, target_grad)


@torch.library.register_fake("ganloss::feature_loss_scale_grads_")
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
        acc = torch.float64 if t.dtype == torch.float64 else torch.float32
        out.append((t.to(acc) * factor.to(acc).reshape(shape)).to(t.dtype))
    return out


# Marks gradient buffers that only the autograd context can reach (set by feature_loss below):
# the eager backward may then scale them in place instead of writing new tensors.
_PRIVATE = "_ganloss_private_grad"


def _traced(t: Tensor) -> bool:
    """Inside torch.compile / AOTAutograd tracing (functionalized tensors), where the backward
    must not mutate its saved tensors."""
    return torch.compiler.is_compiling() or isinstance(t, FunctionalTensor)


def _setup_context(ctx, inputs, output):
    xs, ys, masks, weights, criterion, reduction, eps, input_grad, target_grad = inputs
    loss, stats, dxs, dys = output
    ctx.mark_non_differentiable(stats, *dxs, *dys)
    # Otherwise autograd passes a materialised zero tensor for every unused output to the
    # backward: one more gradient-sized buffer per layer.
    ctx.set_materialize_grads(False)
    ctx.num_layers, ctx.num_masks = len(xs), len(masks)
    ctx.args = (weights, criterion, reduction, eps)
    ctx.save_for_backward(stats, *xs, *ys, *masks)
    # Gradients computed by the forward for an upstream gradient of 1: the first backward scales
    # and hands them on; any later backward (retain_graph) recomputes from the saved inputs.
    ctx.dxs = dxs if input_grad else None
    ctx.dys = dys if target_grad else None


def _backward(ctx, grad, _stats_grad, _dxs_grad, _dys_grad):
    if torch.is_grad_enabled() and not _traced(grad):
        raise RuntimeError("ganloss feature_loss is differentiable once: backward with "
                           "create_graph=True (double backward) is not supported")
    stats, *rest = ctx.saved_tensors
    n = ctx.num_layers
    xs, ys, masks = rest[:n], rest[n:2 * n], rest[2 * n:2 * n + ctx.num_masks]
    need_x, need_y = any(ctx.needs_input_grad[0]), any(ctx.needs_input_grad[1])
    weights, criterion, reduction, eps = ctx.args
    have_x, have_y = ctx.dxs is not None, ctx.dys is not None
    if grad is None:  # the loss does not reach what backward started from (no zeros materialised)
        dxs = dys = []
    elif (have_x or not need_x) and (have_y or not need_y):
        grads = (ctx.dxs if need_x else []) + (ctx.dys if need_y else [])
        if _traced(grad) or not all(getattr(t, _PRIVATE, False) for t in grads):
            grads = _scaled(grad, stats, reduction, grads[:n]) + _scaled(grad, stats, reduction, grads[n:])
        else:  # nobody else holds these buffers: scale them in place and hand them on
            ctx.dxs = ctx.dys = None  # (autograd may keep them as .grad)
            for part in (grads[:n], grads[n:]):  # one list per call: stats has one row per sample
                if part:
                    _ops.feature_loss_scale_grads_(grad, stats, reduction, part)
        dxs, dys = grads[:n] if need_x else [], grads[n if need_x else 0:]
    else:
        dxs, dys = _ops.feature_loss_backward(grad, stats, xs, ys, masks, weights, criterion,
                                              reduction, eps, need_x, need_y)
    none = [None] * n
    return (dxs or none, dys or none, _no_grad(masks), _no_grad(weights), None, None, None, None,
            None)


def _no_grad(arg):
    """The 'no gradient' entry for a list argument: torch.library treats a list as a list of
    gradients only when every element is a tensor (an empty list too), else as one leaf."""
    return [None] * len(arg) if all(isinstance(a, Tensor) for a in arg) else None


torch.library.register_autograd("ganloss::feature_loss", _backward, setup_context=_setup_context)


def feature_loss(inputs: Sequence[Tensor], targets: Sequence[Tensor],
                 masks: Sequence[Optional[Tensor]], weights: Sequence[float], criterion: str,
                 reduction: str, eps: float) -> Tensor:
    """The raw op with autograd; gradients are computed in the forward pass when autograd will
    need them. Arguments as in functional.feature_loss, already normalised to lists."""
    # fp32/fp64 gradients come from the forward pass (the backward then only scales them); 16-bit
    # ones from the backward, computed in fp32 with the upstream (loss-scaled) gradient applied
    # before the single rounding: an upstream factor applied after rounding to 16 bits would
    # underflow or overflow under GradScaler.
    precompute = torch.is_grad_enabled() and inputs[0].dtype in (torch.float32, torch.float64)
    input_grad = precompute and any(x.requires_grad for x in inputs)
    target_grad = precompute and any(y.requires_grad for y in targets)
    loss, _, dxs, dys = _ops.feature_loss(list(inputs), list(targets), list(masks), list(weights),
                                          criterion, reduction, eps, input_grad, target_grad)
    if not torch.compiler.is_compiling():
        for t in dxs + dys:
            setattr(t, _PRIVATE, True)
    return loss
