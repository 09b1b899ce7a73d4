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
    _save(ctx, xs, ys, masks, (weights, criterion, reduction, eps), stats,
          dxs if input_grad else None, dys if target_grad else None, private=False)


def _backward(ctx, grad, _stats_grad, _dxs_grad, _dys_grad):
    dxs, dys = _gradients(ctx, grad, any(ctx.needs_input_grad[0]), any(ctx.needs_input_grad[1]))
    masks, weights = ctx.saved_tensors[1 + 2 * ctx.num_layers:], ctx.args[0]
    none = [None] * ctx.num_layers
    return (dxs or none, dys or none, _no_grad(masks), _no_grad(weights), None, None, None, None,
            None)


def _no_grad(arg):
    """The 'no gradient' entry for a list argument: torch.library treats a list as a list of
    gradients only when every element is a tensor (an empty list too), else as one leaf."""
    return [None] * len(arg) if all(isinstance(a, Tensor) for a in arg) else None


torch.library.register_autograd("ganloss::feature_loss", _backward, setup_context=_setup_context)


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


def feature_loss(inputs: Sequence[Tensor], targets: Sequence[Tensor],
                 masks: Sequence[Optional[Tensor]], weights: Sequence[float], criterion: str,
                 reduction: str, eps: float) -> Tensor:
    """The op with autograd. Arguments as in functional.feature_loss, already normalised to
    lists. fp32/fp64 gradients come from the forward pass (the backward then only scales them);
    16-bit ones from the backward, computed in fp32 with the upstream (loss-scaled) gradient
    applied before the single rounding: an upstream factor applied after rounding to 16 bits
    would underflow or overflow under GradScaler."""
    inputs, targets = list(inputs), list(targets)
    need_grad = torch.is_grad_enabled() and any(t.requires_grad for t in inputs + targets)
    precompute = need_grad and inputs[0].dtype in (torch.float32, torch.float64)
    call = (inputs, targets, list(masks), list(weights), criterion, reduction, eps,
            precompute and any(x.requires_grad for x in inputs),
            precompute and any(y.requires_grad for y in targets))
    if torch.compiler.is_compiling():
        return _ops.feature_loss(*call)[0]
    if not need_grad:
        with torch._C._AutoDispatchBelowAutograd():
            return _ops.feature_loss(*call)[0]
    return _EagerFeatureLoss.apply(call, *inputs, *targets)
