"""Regularisers used beside the adversarial losses, with the anchors' exact conventions: the
gradient penalty (WGAN-GP), the R1 penalty, taming's adaptive generator weight and adopt_weight.

The penalties differentiate the discriminator's output with respect to its input and are then
differentiated again (with respect to the discriminator's parameters), so they are plain autograd
(``create_graph=True``), not fused kernels: their cost is the discriminator's double backward.

Anchors: BasicSR basicsr/losses/gan_loss.py (``r1_penalty``, ``gradient_penalty_loss``), mmagic
(``gradient_penalty_loss``, ``r1_gradient_penalty_loss``: norm_mode 'pixel' / 'HWC', mask,
loss_scaler), pytorch-CycleGAN-and-pix2pix models/networks.py (``cal_gradient_penalty``),
taming-transformers taming/modules/losses/vqperceptual.py (``calculate_adaptive_weight``,
``adopt_weight``).

Layer rule: imports torch and ``_args`` only.
"""
from typing import Callable, Optional

import torch
from torch import Tensor

from .._args import as_number, check_choice, check_non_negative

NORM_MODES = ("pixel", "sample")
INTERPOLATIONS = ("mixed", "real", "fake")


def _check_tensor(value, name: str):
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point Tensor, got {value.dtype}")
    if value.dim() < 2:
        raise ValueError(f"{name} must have a batch and a channel dim, got shape "
                         f"{list(value.shape)}")


def _input_grad(pred: Tensor, inputs: Tensor, loss_scaler) -> Tensor:
    """d sum(pred) / d inputs with the graph kept (double backward). With a GradScaler the
    output is scaled before the backward and the gradient unscaled after (mmagic, torch AMP's
    gradient-penalty recipe), so that 16-bit gradients do not underflow."""
    if loss_scaler is not None:
        pred = loss_scaler.scale(pred)
    grad = torch.autograd.grad(pred, inputs, grad_outputs=torch.ones_like(pred),
                               create_graph=True)[0]
    if loss_scaler is not None:
        grad = grad * (1.0 / loss_scaler.get_scale())
    return grad


def _weighted_mean(per_item: Tensor, weight: Optional[Tensor]) -> Tensor:
    """mean(per_item), divided by mean(weight) when a weight (mask) was applied to the
    gradients (BasicSR, mmagic)."""
    penalty = per_item.mean()
    return penalty if weight is None else penalty / weight.mean()


def gradient_penalty(discriminator: Callable[[Tensor], Tensor], real_data: Tensor,
                     fake_data: Tensor, weight: Optional[Tensor] = None,
                     norm_mode: str = "pixel", interpolation: str = "mixed",
                     constant: float = 1.0, eps: float = 0.0, alpha: Optional[Tensor] = None,
                     loss_scaler=None) -> Tensor:
    """WGAN-GP: mean((||grad D(x_hat)|| - constant)^2) at x_hat = alpha real + (1 - alpha) fake.

    - ``norm_mode="pixel"``: the norm over channels at each pixel, mean over (N, H, W) (BasicSR
      ``gradient_penalty_loss``, mmagic 'pixel'); ``"sample"``: the norm of each sample's
      flattened gradient, mean over N (the WGAN-GP paper, mmagic 'HWC', CycleGAN).
    - ``weight``: multiplies the gradients before the norm, and the penalty is divided by
      mean(weight) (BasicSR ``weight``, mmagic ``mask``).
    - ``interpolation``: ``"mixed"`` (above), ``"real"`` or ``"fake"`` (x_hat is that batch),
      CycleGAN's ``type``. ``alpha``: one value per sample (shape [N] or broadcastable to the
      data); by default ``torch.rand(N, 1, ..., 1)`` is drawn from the CPU generator and moved
      to the data's device and dtype, like BasicSR and mmagic (same values for the same seed).
    - ``eps`` is added to the gradients before the norm (CycleGAN adds 1e-16).
    - ``loss_scaler`` (a torch.amp.GradScaler): D's output is scaled before the input gradient
      and the gradient unscaled after (mmagic's option; torch AMP's gradient-penalty recipe).

    CycleGAN ``cal_gradient_penalty(netD, real, fake, device, type, constant, lambda_gp)[0]`` is
    ``lambda_gp * gradient_penalty(netD, real, fake, norm_mode="sample", interpolation=type,
    constant=constant, eps=1e-16)`` (it returns 0.0 for lambda_gp == 0). x_hat is a new leaf:
    the penalty reaches D's parameters, not real_data or fake_data (the anchors pass them
    detached).
    """
    _check_tensor(real_data, "real_data")
    _check_tensor(fake_data, "fake_data")
    if fake_data.shape != real_data.shape:
        raise ValueError(f"fake_data has shape {list(fake_data.shape)} but real_data has "
                         f"{list(real_data.shape)}")
    check_choice(norm_mode, "norm_mode", NORM_MODES)
    check_choice(interpolation, "interpolation", INTERPOLATIONS)
    constant = as_number(constant, "constant")
    eps = as_number(eps, "eps")
    check_non_negative(eps, "eps")
    n = real_data.shape[0]
    if interpolation == "mixed":
        if alpha is None:
            alpha = torch.rand((n,) + (1,) * (real_data.dim() - 1)).to(real_data)
        elif alpha.dim() == 1:
            alpha = alpha.reshape((n,) + (1,) * (real_data.dim() - 1))
        x_hat = alpha * real_data + (1 - alpha) * fake_data
    else:
        x_hat = real_data if interpolation == "real" else fake_data
    x_hat = x_hat.detach().requires_grad_()
    grad = _input_grad(discriminator(x_hat), x_hat, loss_scaler)
    if weight is not None:
        grad = grad * weight
    grad = grad + eps if eps else grad
    norms = grad.norm(2, dim=1) if norm_mode == "pixel" else grad.reshape(n, -1).norm(2, dim=1)
    return _weighted_mean((norms - constant) ** 2, weight)


