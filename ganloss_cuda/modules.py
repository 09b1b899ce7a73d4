"""nn.Module drop-ins whose constructor arguments and outputs match the anchors' losses
(shared/docs/anchors-api.md). Each runs one fused op for all of its terms."""
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from . import functional as F
from .reference import elementwise

_BASICSR_REDUCTIONS = ("none", "mean", "sum")


class _BasicSRPixelLoss(nn.Module):
    criterion = "l1"

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean"):
        super().__init__()
        if reduction not in _BASICSR_REDUCTIONS:
            raise ValueError(f"Unsupported reduction mode: {reduction}. "
                             f"Supported ones are: {', '.join(_BASICSR_REDUCTIONS)}")
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.eps = 1e-12

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """pred, target: (N, C, H, W); weight: optional element weights (N, C, H, W) or
        (N, 1, H, W). Returns loss_weight * reduce(criterion(pred - target) * weight)."""
        if self.reduction == "none":  # elementwise: nothing to fuse, plain torch
            loss = elementwise(pred, target, self.criterion, self.eps)
            return self.loss_weight * (loss if weight is None else loss * weight)
        return F.feature_loss([pred], [target], weights=[self.loss_weight],
                              criterion=self.criterion, reduction=self.reduction,
                              masks=[weight], eps=self.eps)

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
        self.eps = eps

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"


class VGGLoss(nn.Module):
    """The layer weighting of pix2pixHD's / SPADE's VGGLoss on precomputed features:
    sum_i weights[i] * mean|x_features[i] - y_features[i].detach()|, with the anchors' weights
    [1/32, 1/16, 1/8, 1/4, 1] for relu1_1 .. relu5_1. (The VGG19 trunk is not part of this
    module: pass its outputs.)"""

    def __init__(self, weights: Sequence[float] = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0),
                 criterion: str = "l1"):
        super().__init__()
        self.weights = [float(w) for w in weights]
        self.criterion = criterion

    def forward(self, x_features: Sequence[Tensor], y_features: Sequence[Tensor]) -> Tensor:
        if len(x_features) != len(self.weights):
            raise ValueError(f"x_features has {len(x_features)} tensors but weights has "
                             f"{len(self.weights)}")
        return F.feature_loss(list(x_features), [y.detach() for y in y_features],
                              weights=self.weights, criterion=self.criterion)

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

    ``num_D=None`` takes the number of scales passed.
    """

    def __init__(self, lambda_feat: float = 10.0, num_D: Optional[int] = None,
                 n_layers_D: int = 3, style: str = "pix2pixhd"):
        super().__init__()
        if style not in ("pix2pixhd", "spade"):
            raise ValueError(f"style must be 'pix2pixhd' or 'spade', got '{style}'")
        self.lambda_feat, self.num_D, self.n_layers_D, self.style = lambda_feat, num_D, n_layers_D, style

    def coefficient(self, num_D: int) -> float:
        if self.style == "spade":
            return self.lambda_feat / num_D
        return (1.0 / num_D) * (4.0 / (self.n_layers_D + 1)) * self.lambda_feat

    def forward(self, pred_fake: Sequence[Sequence[Tensor]],
                pred_real: Sequence[Sequence[Tensor]]) -> Tensor:
        if len(pred_fake) != len(pred_real):
            raise ValueError(f"pred_fake has {len(pred_fake)} scales but pred_real has "
                             f"{len(pred_real)}")
        if self.num_D is not None and self.num_D != len(pred_fake):
            raise ValueError(f"pred_fake has {len(pred_fake)} scales but num_D is {self.num_D}")
        fakes, reals = [], []
        for i, (fake, real) in enumerate(zip(pred_fake, pred_real)):
            if len(fake) != len(real):
                raise ValueError(f"pred_fake[{i}] has {len(fake)} outputs but pred_real[{i}] has "
                                 f"{len(real)}")
            fakes += list(fake[:-1])
            reals += [r.detach() for r in real[:-1]]
        if not fakes:  # no intermediate features: nothing to match
            return torch.zeros((), device=pred_fake[0][0].device)
        coef = self.coefficient(len(pred_fake))
        return F.feature_loss(fakes, reals, weights=[coef] * len(fakes), criterion="l1")

    def extra_repr(self) -> str:
        return (f"lambda_feat={self.lambda_feat}, num_D={self.num_D}, "
                f"n_layers_D={self.n_layers_D}, style='{self.style}'")
