"""Argument helpers shared by every loss family: type normalisation (a wrong type raises TypeError,
a wrong value ValueError, and every message names the argument) and the renaming of an op's
argument names in errors to a module's own.

Layer rule: imports torch and the standard library only; every other module may import it.
"""
import math
import numbers
import re
from typing import Callable, Sequence, Union

import torch
from torch import Tensor

FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

Tensors = Union[Tensor, Sequence[Tensor]]


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype losses, Grams and their sums are computed in: float64 for float64 inputs, else
    float32 (the compiled ops' rule too)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def batch_size(t: Tensor) -> int:
    """The size of dim 0 (1 for a 0-dim tensor)."""
    return t.shape[0] if t.dim() > 0 else 1


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


def check_choice(value, name: str, choices: tuple):
    """A str among choices: "gan_type must be 'lsgan', 'vanilla' or 'hinge', got 'x'"."""
    check_str(value, name)
    if value not in choices:
        listed = ", ".join(f"'{c}'" for c in choices[:-1]) + f" or '{choices[-1]}'"
        raise ValueError(f"{name} must be {listed}, got '{value}'")


def check_layer_lists(inputs: list, targets: list, weights: list):
    """The list checks of every multi-layer loss (the plans' check_layer_lists in csrc, same
    messages): at least one input, one target per input, no weights or one per input, each finite
    and non-negative."""
    if not inputs:
        raise ValueError("inputs must hold at least one tensor")
    n = len(inputs)
    if len(targets) != n:
        raise ValueError(f"targets has {len(targets)} tensors but inputs has {n}")
    if weights and len(weights) != n:
        raise ValueError(f"weights has {len(weights)} entries but inputs has {n} "
                         "(pass an empty list for weights of 1)")
    for i, w in enumerate(weights):
        check_non_negative(w, f"weights[{i}]")


def check_str(value, name: str):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")


# A list argument's entry ("targets[3]", discriminator_loss's "fake_inputs[0]"), or gram_matrix's
# one tensor, whose messages start with "features".
_OP_ARG = re.compile(r"\b(inputs|targets|masks|real_inputs|fake_inputs)\[(\d+)\]|^(features)\b")


def with_arg_names(name: Callable[[str, int], str], compute: Callable[[], Tensor]):
    """compute(), with the op's argument names in its errors replaced by the caller's:
    "targets[3]" by name("targets", 3), gram_matrix's "features" by name("features", 0)."""
    try:
        return compute()
    except (TypeError, ValueError) as error:
        message = _OP_ARG.sub(lambda m: name(m.group(1) or m.group(3), int(m.group(2) or 0)),
                              str(error))
        raise type(error)(message) from None


def no_grad_for(arg):
    """The 'no gradient' entry of a list argument in an op's torch.library backward: torch.library
    treats a list as a list of gradients only when every element is a tensor (an empty list too),
    else (float[]) as one leaf."""
    return [None] * len(arg) if all(isinstance(a, Tensor) for a in arg) else None
