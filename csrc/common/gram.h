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

// ---------------------------------------------------------------------------------------------
// Work decomposition of the CUDA kernels (cuda/gram.cu), from the shapes alone.
//
// Tiles: the C rows of a sample's Gram are cut into kGramTile-row tiles; only the tile pairs
// (i, j) with i <= j are computed (D is symmetric), numbered row by row of the upper triangle,
// and tile (i, j) is mirrored to (j, i) when D is written. Split-K: K = H*W is cut into slabs of
// `slab` elements (a multiple of kGramKStep); their count depends on B, C and K only (never on
// the GPU), and a tile's partial sums are reduced in slab order 0, 1, ..., so D and the loss are
// bitwise the same on any GPU. Partial p = (sample * pairs + pair) * splits + slab of a layer.

namespace ganloss {

constexpr int kGramTile = 64;               // Gram rows and columns per tile; dF columns per tile
constexpr int kGramKStep = 32;              // slabs are whole multiples of this many K elements
constexpr int64_t kGramMinSlab = 256;       // K elements per slab, at least (split layers)
constexpr int64_t kGramTargetBlocks = 512;  // forward blocks a layer is split to reach
constexpr int64_t kGramMaxSplits = 64;
constexpr int kGramLayersPerLaunch = 12;    // layers per by-value CUDA parameter block (< 4 KB)

GANLOSS_HD int gram_tiles(int64_t channels) {
  return int((channels + kGramTile - 1) / kGramTile);
}

GANLOSS_HD int gram_tile_pairs(int tiles) { return tiles * (tiles + 1) / 2; }

// The tile pair number p: (i, j), i <= j, row by row of the upper triangle.
GANLOSS_HD void gram_tile_pair(int p, int tiles, int& i, int& j) {
  i = 0;
  while (p >= tiles - i) {
    p -= tiles - i;
    ++i;
  }
  j = i + p;
}

struct GramSplit {
  int splits;    // slabs per tile pair, at least 1
  int64_t slab;  // K elements per slab (the last one may be shorter); 0 when K = 0
};

// Enough slabs for kGramTargetBlocks blocks per layer, each of at least kGramMinSlab elements.
GANLOSS_HD GramSplit gram_split(int64_t batch, int64_t channels, int64_t k) {
  const int64_t tiles = batch * gram_tile_pairs(gram_tiles(channels));
  int64_t want = tiles > 0 ? (kGramTargetBlocks + tiles - 1) / tiles : 1;
  const int64_t most = k / kGramMinSlab;
  want = want < most ? want : most;
  want = want < kGramMaxSplits ? want : kGramMaxSplits;
  want = want > 1 ? want : 1;
  int64_t slab = (k + want - 1) / want;
  slab = (slab + kGramKStep - 1) / kGramKStep * kGramKStep;
  return {slab > 0 ? int((k + slab - 1) / slab) : 1, slab};
}

}  // namespace ganloss
