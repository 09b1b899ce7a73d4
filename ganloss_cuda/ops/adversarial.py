"""The adversarial family's compiled ops: fake (meta) kernels, autograd, and the public
``adversarial_loss`` and ``discriminator_loss``, which run the op (one forward and one backward
launch for every scale, real and fake together) or fall back to the reference. ``OPS`` lists the
family's ops (schemas in csrc/ganloss.cpp).

These losses are small (patch logits), so host time matters. Eager calls go through a
torch.autograd.Function over the flat inputs (no torch.library pytree work per call) whose
forward and backward call the ops through the extension's entry points (csrc/python_calls.cpp),
and leave the tensor checks to the op (``_run``); traced calls (torch.compile) make every check
in Python and use the op's registered autograd. Nothing here synchronises with the device
(torch.compile fullgraph, CUDA graphs).

Layer rule: imports torch, ``_args``, ``_ext`` and ``reference`` only.
"""
import torch
from torch import Tensor

from .. import _ext
from .._args import acc_dtype, no_grad_for
from ..reference import adversarial_call, discriminator_call
from ..reference.adversarial import Inputs, loss_of_call

OPS = ("adversarial_loss", "adversarial_loss_backward")

_ops = torch.ops.ganloss
# Eager calls ask the tensor (is_cpu, is_cuda), not the name of its device, which is a new string
# at every call.
_CPU_KERNEL = _ext.has_kernel("adversarial_loss", "cpu")
_CUDA_KERNEL = _ext.has_kernel("adversarial_loss", "cuda")
# Eager calls go through the extension's own entry points (csrc/python_calls.cpp): typed
# dispatcher calls without torch.ops' per-argument boxing and __torch_function__ handling, which
# cost more host time than a StyleGAN-like loss step (a tensor subclass's __torch_dispatch__ and
# dispatch modes still see the op; its __torch_function__ does not).
_calls = _ext.module


def _check_op_inputs(inputs):
    x0 = inputs[0]
    for i, x in enumerate(inputs):
        if x.device != x0.device:
            raise ValueError(f"inputs[{i}] is on {x.device} but inputs[0] is on {x0.device}")


def _adversarial_loss_fake(inputs, real, gan_type, is_disc, real_label, fake_label, weights,
                           per_sample):
    _check_op_inputs(inputs)
    x0 = inputs[0]
    return x0.new_empty((x0.shape[0],) if per_sample else (), dtype=acc_dtype(x0.dtype))


def _adversarial_loss_backward_fake(grad, inputs, real, gan_type, is_disc, real_label,
                                    fake_label, weights, per_sample):
    _check_op_inputs(inputs)
    return [x.new_empty(x.shape) for x in inputs]


def _setup_context(ctx, inputs, output):
    xs, *args = inputs
    ctx.args = args
    ctx.save_for_backward(*xs)


def _backward(ctx, grad):
    real, gan_type, is_disc, real_label, fake_label, weights, per_sample = ctx.args
    dxs = _ops.adversarial_loss_backward(grad, list(ctx.saved_tensors), real, gan_type, is_disc,
                                         real_label, fake_label, weights, per_sample)
    return dxs, no_grad_for(real), None, None, None, None, no_grad_for(weights), None


class _EagerAdversarialLoss(torch.autograd.Function):
    """Eager autograd over the flat inputs: the registered autograd's logic without its per-call
    pytree work. The op runs below the Autograd dispatch key."""

    @staticmethod
    def forward(ctx, args, *xs):
        loss = _calls.adversarial_loss(xs, *args)
        ctx.args = args
        ctx.save_for_backward(*xs)
        return loss

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():
            raise RuntimeError("ganloss adversarial_loss is differentiable once: backward with "
                               "create_graph=True (double backward) is not supported; the "
                               "regularisers (gradient_penalty, r1_penalty) differentiate the "
                               "discriminator, not this loss")
        dxs = _calls.adversarial_loss_backward(grad, ctx.saved_tensors, *ctx.args)
        return (None, *dxs)


# The C++ apply under torch.autograd.Function.apply, whose Python wrapper adds only functorch
# support (which needs a setup_context this Function lacks) and costs 3.5 % of the host
# instructions of a StyleGAN-like discriminator step (valgrind); used outside functorch transforms.
_apply_without_functorch = super(torch.autograd.Function, _EagerAdversarialLoss).apply


