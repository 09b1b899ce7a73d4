"""Pure-torch reference of the adversarial family (adversarial_loss, discriminator_loss), with the
signatures of ``ganloss_cuda.functional``, and the family's argument checks.

The anchors' terms (BasicSR / mmagic GANLoss, pix2pixHD, SPADE, pytorch-CycleGAN-and-pix2pix,
CUT, taming-transformers), computed in float32 (float64 for float64 inputs) with autocast off,
without label tensors, and in the overflow-free forms: BCE with logits as
y softplus(-x) + (1 - y) softplus(x) with a zero-coefficient term skipped (x = +-inf gives the
limit, not NaN), BCE on probabilities with torch's log clamp at -100 (torch refuses it under
autocast; here it is computed in float32).

Both public functions reduce to one description, ``adversarial_call``: a flat list of tensors, a
real/fake target per tensor, a weight per tensor (aggregation, the discriminator's averaging and
the loss weight folded in), which is what the compiled op takes.

Layer rule: imports torch and ``_args`` only.
"""
import functools
import math
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor

from .._args import FLOATING, acc_dtype, as_list, as_number, check_choice, check_non_negative

GAN_TYPES = ("lsgan", "vanilla", "bce", "wgan", "softplus", "hinge")
AGGREGATIONS = ("mean", "sum")
ADV_REDUCTIONS = ("mean", "per_sample")

Inputs = Union[Tensor, Sequence[Tensor]]


def _check_bool(value, name: str):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _finite(value, name: str) -> float:
    v = as_number(value, name)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v:g}")
    return v


def _check_scales(tensors: List[Tensor], name: str, per_sample: bool, ref: Tensor = None,
                  ref_name: str = "", check_tensors: bool = True):
    """One list of discriminator outputs: non-empty, floating, of ref's dtype and device (default
    the list's first tensor), no empty tensor, one batch size for per_sample. Without
    check_tensors, only non-empty (the op checks the rest; ops/adversarial.py)."""
    if not tensors:
        raise ValueError(f"{name} must hold at least one tensor (one per discriminator scale)")
    if not check_tensors:
        return
    if ref is None:
        ref, ref_name = tensors[0], f"{name}[0]"
    for i, t in enumerate(tensors):
        tname = f"{name}[{i}]"
        if t.dtype not in FLOATING:
            raise TypeError(f"{tname} must be float16, bfloat16, float32 or float64, got {t.dtype}")
        if t.dtype != ref.dtype:
            raise TypeError(f"{tname} has dtype {t.dtype} but {ref_name} has {ref.dtype}")
        if t.device != ref.device:
            raise ValueError(f"{tname} is on {t.device} but {ref_name} is on {ref.device}")
        if t.numel() == 0:
            raise ValueError(f"{tname} is empty")
        if per_sample:
            if t.dim() == 0:
                raise ValueError(f"{tname} is a 0-dim tensor; reduction 'per_sample' needs a "
                                 "batch dim")
            if t.shape[0] != ref.shape[0]:
                raise ValueError(f"{tname} has batch size {t.shape[0]} but {ref_name} has "
                                 f"{ref.shape[0]}; reduction 'per_sample' needs one batch size")


def _check_common_args(gan_type, real_label, fake_label, weight, aggregation,
                       reduction) -> tuple:
    check_choice(gan_type, "gan_type", GAN_TYPES)
    real_label = _finite(real_label, "real_label")
    fake_label = _finite(fake_label, "fake_label")
    weight = as_number(weight, "weight")
    check_non_negative(weight, "weight")
    check_choice(aggregation, "aggregation", AGGREGATIONS)
    check_choice(reduction, "reduction", ADV_REDUCTIONS)
    return real_label, fake_label, weight


# A training loop passes the same few settings at every step, and these losses cost less than
# their Python argument checks: remember the checked settings (typed: 1, 1.0 and True differ).
_checked_common_args = functools.lru_cache(maxsize=64, typed=True)(_check_common_args)


def _common_args(*args) -> tuple:
    """(real_label, fake_label, weight) as floats, after the checks of the settings shared by
    both functions (gan_type, labels, weight, aggregation, reduction)."""
    if torch.compiler.is_compiling():  # checked once, at tracing; dynamo warns of lru_cache
        return _check_common_args(*args)
    try:
        return _checked_common_args(*args)
    except TypeError:  # an unhashable argument, or a wrong type: the checks name it
        return _check_common_args(*args)


def _scale_weights(n: int, weight: float, aggregation: str) -> List[float]:
    return [weight / n if aggregation == "mean" else weight] * n


AdversarialCall = Tuple[List[Tensor], List[bool], str, bool, float, float, List[float], bool]


