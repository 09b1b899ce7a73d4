"""nn.Module drop-ins for BasicSR's pixel losses (basicsr/losses/basic_loss.py): L1Loss, MSELoss,
CharbonnierLoss, each one fused feature_loss call. Constructor arguments are checked when the
module is made; errors from the op name the module's own arguments (``pred``, ``weight``).

Layer rule: imports torch, ``functional``, ``reference`` and ``_args`` only.
"""
import math
from typing import Optional

from torch import Tensor, nn

from .. import functional as F
from .._args import as_number, check_non_negative, with_arg_names
from ..reference import check_feature_args, elementwise, feature_args

_BASICSR_REDUCTIONS = ("none", "mean", "sum")
_PIXEL_ARGS = {"inputs": "pred", "targets": "target", "masks": "weight"}


def _pixel_arg(kind: str, index: int) -> str:
    return _PIXEL_ARGS[kind]


class _BasicSRPixelLoss(nn.Module):
    criterion = "l1"

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean"):
        super().__init__()
        if reduction not in _BASICSR_REDUCTIONS:
            raise ValueError(f"Unsupported reduction mode: {reduction}. "
                             f"Supported ones are: {', '.join(_BASICSR_REDUCTIONS)}")
        self.loss_weight = as_number(loss_weight, "loss_weight")
        check_non_negative(self.loss_weight, "loss_weight")
        self.reduction = reduction
        self.eps = 1e-12

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """pred, target: (N, C, H, W); weight: optional element weights (N, C, H, W) or
        (N, 1, H, W). Returns loss_weight * reduce(criterion(pred - target) * weight)."""
        if self.reduction == "none":  # elementwise, nothing to fuse: the op's checks, then torch
            with_arg_names(_pixel_arg, lambda: check_feature_args(*feature_args(
                [pred], [target], [self.loss_weight], self.criterion, "mean", [weight], self.eps)))
            loss = elementwise(pred, target, self.criterion, self.eps)
            return self.loss_weight * (loss if weight is None else loss * weight)
        return with_arg_names(_pixel_arg, lambda: F.feature_loss(
            [pred], [target], [self.loss_weight], self.criterion, self.reduction, [weight],
            self.eps))

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}, reduction='{self.reduction}'"


class L1Loss(_BasicSRPixelLoss):
    """basicsr.losses.L1Loss(loss_weight=1.0, reduction='mean'): loss_weight * mean|pred - target|,
    with BasicSR's weighted mean sum(|d| * w) / sum(w expanded over channels) for a weight."""

    criterion = "l1"


class MSELoss(_BasicSRPixelLoss):
    """basicsr.losses.MSELoss(loss_weight=1.0, reduction='mean'): loss_weight * mean (pred - target)^2."""

    criterion = "mse"


class CharbonnierLoss(_BasicSRPixelLoss):
    """basicsr.losses.CharbonnierLoss(loss_weight=1.0, reduction='mean', eps=1e-12):
    loss_weight * mean sqrt((pred - target)^2 + eps)."""

    criterion = "charbonnier"

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean", eps: float = 1e-12):
        super().__init__(loss_weight, reduction)
        self.eps = as_number(eps, "eps")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be a finite positive number, got {self.eps:g}")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