def r1_penalty(real_pred: Tensor, real_img: Tensor, weight: Optional[Tensor] = None,
               norm_mode: str = "sample", loss_scaler=None) -> Tensor:
    """R1: the squared gradient of the discriminator's output on real data, E ||grad D(x)||^2.

    ``real_img`` must require grad and ``real_pred = D(real_img)`` (BasicSR's signature).

    - ``norm_mode="sample"``: per-sample sum of squares, mean over N (BasicSR ``r1_penalty``,
      mmagic 'HWC', StyleGAN); ``"pixel"``: sum of squares over channels, mean over (N, H, W)
      (mmagic 'pixel').
    - ``weight``: multiplies the gradients before squaring, and the penalty is divided by
      mean(weight) (mmagic ``mask``).
    - ``loss_scaler`` (a torch.amp.GradScaler): real_pred is scaled before the input gradient
      and the gradient unscaled after, as mmagic does.

    mmagic ``r1_gradient_penalty_loss(D, x, mask, norm_mode, loss_scaler)`` is
    ``x.requires_grad_(); r1_penalty(D(x), x, mask, "sample" if norm_mode == "HWC" else
    "pixel", loss_scaler)`` (its use_apex_amp option is not supported). The penalty is
    differentiable with respect to D's parameters (double backward).
    """
    if not isinstance(real_pred, Tensor):
        raise TypeError(f"real_pred must be a Tensor, got {type(real_pred).__name__}")
    _check_tensor(real_img, "real_img")
    if not real_img.requires_grad:
        raise ValueError("real_img must require grad, and real_pred be computed from it")
    check_choice(norm_mode, "norm_mode", NORM_MODES)
    grad = _input_grad(real_pred, real_img, loss_scaler)
    if weight is not None:
        grad = grad * weight
    squares = grad.pow(2)
    per_item = squares.sum(1) if norm_mode == "pixel" else squares.reshape(grad.shape[0], -1).sum(1)
    return _weighted_mean(per_item, weight)


def adaptive_generator_weight(nll_loss: Tensor, g_loss: Tensor, last_layer: Tensor,
                              disc_weight: float = 1.0) -> Tensor:
    """taming's ``calculate_adaptive_weight``: the weight that balances the generator's
    adversarial loss against the reconstruction loss at the decoder's last layer,
    clamp(||d nll / d w|| / (||d g / d w|| + 1e-4), 0, 1e4).detach() * disc_weight.

    Both gradients keep the graph (retain_graph) for the training step's backward. taming
    catches the RuntimeError of a graph without gradients (evaluation) and uses 0; here the error
    propagates.
    """
    for value, name in ((nll_loss, "nll_loss"), (g_loss, "g_loss"), (last_layer, "last_layer")):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    disc_weight = as_number(disc_weight, "disc_weight")
    nll_grads = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    d_weight = torch.norm(nll_grads) / (torch.norm(g_grads) + 1e-4)
    return torch.clamp(d_weight, 0.0, 1e4).detach() * disc_weight


def adopt_weight(weight: float, global_step: int, threshold: int = 0, value: float = 0.0):
    """taming's warm-up: ``weight`` from ``global_step >= threshold`` on, ``value`` before."""
    for v, name in ((weight, "weight"), (global_step, "global_step"), (threshold, "threshold"),
                    (value, "value")):
        as_number(v, name)
    return weight if global_step >= threshold else value
