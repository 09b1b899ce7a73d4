"""nn.Module drop-ins for perceptual and style losses on precomputed features, each one fused op
call per term: VGGLoss (pix2pixHD models/networks.py, SPADE); StyleLoss (fast-neural-style, cached
style Grams), PerceptualStyleLoss (BasicSR's / mmagic's PerceptualLoss after the VGG), PiqStyleLoss
(piq's StyleLoss) and StyleLossLayer (the PyTorch neural-style tutorial's pass-through layer).
Errors from the ops name the modules' own arguments (``x_features[2]``, ``gt_features['relu1_1']``).

Layer rule: imports torch, ``functional``, ``reference`` and ``_args`` only.
"""
from typing import List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .. import functional as F
from .._args import (FLOATING, acc_dtype, as_list, as_number, as_numbers, batch_size, check_non_negative,
                     check_str, with_arg_names)
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


# Gram / style losses: one fused style_loss call per term, no 16-bit Gram.


class StyleLoss(nn.Module):
    """fast-neural-style's style loss (pytorch/examples fast_neural_style, Johnson et al.) with the
    style image's Grams computed once and cached:

        gram_style = [gram_matrix(y) for y in features_style]         # once
        style_loss = 0                                                # every step
        for ft_y, gm_s in zip(features_y, gram_style):
            style_loss += mse_loss(gram_matrix(ft_y), gm_s[:n_batch, :, :])
        style_loss *= style_weight                                    # 1e10

    with gram_matrix(y) = y.view(b, ch, h*w) bmm its transpose / (ch*h*w). Give the style image's
    features (one tensor per layer, relu1_2 .. relu4_3 in the example) or their Grams
    (``style_grams``, (B or 1, C, C)). Features of batch 1 (the style image alone) give Grams that
    broadcast to any batch; the example's ``style.repeat(batch_size, 1, 1, 1)`` gives B equal Grams,
    of which a batch of n uses the first n, like ``gm_s[:n_batch]``.

    The Grams are buffers (``style_gram_<l>``: float32, float64 for float64 features, detached),
    so ``.to(device)`` moves them and ``state_dict`` saves them; ``set_style`` replaces them.
    ``forward(features)`` takes the generated image's features (a list or the example's
    ``VggOutputs`` namedtuple) and returns the float32 loss through one fused style_loss call:
    no 16-bit Gram is ever formed, so fp16 features do not overflow where the example's
    ``features.bmm`` under autocast does. (The content term is ``MSELoss(content_weight)`` or
    ``functional.feature_loss`` on relu2_2.)
    """

    def __init__(self, style_features: Optional[Sequence[Tensor]] = None,
                 style_weight: float = 1e10, *, style_grams: Optional[Sequence[Tensor]] = None):
        super().__init__()
        self.style_weight = as_number(style_weight, "style_weight")
        check_non_negative(self.style_weight, "style_weight")
        self._gram_names: list = []
        self.set_style(style_features, style_grams=style_grams)

    def set_style(self, style_features: Optional[Sequence[Tensor]] = None, *,
                  style_grams: Optional[Sequence[Tensor]] = None):
        """Replaces the cached Grams: from the style image's features (gram_matrix, 'chw'), or
        the given Grams (copied, in float32 or float64). Exactly one of the two."""
        if (style_features is None) == (style_grams is None):
            raise ValueError("give exactly one of style_features (the style image's features) and "
                             "style_grams (their Gram matrices)")
        if style_features is not None:
            name = "style_features"
            grams = [with_arg_names(lambda kind, index, i=i: f"style_features[{i}]",
                                    lambda f=f: F.gram_matrix(f.detach(), "chw"))
                     for i, f in enumerate(as_list(style_features, name, one_tensor=False))]
        else:
            name = "style_grams"
            grams = [_checked_gram(g, f"style_grams[{i}]")
                     for i, g in enumerate(as_list(style_grams, name, one_tensor=False))]
        if not grams:
            raise ValueError(f"{name} must hold at least one tensor (one per layer)")
        for name in self._gram_names:
            delattr(self, name)
        self._gram_names = [f"style_gram_{i}" for i in range(len(grams))]
        for name, gram in zip(self._gram_names, grams):
            self.register_buffer(name, gram)

    @property
    def style_grams(self) -> List[Tensor]:
        """The cached style Grams, one (B or 1, C, C) tensor per layer."""
        return [getattr(self, name) for name in self._gram_names]

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        xs = as_list(features, "features", one_tensor=False)
        grams = self.style_grams
        if len(xs) != len(grams):
            raise ValueError(f"features has {len(xs)} tensors but the style has {len(grams)} "
                             "layers")
        targets = [g[:batch_size(x)] for x, g in zip(xs, grams)]  # gm_s[:n_batch, :, :]

        def arg(kind: str, index: int) -> str:
            return f"{'features' if kind == 'inputs' else 'style_grams'}[{index}]"

        return with_arg_names(arg, lambda: F.style_loss(
            xs, targets, weights=[self.style_weight] * len(xs), criterion="mse",
            normalization="chw", target_is_gram=True))

    def extra_repr(self) -> str:
        shapes = ", ".join(str(tuple(g.shape)) for g in self.style_grams)
        return f"style_weight={self.style_weight:g}, style_grams=[{shapes}]"


