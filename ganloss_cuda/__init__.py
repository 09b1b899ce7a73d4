"""ganloss_cuda: fused CUDA/CPU kernels for GAN, super-resolution and style-transfer losses.

Layers: ``ops`` (the registered torch ops) -> ``functional`` (validated functions, same
signatures as ``reference``) -> ``modules`` (nn.Module drop-ins for the anchors' losses).
"""
from . import _ext
from ._ext import available, load_error

if _ext.available():
    from . import ops  # noqa: F401  (fake kernels and autograd for the loaded ops)

from . import functional, modules, reference  # noqa: E402
from .functional import FallbackWarning, feature_loss  # noqa: E402
from .modules import (CharbonnierLoss, FeatureMatchingLoss, L1Loss, MSELoss,  # noqa: E402
                      VGGLoss)

__version__ = "0.1.0"
__all__ = ["available", "load_error", "functional", "modules", "reference", "feature_loss",
           "FallbackWarning", "L1Loss", "MSELoss", "CharbonnierLoss", "VGGLoss",
           "FeatureMatchingLoss"]
