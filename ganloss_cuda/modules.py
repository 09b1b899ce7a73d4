"""nn.Module drop-ins whose constructor arguments and outputs match the anchors' losses: BasicSR
basicsr/losses/basic_loss.py (L1Loss, MSELoss, CharbonnierLoss), pix2pixHD models/networks.py
(VGGLoss), pix2pixHD models/pix2pixHD_model.py and SPADE models/pix2pix_model.py (feature
matching). Each runs one fused op for all of its terms.

Constructor arguments are checked when the module is made. Errors from the fused op name the
module's own arguments (``pred``, ``x_features[2]``, ``pred_real[1][0]``), not the op's."""
import math
import re
from typing import Callable, Optional, Sequence

from torch import Tensor, nn

from . import functional as F
from .reference import (CRITERIA, as_count, as_list, as_number, as_numbers, check_feature_args,
                        check_non_negative, elementwise, feature_args)

_BASICSR_REDUCTIONS = ("none", "mean", "sum")
_OP_ARG = re.compile(r"\b(inputs|targets|masks)\[(\d+)\]")


def _named(name: Callable[[str, int], str], compute: Callable[[], Tensor]):
    """compute(), with the feature_loss argument names in its errors ("targets[3]") replaced by
    the caller's, name("targets", 3)."""
    try:
        return compute()
    except (TypeError, ValueError) as error:
        message = _OP_ARG.sub(lambda m: name(m.group(1), int(m.group(2))), str(error))
        raise type(error)(message) from None


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
            _named(_pixel_arg, lambda: check_feature_args(*feature_args(
                [pred], [target], [self.loss_weight], self.criterion, "mean", [weight], self.eps)))
            loss = elementwise(pred, target, self.criterion, self.eps)
            return self.loss_weight * (loss if weight is None else loss * weight)
        return _named(_pixel_arg, lambda: F.feature_loss(
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


def _features_arg(kind: str, index: int) -> str:
    return f"{'x_features' if kind == 'inputs' else 'y_features'}[{index}]"


class VGGLoss(nn.Module):
    """The layer weighting of pix2pixHD's / SPADE's VGGLoss on precomputed features:
    sum_i weights[i] * mean|x_features[i] - y_features[i].detach()|, with the anchors' weights
    [1/32, 1/16, 1/8, 1/4, 1] for relu1_1 .. relu5_1. (The VGG19 trunk is not part of this
    module: pass its outputs, a list of one feature tensor per layer.)"""

    def __init__(self, weights: Sequence[float] = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0),
                 criterion: str = "l1"):
        super().__init__()
        self.weights = as_numbers(weights, "weights")
        if not self.weights:
            raise ValueError("weights must hold at least one number (one per layer)")
        for i, w in enumerate(self.weights):
            check_non_negative(w, f"weights[{i}]")
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be 'l1', 'mse', 'charbonnier' or 'fro', got "
                             f"{criterion!r}")
        self.criterion = criterion

    def forward(self, x_features: Sequence[Tensor], y_features: Sequence[Tensor]) -> Tensor:
        xs = as_list(x_features, "x_features", one_tensor=False)
        ys = as_list(y_features, "y_features", one_tensor=False)
        if len(xs) != len(self.weights):
            raise ValueError(f"x_features has {len(xs)} tensors but weights has "
                             f"{len(self.weights)}")
        if len(ys) != len(xs):
            raise ValueError(f"y_features has {len(ys)} tensors but x_features has {len(xs)}")
        return _named(_features_arg, lambda: F.feature_loss(
            xs, [y.detach() for y in ys], weights=self.weights, criterion=self.criterion))

    def extra_repr(self) -> str:
        return f"weights={self.weights}, criterion='{self.criterion}'"


