"""nn.Module drop-ins for perceptual losses on precomputed features: VGGLoss (pix2pixHD
models/networks.py, SPADE), one fused feature_loss call over all layers. Errors from the op name
the module's own arguments (``x_features[2]``).

Layer rule: imports torch, ``functional``, ``reference`` and ``_args`` only.
"""
from typing import Sequence

from torch import Tensor, nn

from .. import functional as F
from .._args import as_list, as_numbers, check_non_negative, with_arg_names
from ..reference import CRITERIA


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
        return with_arg_names(_features_arg, lambda: F.feature_loss(
            xs, [y.detach() for y in ys], weights=self.weights, criterion=self.criterion))

    def extra_repr(self) -> str:
        return f"weights={self.weights}, criterion='{self.criterion}'"
