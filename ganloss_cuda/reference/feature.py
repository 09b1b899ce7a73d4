"""Pure-torch reference of the feature family (feature_loss), with the signature of
``ganloss_cuda.functional.feature_loss``, and the family's argument checks.

The oracle of the tests (run in float64) and benchmarks, and what the public API falls back to
when no compiled extension is available. Written for clarity, one anchor formula at a time (BasicSR
basicsr/losses/basic_loss.py, pix2pixHD models/networks.py and models/pix2pixHD_model.py, SPADE
models/pix2pix_model.py); low-precision inputs are computed in float32, as autocast does for
torch's own losses.

Layer rule: imports torch and ``_args`` only.
"""
import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from .._args import (FLOATING, Tensors, acc_dtype, as_list, as_number, as_numbers, batch_size,
                     check_layer_lists, check_str)

CRITERIA = ("l1", "mse", "charbonnier", "fro")
REDUCTIONS = ("mean", "sum", "per_sample")


def feature_args(inputs, targets, weights, criterion, reduction, masks, eps) -> tuple:
    """feature_loss's arguments, in order, with their types checked, as the ops take them: lists
    of tensors, a list of float weights, a float eps. check_feature_args (and the compiled ops,
    with the same messages) check their values."""
    check_str(criterion, "criterion")
    check_str(reduction, "reduction")
    return (as_list(inputs, "inputs"), as_list(targets, "targets"), as_numbers(weights, "weights"),
            criterion, reduction, as_list(masks, "masks", optional=True), as_number(eps, "eps"))


def _check_mask(m: Tensor, i: int, x: Tensor, criterion: str):
    name = f"masks[{i}]"
    if criterion == "fro":
        raise ValueError(f"{name} is set, but criterion 'fro' takes no masks")
    if m.dtype not in FLOATING:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {m.dtype}")
    if m.device != x.device:
        raise ValueError(f"{name} is on {m.device} but inputs[{i}] is on {x.device}")
    one_channel = tuple(x.shape[:1]) + (1,) + tuple(x.shape[2:]) if x.dim() >= 2 else tuple(x.shape)
    if m.shape != x.shape and not (x.dim() >= 2 and tuple(m.shape) == one_channel):
        raise ValueError(f"{name} has shape {tuple(m.shape)} but must be {tuple(x.shape)} or "
                         f"{one_channel} to match inputs[{i}]")


def check_feature_args(inputs: list, targets: list, weights: list, criterion: str,
                       reduction: str, masks: list, eps: float):
    """The checks of the compiled ops' work plan (csrc), with the same messages, for the
    reference path and the fake kernels."""
    check_layer_lists(inputs, targets, weights)
    n = len(inputs)
    if masks and len(masks) != n:
        raise ValueError(f"masks has {len(masks)} entries but inputs has {n} "
                         "(pass an empty list for no masks)")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be 'l1', 'mse', 'charbonnier' or 'fro', got '{criterion}'")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'per_sample', got '{reduction}'")
    if criterion == "charbonnier" and not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number for criterion 'charbonnier', got {eps:g}")
    x0 = inputs[0]
    if x0.dtype not in FLOATING:
        raise TypeError(f"inputs[0] must be float16, bfloat16, float32 or float64, got {x0.dtype}")
    for i, (x, y) in enumerate(zip(inputs, targets)):
        if x.dtype != x0.dtype:
            raise TypeError(f"inputs[{i}] has dtype {x.dtype} but inputs[0] has {x0.dtype}")
        if x.device != x0.device:
            raise ValueError(f"inputs[{i}] is on {x.device} but inputs[0] is on {x0.device}")
        if y.dtype != x.dtype:
            raise TypeError(f"targets[{i}] has dtype {y.dtype} but inputs[{i}] has {x.dtype}")
        if y.device != x.device:
            raise ValueError(f"targets[{i}] is on {y.device} but inputs[{i}] is on {x.device}")
        if y.shape != x.shape:
            raise ValueError(f"targets[{i}] has shape {tuple(y.shape)} but inputs[{i}] has "
                             f"{tuple(x.shape)}")
        if reduction == "per_sample":
            if x.dim() == 0:
                raise ValueError(f"inputs[{i}] is a 0-dim tensor; reduction 'per_sample' needs a "
                                 "batch dim")
            if x.shape[0] != batch_size(x0):
                raise ValueError(f"inputs[{i}] has batch size {x.shape[0]} but inputs[0] has "
                                 f"{batch_size(x0)}; reduction 'per_sample' needs one batch "
                                 "size")
        if masks and masks[i] is not None:
            _check_mask(masks[i], i, x, criterion)


def elementwise(x: Tensor, y: Tensor, criterion: str, eps: float = 1e-12) -> Tensor:
    """criterion(x - y) per element, in the dtype of x: |d|, d^2 or sqrt(d^2 + eps)."""
    return _rho(x - y, criterion, eps)


def _rho(d: Tensor, criterion: str, eps: float) -> Tensor:
    if criterion == "l1":
        return d.abs()
    if criterion == "mse":
        return d * d
    if criterion == "charbonnier":
        return torch.sqrt(d * d + eps)
    raise ValueError(f"criterion '{criterion}' has no elementwise form")


def _layer_term(x: Tensor, y: Tensor, m: Optional[Tensor], criterion: str, reduction: str,
                eps: float, acc: torch.dtype) -> Tensor:
    d = x.to(acc) - y.to(acc)
    per_sample = reduction == "per_sample"
    if criterion == "fro":  # BasicSR: torch.norm(x - gt, p='fro'), never averaged
        return d.flatten(1).norm(dim=1) if per_sample else d.norm()
    e = _rho(d, criterion, eps)
    if m is None:
        if reduction == "sum":
            return e.sum()
        return e.flatten(1).mean(dim=1) if per_sample else e.mean()
    m = m.to(acc).expand_as(e)
    e = e * m
    if reduction == "sum":
        return e.sum()
    if per_sample:
        return e.flatten(1).sum(dim=1) / m.flatten(1).sum(dim=1)
    return e.sum() / m.sum()  # BasicSR weighted mean: no eps


def feature_loss(inputs: Tensors, targets: Tensors, weights: Optional[Sequence[float]] = None,
                 criterion: str = "l1", reduction: str = "mean",
                 masks: Optional[Sequence[Optional[Tensor]]] = None, eps: float = 1e-12) -> Tensor:
    """sum_l weights[l] * reduce(criterion(inputs[l] - targets[l]) [* masks[l]]); see
    functional.feature_loss for the arguments."""
    args = feature_args(inputs, targets, weights, criterion, reduction, masks, eps)
    check_feature_args(*args)
    inputs, targets, weights, criterion, reduction, masks, eps = args
    x0 = inputs[0]
    acc = acc_dtype(x0.dtype)
    shape = (batch_size(x0),) if reduction == "per_sample" else ()
    total = torch.zeros(shape, dtype=acc, device=x0.device)
    for i, (x, y) in enumerate(zip(inputs, targets)):
        if x.numel() == 0:
            continue  # an empty layer contributes nothing
        m = masks[i] if masks else None
        w = weights[i] if weights else 1.0
        total = total + w * _layer_term(x, y, m, criterion, reduction, eps, acc)
    return total
