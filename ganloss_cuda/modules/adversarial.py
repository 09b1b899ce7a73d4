"""nn.Module drop-ins for adversarial-training losses, each one call of a fused op:

- FeatureMatchingLoss: discriminator feature matching of pix2pixHD models/pix2pixHD_model.py and
  SPADE models/pix2pix_model.py, one feature_loss call over every (scale, layer) pair;
- GANLoss (BasicSR basicsr/losses/gan_loss.py GANLoss and MultiScaleGANLoss, mmagic GANLoss),
  Pix2PixHDGANLoss (pix2pixHD models/networks.py GANLoss), SPADEGANLoss (SPADE
  models/networks/loss.py GANLoss), CycleGANLoss (pytorch-CycleGAN-and-pix2pix models/networks.py
  GANLoss): one adversarial_loss call over every scale;
- hinge_d_loss, vanilla_d_loss (taming-transformers / latent-diffusion
  taming/modules/losses/vqperceptual.py): one discriminator_loss call over real and fake.

Errors from the ops name the module's own arguments (``pred_real[1][0]``, ``input[2][-1]``,
``logits_fake``).

Layer rule: imports torch, ``functional``, ``reference`` and ``_args`` only.
"""
import math
from typing import Optional, Sequence, Union

from torch import Tensor, nn

from .. import functional as F
from .._args import (as_count, as_list, as_number, check_non_negative, check_str,
                     with_arg_names)


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


# The anchors' type names -> the functional API's gan_type.
_BASICSR_TYPES = {"vanilla": "vanilla", "lsgan": "lsgan", "wgan": "wgan",
                  "wgan_softplus": "softplus", "wgan-logistic-ns": "softplus", "hinge": "hinge"}
_PIX2PIXHD_TYPES = {True: "lsgan", False: "bce"}
_SPADE_TYPES = {"original": "vanilla", "ls": "lsgan", "hinge": "hinge", "w": "wgan"}
_CYCLEGAN_TYPES = {"lsgan": "lsgan", "vanilla": "vanilla", "wgangp": "wgan"}


class GANLoss(nn.Module):
    """BasicSR / mmagic ``GANLoss(gan_type, real_label_val=1.0, fake_label_val=0.0,
    loss_weight=1.0)`` with BasicSR ``MultiScaleGANLoss``'s input handling.

    ``forward(input, target_is_real, is_disc=False)``; ``input`` is a tensor, a list of tensors
    (one per discriminator scale) or a list of lists (a scale's last entry is its logits), and a
    list gives the mean over scales. gan_type (per element x, mean over each tensor):

    - ``vanilla``: BCE with logits against the label (``real_label_val`` / ``fake_label_val``);
    - ``lsgan``: (x - label)^2;
    - ``wgan``: -x for a real target, x for a fake one;
    - ``wgan_softplus`` (BasicSR) / ``wgan-logistic-ns`` (mmagic): softplus(-x) real, softplus(x)
      fake;
    - ``hinge``: discriminator relu(1 - x) real, relu(1 + x) fake; generator -x whatever the
      target.

    ``loss_weight`` multiplies the generator side only (``is_disc=False``), like the anchors. The
    labels are accepted by every type and used by vanilla and lsgan only. mmagic's ``smgan``
    (which needs a mask) is not supported.
    """

    def __init__(self, gan_type: str, real_label_val: float = 1.0, fake_label_val: float = 0.0,
                 loss_weight: float = 1.0):
        super().__init__()
        self._gan_type = _choice(gan_type, "gan_type", _BASICSR_TYPES)
        self.gan_type = gan_type
        self.real_label_val = _label(real_label_val, "real_label_val")
        self.fake_label_val = _label(fake_label_val, "fake_label_val")
        self.loss_weight = as_number(loss_weight, "loss_weight")
        check_non_negative(self.loss_weight, "loss_weight")

    def forward(self, input: Union[Tensor, Sequence], target_is_real: bool,
                is_disc: bool = False) -> Tensor:
        xs, names = _scale_logits(input, "input")
        _check_bool(is_disc, "is_disc")
        weight = 1.0 if is_disc else self.loss_weight
        return with_arg_names(lambda kind, i: names[i], lambda: F.adversarial_loss(
            xs, target_is_real, self._gan_type, is_disc, self.real_label_val,
            self.fake_label_val, weight, aggregation="mean"))

    def extra_repr(self) -> str:
        return (f"gan_type='{self.gan_type}', real_label_val={self.real_label_val}, "
                f"fake_label_val={self.fake_label_val}, loss_weight={self.loss_weight}")