def adversarial_call(inputs, target_is_real, gan_type="vanilla", is_disc=False, real_label=1.0,
                     fake_label=0.0, weight=1.0, aggregation="mean", reduction="mean",
                     check_tensors=True) -> AdversarialCall:
    """adversarial_loss's arguments checked and turned into the op's: (inputs, real, gan_type,
    is_disc, real_label, fake_label, weights, per_sample). check_tensors=False leaves the
    tensors' dtypes, devices, sizes and batch sizes to the op (which checks the same)."""
    xs = as_list(inputs, "inputs")
    _check_bool(target_is_real, "target_is_real")
    _check_bool(is_disc, "is_disc")
    real_label, fake_label, weight = _common_args(gan_type, real_label, fake_label, weight,
                                                  aggregation, reduction)
    per_sample = reduction == "per_sample"
    _check_scales(xs, "inputs", per_sample, check_tensors=check_tensors)
    return (xs, [target_is_real] * len(xs), gan_type, is_disc, real_label, fake_label,
            _scale_weights(len(xs), weight, aggregation), per_sample)


def discriminator_call(real_inputs, fake_inputs, gan_type="vanilla", real_label=1.0,
                       fake_label=0.0, weight=1.0, aggregation="mean", reduction="mean",
                       check_tensors=True) -> AdversarialCall:
    """discriminator_loss's arguments checked and turned into the op's: both lists in one call,
    real first, is_disc set; check_tensors as in adversarial_call."""
    reals = as_list(real_inputs, "real_inputs")
    fakes = as_list(fake_inputs, "fake_inputs")
    real_label, fake_label, weight = _common_args(gan_type, real_label, fake_label, weight,
                                                  aggregation, reduction)
    per_sample = reduction == "per_sample"
    _check_scales(reals, "real_inputs", per_sample, check_tensors=check_tensors)
    _check_scales(fakes, "fake_inputs", per_sample, reals[0], "real_inputs[0]", check_tensors)
    return (reals + fakes, [True] * len(reals) + [False] * len(fakes), gan_type, True, real_label,
            fake_label, _scale_weights(len(reals), weight, aggregation)
            + _scale_weights(len(fakes), weight, aggregation), per_sample)


def _softplus(z: Tensor) -> Tensor:
    return z.clamp(min=0) + torch.log1p(torch.exp(-z.abs()))


def adversarial_terms(x: Tensor, real: bool, gan_type: str, is_disc: bool, y: float) -> Tensor:
    """The elementwise term of one discriminator output (docs of functional.adversarial_loss)."""
    if gan_type == "lsgan":
        return (x - y) ** 2
    if gan_type == "vanilla":  # BCE with logits; a zero coefficient's term skipped
        t = torch.zeros_like(x)
        if y != 0:
            t = t + y * _softplus(-x)
        if y != 1:
            t = t + (1 - y) * _softplus(x)
        return t
    if gan_type == "bce":  # torch's BCELoss: logs clamped at -100, its gradient at p = 0 or 1
        return torch.nn.functional.binary_cross_entropy(x, torch.full_like(x, y),
                                                        reduction="none")
    if gan_type == "wgan":
        return -x if real else x
    if gan_type == "softplus":
        return _softplus(-x if real else x)
    if not is_disc:  # hinge, generator: -mean(x) whatever the target
        return -x
    return torch.relu(1 - x) if real else torch.relu(1 + x)


def loss_of_call(call: AdversarialCall) -> Tensor:
    """sum_i weights[i] * reduce(term(inputs[i])) of an op-level description."""
    xs, real, gan_type, is_disc, real_label, fake_label, weights, per_sample = call
    acc = acc_dtype(xs[0].dtype)
    total = torch.zeros((xs[0].shape[0],) if per_sample else (), dtype=acc, device=xs[0].device)
    with torch.autocast(xs[0].device.type, enabled=False):
        for x, r, w in zip(xs, real, weights):
            t = adversarial_terms(x.to(acc), r, gan_type, is_disc, real_label if r else fake_label)
            total = total + w * (t.flatten(1).mean(1) if per_sample else t.mean())
    return total


def adversarial_loss(inputs: Inputs, target_is_real: bool, gan_type: str = "vanilla",
                     is_disc: bool = False, real_label: float = 1.0, fake_label: float = 0.0,
                     weight: float = 1.0, aggregation: str = "mean",
                     reduction: str = "mean") -> Tensor:
    """The adversarial loss of discriminator outputs against one target; see
    functional.adversarial_loss."""
    return loss_of_call(adversarial_call(inputs, target_is_real, gan_type, is_disc, real_label,
                                         fake_label, weight, aggregation, reduction))


def discriminator_loss(real_inputs: Inputs, fake_inputs: Inputs, gan_type: str = "vanilla",
                       real_label: float = 1.0, fake_label: float = 0.0, weight: float = 1.0,
                       aggregation: str = "mean", reduction: str = "mean") -> Tensor:
    """weight * (loss(real, real target) + loss(fake, fake target)), discriminator side; see
    functional.discriminator_loss."""
    return loss_of_call(discriminator_call(real_inputs, fake_inputs, gan_type, real_label,
                                           fake_label, weight, aggregation, reduction))
