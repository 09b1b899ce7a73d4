"""Pure-torch reference implementations, with the signatures of ``ganloss_cuda.functional``.

The oracle of the tests (run in float64) and benchmarks, and what the public API falls back to
when no compiled extension is available. Written for clarity, one anchor formula at a time (BasicSR
basicsr/losses/basic_loss.py, pix2pixHD models/networks.py and models/pix2pixHD_model.py, SPADE
models/pix2pix_model.py); low-precision inputs are computed in float32, as autocast does for
torch's own losses.

The argument helpers below are shared by functional.py and modules.py: a wrong type raises
TypeError, a wrong value ValueError, and every message names the argument.
"""
import math
import numbers
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

CRITERIA = ("l1", "mse", "charbonnier", "fro")
REDUCTIONS = ("mean", "sum", "per_sample")
_FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

Tensors = Union[Tensor, Sequence[Tensor]]


def as_list(value, name: str, optional: bool = False, one_tensor: bool = True) -> list:
    """A list or tuple of Tensors becomes a list; a Tensor becomes [Tensor] when one_tensor is
    set; with optional, None becomes [] and entries may be None."""
    if optional and value is None:
        return []
    if one_tensor and isinstance(value, Tensor):
        return [value]
    if not isinstance(value, (list, tuple)):
        expected = "a Tensor or a list of Tensors" if one_tensor else "a list of Tensors"
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}")
    for i, t in enumerate(value):
        if not (isinstance(t, Tensor) or (optional and t is None)):
            raise TypeError(f"{name}[{i}] must be a Tensor, got {type(t).__name__}")
    return list(value)


def as_number(value, name: str) -> float:
    """A real number (int, float, numpy scalar; not bool) as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def as_numbers(value, name: str) -> list:
    """A list or tuple of numbers as a list of floats; None becomes []."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of numbers, got {type(value).__name__}")
    return [as_number(v, f"{name}[{i}]") for i, v in enumerate(value)]


def check_non_negative(value: float, name: str):
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite non-negative number, got {value:g}")


def as_count(value, name: str) -> int:
    """A positive int (not bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def check_str(value, name: str):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")


def feature_args(inputs, targets, weights, criterion, reduction, masks, eps) -> tuple:
    """feature_loss's arguments, in order, with their types checked, as the ops take them: lists
    of tensors, a list of float weights, a float eps. check_feature_args (and the compiled ops,
    with the same messages) check their values."""
    check_str(criterion, "criterion")
    check_str(reduction, "reduction")
    return (as_list(inputs, "inputs"), as_list(targets, "targets"), as_numbers(weights, "weights"),
            criterion, reduction, as_list(masks, "masks", optional=True), as_number(eps, "eps"))


def _batch(t: Tensor) -> int:
    return t.shape[0] if t.dim() > 0 else 1


def _check_mask(m: Tensor, i: int, x: Tensor, criterion: str):
    name = f"masks[{i}]"
    if criterion == "fro":
        raise ValueError(f"{name} is set, but criterion 'fro' takes no masks")
    if m.dtype not in _FLOATING:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {m.dtype}")
    if m.device != x.device:
        raise ValueError(f"{name} is on {m.device} but inputs[{i}] is on {x.device}")
    one_channel = tuple(x.shape[:1]) + (1,) + tuple(x.shape[2:]) if x.dim() >= 2 else tuple(x.shape)
    if m.shape != x.shape and not (x.dim() >= 2 and tuple(m.shape) == one_channel):
        raise ValueError(f"{name} has shape {tuple(m.shape)} but must be {tuple(x.shape)} or "
                         f"{one_channel} to match inputs[{i}]")


def check_feature_args(inputs: list, targets: list, weights: list, criterion: str,
                       reduction: str, masks: list, eps: float):
    """The checks of csrc/feature_plan.cpp, with the same messages, for the reference path."""
    if not inputs:
        raise ValueError("inputs must hold at least one tensor")
    n = len(inputs)
    if len(targets) != n:
        raise ValueError(f"targets has {len(targets)} tensors but inputs has {n}")
    if masks and len(masks) != n:
        raise ValueError(f"masks has {len(masks)} entries but inputs has {n} "
                         "(pass an empty list for no masks)")
    if weights and len(weights) != n:
        raise ValueError(f"weights has {len(weights)} entries but inputs has {n} "
                         "(pass an empty list for weights of 1)")
    for i, w in enumerate(weights):
        check_non_negative(w, f"weights[{i}]")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be 'l1', 'mse', 'charbonnier' or 'fro', got '{criterion}'")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'per_sample', got '{reduction}'")
    if criterion == "charbonnier" and not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number for criterion 'charbonnier', got {eps:g}")
    x0 = inputs[0]
    if x0.dtype not in _FLOATING:
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
            if x.shape[0] != _batch(x0):
                raise ValueError(f"inputs[{i}] has batch size {x.shape[0]} but inputs[0] has "
                                 f"{_batch(x0)}; reduction 'per_sample' needs one batch size")
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
    acc = torch.float64 if x0.dtype == torch.float64 else torch.float32
    shape = (_batch(x0),) if reduction == "per_sample" else ()
    total = torch.zeros(shape, dtype=acc, device=x0.device)
    for i, (x, y) in enumerate(zip(inputs, targets)):
        if x.numel() == 0:
            continue  # an empty layer contributes nothing
        m = masks[i] if masks else None
        w = weights[i] if weights else 1.0
        total = total + w * _layer_term(x, y, m, criterion, reduction, eps, acc)
    return total
