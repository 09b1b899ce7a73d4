"""ganloss_cuda: fused CUDA/CPU kernels for GAN, super-resolution and style-transfer losses.

Layers: ``ops`` (the registered torch ops and the public function of each loss family) ->
``functional`` (re-exports them; same signatures as ``reference``) -> ``modules`` (nn.Module
drop-ins for the anchors' losses). ``_args`` holds the argument helpers every family shares,
``_ext`` loads the library and decides when to fall back to ``reference``.

Layer rule: re-exports only.
"""
from . import functional, modules, reference
from ._ext import FallbackWarning, available, load_error
from .functional import (adaptive_generator_weight, adopt_weight, adversarial_loss,
                         discriminator_loss, feature_loss, gram_matrix, gradient_penalty,
                         r1_penalty, style_loss)
from .modules import (CharbonnierLoss, CycleGANLoss, FeatureMatchingLoss, GANLoss, L1Loss,
                      MSELoss, PerceptualStyleLoss, PiqStyleLoss, Pix2PixHDGANLoss, SPADEGANLoss,
                      StyleLoss, StyleLossLayer, VGGLoss, hinge_d_loss, vanilla_d_loss)

__version__ = "0.1.0"
__all__ = ["available", "load_error", "functional", "modules", "reference", "feature_loss",
           "gram_matrix", "style_loss", "adversarial_loss", "discriminator_loss",
           "FallbackWarning", "L1Loss", "MSELoss", "CharbonnierLoss", "VGGLoss",
           "FeatureMatchingLoss", "StyleLoss", "PerceptualStyleLoss", "PiqStyleLoss",
           "StyleLossLayer", "GANLoss", "Pix2PixHDGANLoss", "SPADEGANLoss", "CycleGANLoss",
           "hinge_d_loss", "vanilla_d_loss", "gradient_penalty", "r1_penalty",
           "adaptive_generator_weight", "adopt_weight"]
