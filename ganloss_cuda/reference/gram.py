"""Pure-torch reference of the Gram/style family (gram_matrix, style_loss), with the signatures of
``ganloss_cuda.functional``, and the family's argument checks.

The anchors' formulas, one normalisation at a time: BasicSR / mmagic ``_gram_mat`` and
fast-neural-style ``gram_matrix`` (F F^T / (C*H*W)), the PyTorch neural-style tutorial (batch
folded into the rows, / (N*C*H*W)), Gatys' PytorchNeuralStyleTransfer (/ (H*W)) and piq's
``StyleLoss`` (no normalisation). Unlike the anchors, the Gram is computed and kept in float32
(float64 for float64 features) with autocast disabled: a 16-bit Gram overflows 65504 before the
division (NVIDIA/apex#973) or loses the difference of two nearly equal Grams (bf16).

Layer rule: imports torch and ``_args`` only.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .._args import FLOATING, Tensors, acc_dtype, as_list, as_numbers, check_layer_lists, check_str

STYLE_CRITERIA = ("l1", "mse", "fro")
NORMALIZATIONS = ("chw", "hw", "nchw", "none")
STYLE_REDUCTIONS = ("mean", "sum", "per_sample")


def _check_normalization(normalization):
    check_str(normalization, "normalization")
    if normalization not in NORMALIZATIONS:
        raise ValueError("normalization must be 'chw', 'hw', 'nchw' or 'none', got "
                         f"'{normalization}'")


def _check_features(x: Tensor, name: str):
    if x.dtype not in FLOATING:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have at least 2 dims (N, C, ...), got shape "
                         f"{tuple(x.shape)}")


def gram_view(x: Tensor, normalization: str) -> Tuple[Tensor, float]:
    """Features (N, C, *spatial) as the [B, C', K] matrices whose Grams are taken, and the scale
    1/norm: [N, C, K] for 'chw' (1/(C*K)), 'hw' (1/K) and 'none' (1); [1, N*C, K] for 'nchw'
    (the tutorial's input.view(a*b, c*d), 1/(N*C*K)). A view where torch can make one."""
    n, c = x.shape[0], x.shape[1]
    k = x[0, 0].numel() if n * c else x.shape[2:].numel()
    if normalization == "nchw":
        return x.reshape(1, n * c, k), 1.0 / max(n * c * k, 1)
    norm = {"chw": c * k, "hw": k, "none": 1}[normalization]
    return x.reshape(n, c, k), 1.0 / max(norm, 1)


def gram_shape(x: Tensor, normalization: str) -> tuple:
    """The shape gram_matrix returns: (N, C, C), or (N*C, N*C) for 'nchw' (the tutorial's)."""
    n, c = x.shape[0], x.shape[1]
    return (n * c, n * c) if normalization == "nchw" else (n, c, c)


def _gram(f: Tensor, scale: float) -> Tensor:
    """scale * F F^T of [B, C, K] features in the accumulation dtype, autocast off."""
    with torch.autocast(f.device.type, enabled=False):
        f = f.to(acc_dtype(f.dtype))
        return torch.bmm(f, f.transpose(1, 2)) * scale


def check_gram_args(features, normalization):
    """gram_matrix's argument checks (both paths)."""
    if not isinstance(features, Tensor):
        raise TypeError(f"features must be a Tensor, got {type(features).__name__}")
    _check_normalization(normalization)
    _check_features(features, "features")


def gram_matrix(features: Tensor, normalization: str = "chw") -> Tensor:
    """F F^T / norm per sample; see functional.gram_matrix."""
    check_gram_args(features, normalization)
    f, scale = gram_view(features, normalization)
    return _gram(f, scale).reshape(gram_shape(features, normalization))


def style_args(inputs, targets, weights, criterion, normalization, reduction,
               target_is_gram) -> tuple:
    """style_loss's arguments, in order, with their types checked: lists of tensors, a list of
    float weights; check_style_args checks their values."""
    check_str(criterion, "criterion")
    _check_normalization(normalization)
    check_str(reduction, "reduction")
    if not isinstance(target_is_gram, bool):
        raise TypeError(f"target_is_gram must be a bool, got {type(target_is_gram).__name__}")
    return (as_list(inputs, "inputs"), as_list(targets, "targets"), as_numbers(weights, "weights"),
            criterion, normalization, reduction, target_is_gram)


def check_style_args(inputs: list, targets: list, weights: list, criterion: str,
                     normalization: str, reduction: str, target_is_gram: bool):
    """The value checks of style_loss, shared by the reference, the compiled path and the fake
    kernels (the compiled ops' plan, csrc/plan/gram_plan.cpp, repeats them for direct calls)."""
    check_layer_lists(inputs, targets, weights)
    if criterion not in STYLE_CRITERIA:
        raise ValueError(f"criterion must be 'l1', 'mse' or 'fro', got '{criterion}'")
    if reduction not in STYLE_REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'per_sample', got '{reduction}'")
    if reduction == "per_sample" and normalization == "nchw":
        raise ValueError("reduction 'per_sample' needs one Gram per sample, but normalization "
                         "'nchw' folds the batch into the rows")
    x0 = inputs[0]
    for i, (x, y) in enumerate(zip(inputs, targets)):
        _check_features(x, f"inputs[{i}]")
        if x.dtype != x0.dtype:
            raise TypeError(f"inputs[{i}] has dtype {x.dtype} but inputs[0] has {x0.dtype}")
        if x.device != x0.device:
            raise ValueError(f"inputs[{i}] is on {x.device} but inputs[0] is on {x0.device}")
        if reduction == "per_sample" and x.shape[0] != x0.shape[0]:
            raise ValueError(f"inputs[{i}] has batch size {x.shape[0]} but inputs[0] has "
                             f"{x0.shape[0]}; reduction 'per_sample' needs one batch size")
        if target_is_gram:
            if y.dtype not in FLOATING:
                raise TypeError(f"targets[{i}] must be float16, bfloat16, float32 or float64, "
                                f"got {y.dtype}")
        elif y.dtype != x.dtype:
            raise TypeError(f"targets[{i}] has dtype {y.dtype} but inputs[{i}] has {x.dtype}")
        if y.device != x.device:
            raise ValueError(f"targets[{i}] is on {y.device} but inputs[{i}] is on {x.device}")
        if not target_is_gram:
            if y.shape != x.shape:
                raise ValueError(f"targets[{i}] has shape {tuple(y.shape)} but inputs[{i}] has "
                                 f"{tuple(x.shape)}")
            continue
        shape = gram_shape(x, normalization)
        allowed = [shape] if normalization == "nchw" else [shape, (1,) + shape[1:]]
        if tuple(y.shape) not in allowed:
            expect = " or ".join(str(s) for s in allowed)
            raise ValueError(f"targets[{i}] has shape {tuple(y.shape)} but the Gram of "
                             f"inputs[{i}] {tuple(x.shape)} with normalization "
                             f"'{normalization}' must be {expect}")


def _criterion_term(d: Tensor, criterion: str, reduction: str) -> Tensor:
    per_sample = reduction == "per_sample"
    if criterion == "fro":  # BasicSR: torch.norm(Gx - Gy, p='fro') over the whole batch
        return d.flatten(1).norm(dim=1) if per_sample else d.norm()
    e = d.abs() if criterion == "l1" else d * d
    if reduction == "sum":
        return e.sum()
    return e.flatten(1).mean(dim=1) if per_sample else e.mean()


def style_loss(inputs: Tensors, targets: Tensors, weights: Optional[Sequence[float]] = None,
               criterion: str = "l1", normalization: str = "chw", reduction: str = "mean",
               target_is_gram: bool = False) -> Tensor:
    """sum_l weights[l] * reduce(criterion(G(inputs[l]) - G(targets[l]))); see
    functional.style_loss for the arguments."""
    args = style_args(inputs, targets, weights, criterion, normalization, reduction,
                      target_is_gram)
    check_style_args(*args)
    inputs, targets, weights = args[:3]
    x0 = inputs[0]
    acc = acc_dtype(x0.dtype)
    total = torch.zeros((x0.shape[0],) if reduction == "per_sample" else (), dtype=acc,
                        device=x0.device)
    for i, (x, y) in enumerate(zip(inputs, targets)):
        if x.numel() == 0 and not target_is_gram:
            continue  # an empty layer contributes nothing
        f, scale = gram_view(x, normalization)
        gx = _gram(f, scale)
        if target_is_gram:  # (N or 1, C, C), or (N*C, N*C) for 'nchw'
            gy = y.to(acc) if y.dim() == 3 else y.to(acc).unsqueeze(0)
        else:
            gy = _gram(gram_view(y, normalization)[0], scale)
        if gx.numel() == 0:
            continue
        w = weights[i] if weights else 1.0
        total = total + w * _criterion_term(gx - gy, criterion, reduction)
    return total
