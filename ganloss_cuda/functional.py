"""Public functions of every loss family, re-exported from ``ops``. Signatures match
``ganloss_cuda.reference``; the compiled ops run when they are loaded and have a kernel for the
inputs' device, the reference otherwise (one FallbackWarning).

Layer rule: re-exports only.
"""
from ._ext import FallbackWarning
from .ops import adversarial_loss, discriminator_loss, feature_loss, gram_matrix, style_loss

__all__ = ["FallbackWarning", "adversarial_loss", "discriminator_loss", "feature_loss",
           "gram_matrix", "style_loss"]