class FeatureMatchingLoss(nn.Module):
    """Discriminator feature matching over a multi-scale discriminator's outputs.

    ``pred_fake[i]`` / ``pred_real[i]`` are the per-layer outputs of scale i (the anchors'
    list-of-lists with ``getIntermFeat``); the last entry of each scale (the logits) is skipped and
    real features are detached. Each (scale, layer) pair adds ``coef * L1mean(fake, real)``:

    - ``style="pix2pixhd"``: ``coef = (1/num_D) * (4/(n_layers_D+1)) * lambda_feat``
      (pix2pixHD_model.py; defaults num_D=2, n_layers_D=3, lambda_feat=10);
    - ``style="spade"``: ``coef = lambda_feat / num_D`` (SPADE pix2pix_model.py).

    ``num_D=None`` takes the number of scales passed. A scale must hold at least one intermediate
    feature besides its logits (a discriminator built without ``getIntermFeat`` has none).
    """

    def __init__(self, lambda_feat: float = 10.0, num_D: Optional[int] = None,
                 n_layers_D: int = 3, style: str = "pix2pixhd"):
        super().__init__()
        if style not in ("pix2pixhd", "spade"):
            raise ValueError(f"style must be 'pix2pixhd' or 'spade', got {style!r}")
        self.lambda_feat = as_number(lambda_feat, "lambda_feat")
        check_non_negative(self.lambda_feat, "lambda_feat")
        self.num_D = None if num_D is None else as_count(num_D, "num_D")
        self.n_layers_D = as_count(n_layers_D, "n_layers_D")
        self.style = style

    def coefficient(self, num_D: int) -> float:
        if self.style == "spade":
            return self.lambda_feat / num_D
        return (1.0 / num_D) * (4.0 / (self.n_layers_D + 1)) * self.lambda_feat

    def forward(self, pred_fake: Sequence[Sequence[Tensor]],
                pred_real: Sequence[Sequence[Tensor]]) -> Tensor:
        fake_scales, real_scales = _scales(pred_fake, "pred_fake"), _scales(pred_real, "pred_real")
        if len(fake_scales) != len(real_scales):
            raise ValueError(f"pred_fake has {len(fake_scales)} scales but pred_real has "
                             f"{len(real_scales)}")
        if self.num_D is not None and self.num_D != len(fake_scales):
            raise ValueError(f"pred_fake has {len(fake_scales)} scales but num_D is {self.num_D}")
        fakes, reals, where = [], [], []
        for i, (fake, real) in enumerate(zip(fake_scales, real_scales)):
            if len(fake) != len(real):
                raise ValueError(f"pred_fake[{i}] has {len(fake)} outputs but pred_real[{i}] has "
                                 f"{len(real)}")
            fakes += fake[:-1]
            reals += [r.detach() for r in real[:-1]]
            where += [f"[{i}][{j}]" for j in range(len(fake) - 1)]

        def arg(kind: str, index: int) -> str:
            return ("pred_fake" if kind == "inputs" else "pred_real") + where[index]

        coef = self.coefficient(len(fake_scales))
        return _named(arg, lambda: F.feature_loss(fakes, reals, weights=[coef] * len(fakes),
                                                  criterion="l1"))

    def extra_repr(self) -> str:
        return (f"lambda_feat={self.lambda_feat}, num_D={self.num_D}, "
                f"n_layers_D={self.n_layers_D}, style='{self.style}'")


def _scales(value, name: str) -> list:
    """A multi-scale discriminator's outputs: a non-empty list of scales, each a list of Tensors
    ending with the logits after at least one intermediate feature."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of scales (lists of Tensors), got "
                        f"{type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must hold at least one scale (a list of Tensors)")
    scales = [as_list(scale, f"{name}[{i}]", one_tensor=False) for i, scale in enumerate(value)]
    for i, scale in enumerate(scales):
        if len(scale) < 2:
            raise ValueError(f"{name}[{i}] has {len(scale)} outputs, but a scale needs its "
                             "intermediate features before its logits (getIntermFeat=True)")
    return scales
