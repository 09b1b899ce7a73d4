"""nn.Module drop-ins for adversarial-training losses: FeatureMatchingLoss (discriminator
feature matching of pix2pixHD models/pix2pixHD_model.py and SPADE models/pix2pix_model.py), one
fused feature_loss call over every (scale, layer) pair. Errors from the op name the module's own
arguments (``pred_real[1][0]``).

Layer rule: imports torch, ``functional``, ``reference`` and ``_args`` only.
"""
from typing import Optional, Sequence

from torch import Tensor, nn

from .. import functional as F
from .._args import as_count, as_list, as_number, check_non_negative, with_arg_names


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
        return with_arg_names(arg, lambda: F.feature_loss(fakes, reals, weights=[coef] * len(fakes),
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