def _checked_gram(g: Tensor, name: str) -> Tensor:
    """A given (B, C, C) Gram as a detached float32 (float64 for float64) copy."""
    if g.dtype not in FLOATING:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {g.dtype}")
    if g.dim() != 3 or g.shape[1] != g.shape[2]:
        raise ValueError(f"{name} must be a (B, C, C) Gram matrix, got shape {tuple(g.shape)}")
    return g.detach().to(acc_dtype(g.dtype), copy=True)


_PERCEPTUAL_CRITERIA = {"l1": "l1", "l2": "mse", "mse": "mse", "fro": "fro"}


class PerceptualStyleLoss(nn.Module):
    """BasicSR's / mmagic's PerceptualLoss after its VGG: forward(x_features, gt_features) returns
    (percep_loss, style_loss) from the features, with None for a term whose weight is 0:

        for k in x_features:   # BasicSR basicsr/losses/basic_loss.py
            percep_loss += criterion(x_features[k], gt_features[k]) * layer_weights[k]
            style_loss += criterion(_gram_mat(x_features[k]), _gram_mat(gt_features[k])) \\
                * layer_weights[k]
        percep_loss *= perceptual_weight; style_loss *= style_weight

    with _gram_mat(x) = x.view(n, c, h*w) bmm its transpose / (c*h*w) and criterion 'l1'
    (nn.L1Loss), 'l2' or 'mse' (nn.MSELoss; BasicSR's 'l2' builds torch.nn.L2loss, which does not
    exist, so 'l2' gives the MSELoss it means) or 'fro' (torch.norm(., p='fro') of the whole
    batch's difference). gt features are detached, as BasicSR runs the VGG on gt.detach().
    mmagic's ``layer_weights_style`` weights the style term on its own layers (default
    ``layer_weights``); its default style_weight is 1.0 where BasicSR's is 0.

    The features are what BasicSR's VGGFeatureExtractor returns: a dict keyed by layer name
    holding exactly the layers of ``layer_weights`` and ``layer_weights_style``, or a list in
    ``layer_names`` order. A VGG module plugs in as ``self(vgg(x), vgg(gt.detach()))``. Each term
    is one fused call (feature_loss, style_loss); no 16-bit Gram is formed.
    """

    def __init__(self, layer_weights: Mapping[str, float], perceptual_weight: float = 1.0,
                 style_weight: float = 0.0, criterion: str = "l1",
                 layer_weights_style: Optional[Mapping[str, float]] = None):
        super().__init__()
        self.layer_weights = _layer_weights(layer_weights, "layer_weights")
        self.layer_weights_style = (self.layer_weights if layer_weights_style is None else
                                    _layer_weights(layer_weights_style, "layer_weights_style"))
        self.layer_names = list(dict.fromkeys([*self.layer_weights, *self.layer_weights_style]))
        self.perceptual_weight = as_number(perceptual_weight, "perceptual_weight")
        check_non_negative(self.perceptual_weight, "perceptual_weight")
        self.style_weight = as_number(style_weight, "style_weight")
        check_non_negative(self.style_weight, "style_weight")
        check_str(criterion, "criterion")
        if criterion not in _PERCEPTUAL_CRITERIA:
            raise ValueError(f"criterion must be 'l1', 'l2', 'mse' or 'fro', got '{criterion}'")
        self.criterion = criterion

    def forward(self, x_features, gt_features) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        xs = _layer_features(x_features, "x_features", self.layer_names)
        gts = {k: t.detach() for k, t in
               _layer_features(gt_features, "gt_features", self.layer_names).items()}
        keyed = {"inputs": _layer_labels(x_features, "x_features", self.layer_names),
                 "targets": _layer_labels(gt_features, "gt_features", self.layer_names)}
        criterion = _PERCEPTUAL_CRITERIA[self.criterion]

        def term(op, layer_weights: dict, weight: float, **kwargs) -> Optional[Tensor]:
            if weight == 0:  # BasicSR: None unless the weight is > 0
                return None
            names = list(layer_weights)
            return with_arg_names(lambda kind, index: keyed[kind][names[index]], lambda: op(
                [xs[k] for k in names], [gts[k] for k in names],
                weights=[layer_weights[k] * weight for k in names], criterion=criterion,
                **kwargs))

        return (term(F.feature_loss, self.layer_weights, self.perceptual_weight),
                term(F.style_loss, self.layer_weights_style, self.style_weight,
                     normalization="chw"))

    def extra_repr(self) -> str:
        style = ("" if self.layer_weights_style is self.layer_weights else
                 f", layer_weights_style={self.layer_weights_style}")
        return (f"layer_weights={self.layer_weights}{style}, "
                f"perceptual_weight={self.perceptual_weight}, style_weight={self.style_weight}, "
                f"criterion='{self.criterion}'")