class Pix2PixHDGANLoss(nn.Module):
    """pix2pixHD ``GANLoss(use_lsgan=True, target_real_label=1.0, target_fake_label=0.0,
    tensor=torch.FloatTensor)``; ``forward(input, target_is_real)``.

    MSE to the label with ``use_lsgan``, else BCE on probabilities (the discriminator ends in a
    sigmoid; logs clamped at -100 like torch's BCELoss). Like the anchor:

    - a list of lists (``input[0]`` is a list): the **sum** over scales of the loss of each
      scale's last entry ``input[i][-1]``;
    - anything else: the loss of ``input[-1]`` alone. On a list of tensors that is the last
      scale; on a plain tensor it is the **last sample of the batch** (``input[-1]`` indexes
      dim 0), which is what pix2pixHD computes, reproduced here.

    ``tensor`` (the anchor's label tensor type) is accepted and ignored: no label tensor is made.
    """

    def __init__(self, use_lsgan: bool = True, target_real_label: float = 1.0,
                 target_fake_label: float = 0.0, tensor=None):
        super().__init__()
        _check_bool(use_lsgan, "use_lsgan")
        self.use_lsgan = use_lsgan
        self.target_real_label = _label(target_real_label, "target_real_label")
        self.target_fake_label = _label(target_fake_label, "target_fake_label")

    def forward(self, input: Union[Tensor, Sequence], target_is_real: bool) -> Tensor:
        if isinstance(input, (list, tuple)) and input and isinstance(input[0], (list, tuple)):
            xs = [_last(scale, f"input[{i}]") for i, scale in enumerate(input)]
            names = [f"input[{i}][-1]" for i in range(len(input))]
        else:
            xs, names = [_last(input, "input")], ["input[-1]"]
        return with_arg_names(lambda kind, i: names[i], lambda: F.adversarial_loss(
            xs, target_is_real, _PIX2PIXHD_TYPES[self.use_lsgan], False, self.target_real_label,
            self.target_fake_label, aggregation="sum"))

    def extra_repr(self) -> str:
        return (f"use_lsgan={self.use_lsgan}, target_real_label={self.target_real_label}, "
                f"target_fake_label={self.target_fake_label}")


class SPADEGANLoss(nn.Module):
    """SPADE ``GANLoss(gan_mode, target_real_label=1.0, target_fake_label=0.0,
    tensor=torch.FloatTensor, opt=None)``; ``forward(input, target_is_real,
    for_discriminator=True)``.

    gan_mode ``original`` (BCE with logits against the label), ``ls`` (MSE to the label),
    ``w`` (-mean(x) real, mean(x) fake), ``hinge`` (discriminator: -mean(min(x - 1, 0)) real,
    -mean(min(-x - 1, 0)) fake; generator: -mean(x), and target_is_real must be True as SPADE
    asserts). A list input (entries tensors or lists, a list's last entry taken) gives the mean
    over scales with SPADE's shape: a 1-element vector (SPADE views each scale's scalar loss as
    [1, 1] and means over dim 1); a tensor input gives a scalar. ``tensor`` and ``opt`` are
    accepted and ignored.
    """

    def __init__(self, gan_mode: str, target_real_label: float = 1.0,
                 target_fake_label: float = 0.0, tensor=None, opt=None):
        super().__init__()
        self._gan_type = _choice(gan_mode, "gan_mode", _SPADE_TYPES)
        self.gan_mode = gan_mode
        self.target_real_label = _label(target_real_label, "target_real_label")
        self.target_fake_label = _label(target_fake_label, "target_fake_label")

    def forward(self, input: Union[Tensor, Sequence], target_is_real: bool,
                for_discriminator: bool = True) -> Tensor:
        xs, names = _scale_logits(input, "input")
        _check_bool(target_is_real, "target_is_real")
        _check_bool(for_discriminator, "for_discriminator")
        if self.gan_mode == "hinge" and not for_discriminator and not target_is_real:
            raise ValueError("target_is_real must be True for the generator's hinge loss "
                             "(SPADE asserts it)")
        loss = with_arg_names(lambda kind, i: names[i], lambda: F.adversarial_loss(
            xs, target_is_real, self._gan_type, for_discriminator, self.target_real_label,
            self.target_fake_label, aggregation="mean"))
        return loss.reshape(1) if isinstance(input, (list, tuple)) else loss

    def extra_repr(self) -> str:
        return (f"gan_mode='{self.gan_mode}', target_real_label={self.target_real_label}, "
                f"target_fake_label={self.target_fake_label}")


