"""The compiled ops, one module per loss family (fake kernels, autograd, the public function);
this file only gathers them. ``OPS``: every family's op names, as csrc/ganloss.cpp declares them.

Layer rule: a family's module imports torch, ``_args``, ``_ext`` and ``reference`` only.
"""
from . import adversarial, feature, gram
from .adversarial import adversarial_loss, discriminator_loss
from .feature import compiled_feature_loss, feature_loss
from .gram import gram_matrix, style_loss

OPS = feature.OPS + gram.OPS + adversarial.OPS

__all__ = ["OPS", "adversarial_loss", "compiled_feature_loss", "discriminator_loss",
           "feature_loss", "gram_matrix", "style_loss"]
