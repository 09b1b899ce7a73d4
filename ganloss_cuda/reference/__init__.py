"""Pure-torch references of every loss family, with the signatures of ``ganloss_cuda.functional``:
the tests' oracle and the public functions' fallback. One module per family; this file only
re-exports.

Layer rule: a family's module imports torch and ``_args`` only.
"""
from .adversarial import (ADV_REDUCTIONS, AGGREGATIONS, GAN_TYPES, adversarial_call,
                          adversarial_loss, adversarial_terms, discriminator_call,
                          discriminator_loss, loss_of_call)
from .feature import (CRITERIA, REDUCTIONS, check_feature_args, elementwise, feature_args,
                      feature_loss)
from .regularizers import (INTERPOLATIONS, NORM_MODES, adaptive_generator_weight, adopt_weight,
                           gradient_penalty, r1_penalty)
from .gram import (NORMALIZATIONS, STYLE_CRITERIA, STYLE_REDUCTIONS, check_style_args,
                   gram_matrix, gram_view, style_args, style_loss)

__all__ = ["ADV_REDUCTIONS", "AGGREGATIONS", "GAN_TYPES", "adversarial_call", "adversarial_loss",
           "adversarial_terms", "discriminator_call", "discriminator_loss", "loss_of_call",
           "CRITERIA", "REDUCTIONS", "check_feature_args", "elementwise",
           "feature_args", "feature_loss", "NORMALIZATIONS", "STYLE_CRITERIA",
           "STYLE_REDUCTIONS", "check_style_args", "gram_matrix", "gram_view", "style_args",
           "style_loss", "INTERPOLATIONS", "NORM_MODES", "adaptive_generator_weight",
           "adopt_weight", "gradient_penalty", "r1_penalty"]