class CycleGANLoss(nn.Module):
    """pytorch-CycleGAN-and-pix2pix ``GANLoss(gan_mode, target_real_label=1.0,
    target_fake_label=0.0)``; ``forward(prediction, target_is_real)`` on one tensor.

    gan_mode ``lsgan`` (MSE to the label), ``vanilla`` (BCE with logits against the label),
    ``wgangp`` (-mean(x) real, mean(x) fake). The anchor keeps the labels in buffers; here they
    are plain attributes (no label tensor, nothing in the state dict).
    """

    def __init__(self, gan_mode: str, target_real_label: float = 1.0,
                 target_fake_label: float = 0.0):
        super().__init__()
        self._gan_type = _choice(gan_mode, "gan_mode", _CYCLEGAN_TYPES)
        self.gan_mode = gan_mode
        self.target_real_label = _label(target_real_label, "target_real_label")
        self.target_fake_label = _label(target_fake_label, "target_fake_label")

    def forward(self, prediction: Tensor, target_is_real: bool) -> Tensor:
        if not isinstance(prediction, Tensor):
            raise TypeError(f"prediction must be a Tensor, got {type(prediction).__name__}")
        return with_arg_names(lambda kind, i: "prediction", lambda: F.adversarial_loss(
            prediction, target_is_real, self._gan_type, False, self.target_real_label,
            self.target_fake_label))

    def extra_repr(self) -> str:
        return (f"gan_mode='{self.gan_mode}', target_real_label={self.target_real_label}, "
                f"target_fake_label={self.target_fake_label}")


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """taming-transformers / latent-diffusion ``hinge_d_loss``:
    0.5 * (mean(relu(1 - logits_real)) + mean(relu(1 + logits_fake))); the two may differ in
    shape. One discriminator_loss call."""
    return _taming_d_loss(logits_real, logits_fake, "hinge")


def vanilla_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """taming-transformers / latent-diffusion ``vanilla_d_loss``:
    0.5 * (mean(softplus(-logits_real)) + mean(softplus(logits_fake))); the two may differ in
    shape. One discriminator_loss call."""
    return _taming_d_loss(logits_real, logits_fake, "softplus")


def _taming_d_loss(logits_real: Tensor, logits_fake: Tensor, gan_type: str) -> Tensor:
    for value, name in ((logits_real, "logits_real"), (logits_fake, "logits_fake")):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    names = {"real_inputs": "logits_real", "fake_inputs": "logits_fake"}
    return with_arg_names(lambda kind, i: names[kind], lambda: F.discriminator_loss(
        logits_real, logits_fake, gan_type, weight=0.5))


def _choice(value, name: str, table: dict) -> str:
    """The functional gan_type of an anchor's type name."""
    check_str(value, name)
    if value not in table:
        names = [f"'{k}'" for k in table]
        raise ValueError(f"{name} must be {', '.join(names[:-1])} or {names[-1]}, got '{value}'")
    return table[value]


def _label(value, name: str) -> float:
    v = as_number(value, name)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v:g}")
    return v


def _check_bool(value, name: str):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _scale_logits(value, name: str):
    """BasicSR MultiScaleGANLoss / SPADE inputs: a Tensor, or a non-empty list whose entries are
    Tensors or non-empty lists (their last entry taken). Returns the tensors and their names."""
    if isinstance(value, Tensor):
        return [value], [name]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a Tensor, a list of Tensors or a list of lists of "
                        f"Tensors, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must hold at least one discriminator output")
    xs, names = [], []
    for i, entry in enumerate(value):
        if isinstance(entry, (list, tuple)):
            xs.append(_last(entry, f"{name}[{i}]"))
            names.append(f"{name}[{i}][-1]")
        elif isinstance(entry, Tensor):
            xs.append(entry)
            names.append(f"{name}[{i}]")
        else:
            raise TypeError(f"{name}[{i}] must be a Tensor or a list of Tensors, got "
                            f"{type(entry).__name__}")
    return xs, names


def _last(value, name: str) -> Tensor:
    """value[-1]: a non-empty list's last entry (a Tensor), or a Tensor's last slice along dim 0
    (pix2pixHD's indexing of a plain tensor)."""
    if isinstance(value, Tensor):
        if value.dim() == 0:
            raise ValueError(f"{name} is a 0-dim tensor, but {name}[-1] is taken")
        return value[-1]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a Tensor or a list of Tensors, got "
                        f"{type(value).__name__}")
    if not value:
        raise ValueError(f"{name} is an empty list, but {name}[-1] is taken")
    if not isinstance(value[-1], Tensor):
        raise TypeError(f"{name}[-1] must be a Tensor, got {type(value[-1]).__name__}")
    return value[-1]