def _layer_weights(value, name: str) -> dict:
    """A non-empty dict of layer name (str) -> finite non-negative weight, in its order."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of layer name -> weight, got "
                        f"{type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must name at least one layer")
    weights = {}
    for key, w in value.items():
        check_str(key, f"{name} key {key!r}")
        weights[key] = as_number(w, f"{name}[{key!r}]")
        check_non_negative(weights[key], f"{name}[{key!r}]")
    return weights


def _layer_features(value, name: str, layer_names: list) -> dict:
    """Features by layer name from a dict with exactly these layers or a list in their order."""
    if isinstance(value, Mapping):
        missing = [k for k in layer_names if k not in value]
        extra = [k for k in value if k not in layer_names]
        if missing or extra:
            raise ValueError(f"{name} has layers {list(value)} but the loss weights layers "
                             f"{layer_names}")
        for k in layer_names:
            if not isinstance(value[k], Tensor):
                raise TypeError(f"{name}[{k!r}] must be a Tensor, got {type(value[k]).__name__}")
        return {k: value[k] for k in layer_names}
    tensors = as_list(value, name, one_tensor=False)
    if len(tensors) != len(layer_names):
        raise ValueError(f"{name} has {len(tensors)} tensors but the loss weights "
                         f"{len(layer_names)} layers {layer_names}")
    return dict(zip(layer_names, tensors))


def _layer_labels(value, name: str, layer_names: list) -> dict:
    """How errors name each layer's tensor: name['relu1_1'] for a dict, name[0] for a list."""
    if isinstance(value, Mapping):
        return {k: f"{name}[{k!r}]" for k in layer_names}
    return {k: f"{name}[{i}]" for i, k in enumerate(layer_names)}


_PIQ_DISTANCES = {"mse": "mse", "mae": "l1"}
_PIQ_REDUCTIONS = ("none", "mean", "sum")


