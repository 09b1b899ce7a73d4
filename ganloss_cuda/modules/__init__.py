"""nn.Module drop-ins whose constructor arguments and outputs match the anchors' losses, one
module per area (pixel, perceptual, adversarial); this file only re-exports.

Layer rule: an area's module imports torch, ``functional``, ``reference`` and ``_args`` only.
"""
from .adversarial import (CycleGANLoss, FeatureMatchingLoss, GANLoss, Pix2PixHDGANLoss,
                          SPADEGANLoss, hinge_d_loss, vanilla_d_loss)
from .perceptual import PerceptualStyleLoss, PiqStyleLoss, StyleLoss, StyleLossLayer, VGGLoss
from .pixel import CharbonnierLoss, L1Loss, MSELoss

__all__ = ["L1Loss", "MSELoss", "CharbonnierLoss", "VGGLoss", "FeatureMatchingLoss", "StyleLoss",
           "PerceptualStyleLoss", "PiqStyleLoss", "StyleLossLayer", "GANLoss", "Pix2PixHDGANLoss",
           "SPADEGANLoss", "CycleGANLoss", "hinge_d_loss", "vanilla_d_loss"]
