// Gram matrix and multi-layer style loss: torch-free math shared by the CPU and CUDA kernels.
//
//   G     = s * F F^T                               F: [C, K] per sample (K = H*W), s = 1/norm
//   D_l   = s_l * (X_l X_l^T - Y_l Y_l^T)           targets as features
//         = s_l * X_l X_l^T - G_l                   targets as (precomputed) Grams
//   loss  = sum_l w_l * reduce(criterion(D_l))      criterion l1 |d|, mse d^2, fro ||D||_F
//
// D is formed in the accumulation type (fp32, fp64 for fp64 inputs), never from 16-bit Grams,
// and never through the expanded norm ||Gx||^2 - 2<Gx,Gy> + ||Gy||^2 (it cancels).
// A reduction group ("segment") is a layer (mean, sum) or one sample of it (per_sample); its
// count is B*C*C or C*C Gram entries. Backward, with E = dL/dD (symmetric):
//   dX = 2 s E X,  dY = -2 s E Y,  dG = -E  (summed over the batch for a broadcast [1, C, C] G)
//   E_ij = g_n * f_seg * criterion_grad(D_ij), f_seg = style_group(...).grad_factor.
#pragma once

#include "criterion.h"
#include "hd.h"

namespace ganloss {

constexpr int kStyleStatCols = 2;  // per-segment stats: sum of terms, gradient factor f_seg

// A segment's loss term and d loss / d (criterion term) for an upstream gradient of 1, with the
// static 1/count of a mean folded in (so the kernels need no per-layer scale besides f_seg).
GANLOSS_HD GroupTerm style_group(Criterion c, Reduction r, double weight, double sum,
                                 int64_t count) {
  GroupTerm t = reduce_group(c, r, false, weight, sum, 0.0, count);
  if (c != Criterion::Fro && r != Reduction::Sum && count > 0) t.grad_factor = weight / double(count);
  return t;
}

// Gram entries per segment.
GANLOSS_HD int64_t style_segment_count(Reduction r, int64_t batch, int64_t channels) {
  return (r == Reduction::PerSample ? 1 : batch) * channels * channels;
}

}  // namespace ganloss
