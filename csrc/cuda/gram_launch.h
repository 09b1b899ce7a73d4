// Torch-free interface between cuda/gram_driver.cpp and the Gram / style-loss kernels in
// cuda/gram.cu (math and work decomposition in common/gram.h).
#pragma once

#include <cuda_runtime_api.h>

#include "../common/gram.h"

namespace ganloss {

// Features [B, C, K]: element (b, c, k) at p[b * sb + c * sc + k * sk], with sk == 1
// (contiguous NCHW) or sc == 1 (channels_last) for the vector paths, any strides otherwise.
template <typename P>
struct GramStrided {
  P p;  // nullptr: absent
  int64_t sb, sc, sk;
};
using GramOperand = GramStrided<const void*>;
using GramOutput = GramStrided<void*>;

struct GramLayer {
  GramOperand x, y;        // features; y.p null when the target is a Gram (or for gram_matrix)
  const void* target;      // target Gram [B or 1, C, C], accumulation type, contiguous, or null
  int64_t target_sb;       // C*C, or 0 for a broadcast [1, C, C] target
  void* diff;              // forward: D (or G) [B, C, C] out; backward: D (or dG) in; acc type
  GramOutput dx, dy;       // backward outputs, strides like x / y (p null: not computed)
  void* dtarget;           // backward: dG_target like target (null: not computed)
  int batch, channels;
  int64_t k;
  int tiles;               // gram_tiles(C)
  int k_tiles;             // ceil(K / kGramTile): dF column tiles
  GramSplit split;
  int64_t partial_begin;   // this layer's first partial tile in the workspace
  int tile_begin;          // this layer's first tile (sample, pair) in tile_sums
  int seg_begin, segments; // rows of stats: B (per_sample) or 1
  int sample_begin;        // this layer's first sample in `exponents`
  int work_begin;          // this layer's first block in the current launch (set per kernel)
  double scale, weight;    // s_l = 1/norm, w_l
};

// One launch covers up to kGramLayersPerLaunch layers and is passed by value (__grid_constant__).
struct GramLaunch {
  GramLayer layers[kGramLayersPerLaunch];
  int num_layers;
  int num_blocks;          // blocks of this launch
  Criterion criterion;
  Reduction reduction;
  bool style;              // style_loss (criterion, stats); else gram_matrix
  // Forward.
  void* partials;          // [partial tiles, 64, 64] acc type
  double* tile_sums;       // [tiles] criterion terms of D, mirrored entries counted
  double* stats;           // [segments, kStyleStatCols]
  double* terms;           // [segments] loss terms
  void* loss;              // [] or [B], double if loss_is_f64 else float
  bool last_launch;        // the finalize of this launch also writes the loss
  int total_layers, batch; // of the whole op
  bool loss_is_f64;
  // Backward.
  const void* grad;        // upstream gradient [] or [B] (style), like loss
  const double* grad_factors;  // stats from the forward (column 1: f_seg)
  int* exponents;          // per (layer, sample): A is scaled by 2^e before its 16-bit split;
                           // null: no split (L1's sign is exact in 16 bits) and e = 0
};

// Forward GEMM: the partial sums of [X|Y][X|-Y]^T (or X X^T) per (sample, tile pair, slab).
cudaError_t launch_gram_partials(const GramLaunch& p, DType dtype, bool tf32, cudaStream_t stream);
// Partials -> D (or G) = s * sum - target, mirrored; style: per-tile sums of criterion terms.
cudaError_t launch_gram_reduce(const GramLaunch& p, DType dtype, cudaStream_t stream);
// Tile sums -> stats, segment terms, and (last launch) the loss. One block.
cudaError_t launch_style_loss_finalize(const GramLaunch& p, cudaStream_t stream);
// Backward, 16-bit features: the exponent e per (layer, sample) from max |A|.
cudaError_t launch_gram_absmax(const GramLaunch& p, cudaStream_t stream);
// Backward GEMM: dX = coef A X, dY = -coef A Y (A = criterion'(D) or dG + dG^T).
cudaError_t launch_gram_backward(const GramLaunch& p, DType dtype, bool tf32, cudaStream_t stream);
// dG_target = -g f criterion'(D), summed over the batch for a broadcast target.
cudaError_t launch_style_loss_target_grad(const GramLaunch& p, DType dtype, cudaStream_t stream);

// Blocks each kernel gives a layer (the driver's work_begin prefixes).
inline int gram_partials_blocks(const GramLayer& L) {
  return L.batch * gram_tile_pairs(L.tiles) * L.split.splits;
}
inline int gram_reduce_blocks(const GramLayer& L) { return L.batch * gram_tile_pairs(L.tiles); }
inline int gram_backward_blocks(const GramLayer& L) {
  return (int(L.dx.p != nullptr) + int(L.dy.p != nullptr)) * L.batch * L.tiles * L.k_tiles;
}
constexpr int kGramTargetGradElements = 1024;  // dG_target elements per block
inline int style_loss_target_grad_blocks(const GramLayer& L) {
  const int64_t n = (L.target_sb ? int64_t(L.batch) : 1) * L.channels * L.channels;
  return L.dtarget ? int((n + kGramTargetGradElements - 1) / kGramTargetGradElements) : 0;
}

}  // namespace ganloss
