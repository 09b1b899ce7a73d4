"""Public functions of every loss family, re-exported from ``ops``. Signatures match
``ganloss_cuda.reference``; the compiled ops run when they are loaded and have a kernel for the
inputs' device, the reference otherwise (one FallbackWarning).

The regularisers (gradient_penalty, r1_penalty, adaptive_generator_weight, adopt_weight)
differentiate the discriminator twice, so they are plain autograd: the reference's functions.

Layer rule: re-exports only.
"""
from ._ext import FallbackWarning
from .ops import adversarial_loss, discriminator_loss, feature_loss, gram_matrix, style_loss
from .reference import adaptive_generator_weight, adopt_weight, gradient_penalty, r1_penalty

__all__ = ["FallbackWarning", "adversarial_loss", "discriminator_loss", "feature_loss",
           "gram_matrix", "style_loss", "adaptive_generator_weight", "adopt_weight",
           "gradient_penalty", "r1_penalty"]