def _run(make_call, args: tuple) -> Tensor:
    """The loss of ``make_call(*args)`` (adversarial_call or discriminator_call): the op, or the
    reference where the extension has no kernel for the inputs' device. Eager calls on a device
    with a kernel leave the tensor checks (dtypes, devices, sizes, batch sizes) to the op, which
    makes the same ones; when it raises, the Python checks run to raise the reference's error,
    which names the caller's argument. The Python checks cost more host time than the loss."""
    call = make_call(*args, check_tensors=False)
    xs, op_args = call[0], call[1:]
    x0 = xs[0]
    if torch.compiler.is_compiling() or not ((x0.is_cpu and _CPU_KERNEL)
                                             or (x0.is_cuda and _CUDA_KERNEL)):
        call = make_call(*args)  # meta tensors (fake kernels), tracing, the fallback
        if not _ext.use_extension("adversarial_loss", x0.device):
            return loss_of_call(call)
        return _ops.adversarial_loss(*call)
    try:
        if not (torch.is_grad_enabled() and any(x.requires_grad for x in xs)):
            return _calls.adversarial_loss(xs, *op_args)
        if torch._C._are_functorch_transforms_active():
            return _EagerAdversarialLoss.apply(op_args, *xs)
        return _apply_without_functorch(op_args, *xs)
    except Exception as e:  # noqa: BLE001 - re-raised below unless the checks raise first
        error = e
    make_call(*args)
    raise error


def adversarial_loss(inputs: Inputs, target_is_real: bool, gan_type: str = "vanilla",
                     is_disc: bool = False, real_label: float = 1.0, fake_label: float = 0.0,
                     weight: float = 1.0, aggregation: str = "mean",
                     reduction: str = "mean") -> Tensor:
    r"""Adversarial loss of discriminator outputs (one tensor per scale) against one target, in
    one kernel launch forward and one backward, without label tensors.

    .. math:: L = w \cdot \mathrm{agg}_s \, \mathrm{reduce}\big(\ell(x_s)\big)

    with :math:`\ell` by ``gan_type`` (y = ``real_label`` if ``target_is_real`` else
    ``fake_label``): ``"lsgan"`` (x - y)² (BasicSR, pix2pixHD default, SPADE 'ls', CycleGAN);
    ``"vanilla"`` BCE with logits, y·softplus(-x) + (1-y)·softplus(x) (BasicSR, mmagic, SPADE
    'original', CycleGAN); ``"bce"`` BCE on probabilities (pix2pixHD ``--no_lsgan``, a sigmoid
    discriminator; torch's clamp of the log at -100; computed in float32 under autocast, where
    torch refuses it; inputs outside [0, 1] give NaN); ``"wgan"`` -x for a real target, x for a
    fake one; ``"softplus"`` softplus(-x) / softplus(x) (BasicSR 'wgan_softplus', StyleGAN2,
    non-saturating); ``"hinge"`` relu(1 - x) / relu(1 + x) when ``is_disc``, else -x whatever
    the target (BasicSR, SPADE, taming). Labels are used by lsgan, vanilla and bce only (accepted
    and ignored by the others, like the anchors).

    Args:
        inputs: a tensor or a list of tensors, one per discriminator scale, any shapes, one dtype
            (float16/bfloat16/float32/float64) and device.
        target_is_real: the target of every element.
        is_disc: the discriminator's side (only hinge differs).
        weight: multiplies the loss (BasicSR's ``loss_weight`` on the generator side).
        aggregation: over scales, ``"mean"`` (BasicSR MultiScaleGANLoss, SPADE) or ``"sum"``
            (pix2pixHD).
        reduction: ``"mean"`` over each scale's elements, or ``"per_sample"``: a vector (N,) of
            per-sample means (SPADE, CUT; every scale must share N).

    Returns:
        float32 loss (float64 for float64 inputs), () or (N,).
    """
    return _run(adversarial_call, (inputs, target_is_real, gan_type, is_disc, real_label,
                                   fake_label, weight, aggregation, reduction))


def discriminator_loss(real_inputs: Inputs, fake_inputs: Inputs, gan_type: str = "vanilla",
                       real_label: float = 1.0, fake_label: float = 0.0, weight: float = 1.0,
                       aggregation: str = "mean", reduction: str = "mean") -> Tensor:
    r"""The discriminator's loss on real and fake outputs in one launch:
    ``weight * (adversarial_loss(real_inputs, True, is_disc=True, ...) +
    adversarial_loss(fake_inputs, False, is_disc=True, ...))``. ``weight=0.5`` is
    pix2pixHD's / CycleGAN's / taming's 0.5·(real + fake), ``1.0`` SPADE's and BasicSR's sum.
    Real and fake may differ in shapes and in their number of scales; arguments as in
    :func:`adversarial_loss`.
    """
    return _run(discriminator_call, (real_inputs, fake_inputs, gan_type, real_label, fake_label,
                                     weight, aggregation, reduction))


if _ext.available():  # the registrations need the schemas of the loaded library
    torch.library.register_fake("ganloss::adversarial_loss")(_adversarial_loss_fake)
    torch.library.register_fake("ganloss::adversarial_loss_backward")(
        _adversarial_loss_backward_fake)
    torch.library.register_autograd("ganloss::adversarial_loss", _backward,
                                    setup_context=_setup_context)