class PiqStyleLoss(nn.Module):
    """piq.StyleLoss (piq/perceptual.py) on features: per sample
    sum_l weights[l] * mean_{C x C} distance(G(x_l), G(y_l)) with the un-normalised Gram
    G(x)[b] = x[b].view(C, H*W) @ its transpose, distance 'mse' or 'mae' (elementwise), then
    piq's reduction over the batch: 'mean' (default), 'sum' or 'none' ((B,)). piq's VGG, its
    input checks and its feature normalisation are not part of this module: pass the features
    of x and y, one tensor per layer (gradients flow to both, as in piq).

    One fused style_loss call (normalization 'none', reduction 'per_sample'); the Grams stay in
    float32 (float64 for float64 features), where piq's fp16 Grams overflow 65504 (a 64-channel
    128x128 layer of values about 3 does). The loss is float32 (float64 for float64).
    """

    def __init__(self, weights: Sequence[float] = (1.0,), distance: str = "mse",
                 reduction: str = "mean"):
        super().__init__()
        self.weights = as_numbers(weights, "weights")
        if not self.weights:
            raise ValueError("weights must hold at least one number (one per layer)")
        for i, w in enumerate(self.weights):
            check_non_negative(w, f"weights[{i}]")
        check_str(distance, "distance")
        if distance not in _PIQ_DISTANCES:
            raise ValueError(f"distance must be 'mse' or 'mae', got '{distance}'")
        check_str(reduction, "reduction")
        if reduction not in _PIQ_REDUCTIONS:
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got '{reduction}'")
        self.distance, self.reduction = distance, reduction

    @staticmethod
    def gram_matrix(x: Tensor) -> Tensor:
        """piq's StyleLoss.gram_matrix: the un-normalised Grams, shaped (B, 1, C, C), in float32
        (float64 for float64 features)."""
        gram = with_arg_names(lambda kind, index: "x", lambda: F.gram_matrix(x, "none"))
        return gram.unsqueeze(1)

    def forward(self, x_features: Sequence[Tensor], y_features: Sequence[Tensor]) -> Tensor:
        xs = as_list(x_features, "x_features", one_tensor=False)
        ys = as_list(y_features, "y_features", one_tensor=False)
        if len(xs) != len(self.weights):
            raise ValueError(f"x_features has {len(xs)} tensors but weights has "
                             f"{len(self.weights)}")
        if len(ys) != len(xs):
            raise ValueError(f"y_features has {len(ys)} tensors but x_features has {len(xs)}")
        per_sample = with_arg_names(_features_arg, lambda: F.style_loss(
            xs, ys, weights=self.weights, criterion=_PIQ_DISTANCES[self.distance],
            normalization="none", reduction="per_sample"))
        if self.reduction == "none":
            return per_sample
        return per_sample.mean(dim=0) if self.reduction == "mean" else per_sample.sum(dim=0)

    def extra_repr(self) -> str:
        return (f"weights={self.weights}, distance='{self.distance}', "
                f"reduction='{self.reduction}'")


class StyleLossLayer(nn.Module):
    """The PyTorch neural-style tutorial's StyleLoss: a pass-through layer inserted after a VGG
    layer that records ``self.loss`` and returns its input:

        def gram_matrix(input):
            a, b, c, d = input.size(); features = input.view(a * b, c * d)
            return torch.mm(features, features.t()).div(a * b * c * d)
        __init__(target_feature): self.target = gram_matrix(target_feature).detach()
        forward(input): self.loss = F.mse_loss(gram_matrix(input), self.target); return input

    The batch is folded into the Gram's rows (normalization 'nchw'), so the input's N*C must be
    the target feature's. The target Gram is a float32 buffer (float64 for
    float64 features); the loss is float32 and never comes from a 16-bit Gram.
    """

    def __init__(self, target_feature: Tensor):
        super().__init__()
        self.register_buffer("target", with_arg_names(
            lambda kind, index: "target_feature",
            lambda: F.gram_matrix(target_feature, "nchw")).detach())
        self.loss: Optional[Tensor] = None

    def forward(self, input: Tensor) -> Tensor:
        self.loss = with_arg_names(
            lambda kind, index: "input" if kind == "inputs" else "target",
            lambda: F.style_loss([input], [self.target], criterion="mse",
                                 normalization="nchw", target_is_gram=True))
        return input
