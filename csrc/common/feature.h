// Multi-layer feature loss: torch-free parameters and the math shared by the CPU and CUDA kernels.
//
//   loss = sum_l w_l * reduce_l( criterion(x_l - y_l) [* m_l] )
//
// Every layer l is viewed as [R_l, row_len_l] rows in a dense layout: one row per sample when
// the reduction is per sample or a one-channel mask needs the sample index, else the whole layer
// as one row (so the cost never depends on how a layer is split along dim 0). Work is split into
// chunks of `chunk` elements (chunk_elements(): from the shapes alone) that never straddle a row.
// A reduction group ("segment") is a whole layer (mean, sum) or one sample (per_sample). Terms are
// computed in the accumulation type (fp32, fp64 for fp64 inputs) and summed in fp64; chunk sums
// are reduced in a fixed order into segments, segments into the loss: the result is bitwise
// reproducible and independent of the number of threads or blocks.
#pragma once

#include <type_traits>

#include "chunks.h"
#include "criterion.h"
#include "fast_divider.h"
#include "hd.h"

namespace ganloss {

constexpr int kMaxLayersPerLaunch = 24;  // layers per by-value CUDA parameter block (< 4 KB)
constexpr int kStatCols = 3;          // per-segment stats: sum of terms, sum of mask, grad factor

// Where the mask value of element j of row r is: mask[r * mask_mod + (j / mask_div(L)) % mask_mod].
enum class MaskKind : int32_t {
  Full = 0,         // the input's shape and layout: j
  ChannelNCHW = 1,  // one channel over contiguous (N, C, ...), HW pixels: j % HW
  ChannelNHWC = 2,  // one channel over channels_last (N, H, W, C), or (N, C, 1...): j / C
};

struct FeatureLayer {
  const void* x;              // input, [rows, row_len] dense
  const void* y;              // target, same layout as x
  void* dx;                   // gradient wrt x, same layout (nullptr: not computed)
  void* dy;                   // gradient wrt y, same layout (nullptr: not computed)
  const void* mask;           // element weights (nullptr: none) in the input's dtype, or in the
                              // accumulation type when mask_is_acc
  int64_t rows;               // R: N, or 1 when the layer is read as one row (0 if empty)
  int64_t row_len;            // numel / R
  int64_t rows_per_segment;   // 1 (per_sample) or R (mean, sum: the whole layer); at least 1
  int64_t segments;           // reduction groups: N (per_sample) or 1
  int64_t mask_mod;           // mask elements per row: row_len (Full) or HW (one channel)
  int64_t chunk;              // elements per chunk (the same in every layer of an op)
  int64_t chunks_per_row;     // ceil(row_len / chunk)
  int64_t chunk_begin;        // global index of the layer's first chunk
  int64_t seg_begin;          // global index of the layer's first segment
  double weight;              // per-layer weight w_l
  double grad_scale;          // static part of d loss / d term, see static_grad_scale()
  FastDivider row_of_chunk;   // by chunks_per_row; a layer has fewer than 2^31 chunks
  FastDivider mask_divider;   // by HW (ChannelNCHW) or C (ChannelNHWC); then row_len < 2^31
  MaskKind mask_kind;
  bool mask_is_acc;           // the mask is in the accumulation type (else in the input's dtype)
};

// ---------------------------------------------------------------------------------------------
// Per-element math.

// Mask index of element j: (j / mask_div(L)) % mask_mod, where mask_div is the number of
// consecutive elements that share a mask value (C for ChannelNHWC, else 1).
GANLOSS_HD int64_t mask_div(const FeatureLayer& L) {
  return L.mask_kind == MaskKind::ChannelNHWC ? L.mask_divider.divisor : 1;
}

// Gradient of one element: scale * rho'(d) [* m], all in the accumulation type. The
// forward passes scale = s_l (upstream gradient 1, fp32/fp64 inputs only); the backward passes
// s_l * g * f_seg, so a 16-bit gradient is rounded once, after loss scaling is applied.
template <Criterion C, bool Masked, typename A>
GANLOSS_HD A element_grad(A d, A eps, A scale, A m) {
  A g = scale * criterion_grad<C>(d, eps);
  if constexpr (Masked) g *= m;
  return g;
}

// 16-bit inputs get no gradient from the forward: their backward computes it in one rounding.
template <typename T>
constexpr bool kRoundOnceInBackward = sizeof(T) == 2;

// ---------------------------------------------------------------------------------------------
// Work decomposition.

struct ChunkRange {
  int layer;      // index into the layer array
  int64_t row;    // r
  int64_t begin;  // first element (within row r, i.e. j)
  int64_t end;    // one past the last element (within row r)
};

// The layer owning a chunk is the last one that starts at or before it (empty layers own none).
GANLOSS_HD ChunkRange locate_chunk(const FeatureLayer* layers, int num_layers, int64_t chunk) {
  int l = 0;
  while (l + 1 < num_layers && layers[l + 1].chunk_begin <= chunk) ++l;
  const FeatureLayer& L = layers[l];
  const uint32_t local = uint32_t(chunk - L.chunk_begin);
  const uint32_t row = L.row_of_chunk.div(local);
  const int64_t begin = int64_t(local - row * L.row_of_chunk.divisor) * L.chunk;
  const int64_t end = begin + L.chunk < L.row_len ? begin + L.chunk : L.row_len;
  return {l, row, begin, end};
}

// The segment of row r within its layer (0 .. segments-1), e.g. the index of its upstream gradient.
// rows_per_segment is 1 or all rows, so this is row / rows_per_segment without a division.
GANLOSS_HD int64_t local_segment(const FeatureLayer& L, int64_t row) {
  return L.rows_per_segment == 1 ? row : 0;
}

// Chunks [first, first + count) of the layer hold the elements of local segment s, in row order.
GANLOSS_HD int64_t segment_first_chunk(const FeatureLayer& L, int64_t s) {
  return L.chunk_begin + s * L.rows_per_segment * L.chunks_per_row;
}
GANLOSS_HD int64_t segment_chunks(const FeatureLayer& L) {
  return L.rows > 0 ? L.rows_per_segment * L.chunks_per_row : 0;
}

// ---------------------------------------------------------------------------------------------
// Reduction of the summed terms.

// d loss / d (summed term) that is known before any data is read: w_l / count for a plain mean;
// 1 where the per-segment grad factor from reduce_group() carries the weight (a huge weight then
// never multiplies a term before the division). count = elements in one segment.
GANLOSS_HD double static_grad_scale(Criterion c, Reduction r, bool masked, double weight,
                                    int64_t count) {
  if (c == Criterion::Fro || masked || r == Reduction::Sum) return 1.0;
  return count > 0 ? weight / double(count) : 0.0;
}

// Turns a layer's segment sums (stats columns 0 and 1) into its loss terms (one per segment) and
// writes each segment's grad factor (column 2).
GANLOSS_HD void finalize_layer(const FeatureLayer& L, Criterion c, Reduction r, double* stats,
                               double* terms) {
  for (int64_t s = 0; s < L.segments; ++s) {
    double* st = stats + kStatCols * (L.seg_begin + s);
    const GroupTerm t = reduce_group(c, r, L.mask != nullptr, L.weight, st[0], st[1],
                                     L.rows_per_segment * L.row_len);
    terms[L.seg_begin + s] = t.value;
    st[2] = t.grad_factor;
  }
}

// Loss entry `out_index` from the segment terms: Mean/Sum sum the layer terms (one segment per
// layer), PerSample sums sample out_index over layers (all layers share N: segment l * N + n).
GANLOSS_HD double combine_terms(Reduction r, const double* terms, int64_t num_layers, int64_t batch,
                                int64_t out_index) {
  double total = 0.0;
  if (r == Reduction::PerSample) {
    for (int64_t l = 0; l < num_layers; ++l) total += terms[l * batch + out_index];
  } else {
    for (int64_t l = 0; l < num_layers; ++l) total += terms[l];
  }
  return total;
}

// Calls f(std::integral_constant<Criterion, c>{}) so kernels can take the criterion as a
// template argument (host code only).
template <typename F>
void dispatch_criterion(Criterion c, F&& f) {
  using C = Criterion;
  switch (c) {
    case C::L1: f(std::integral_constant<C, C::L1>{}); break;
    case C::MSE: f(std::integral_constant<C, C::MSE>{}); break;
    case C::Charbonnier: f(std::integral_constant<C, C::Charbonnier>{}); break;
    case C::Fro: f(std::integral_constant<C, C::Fro>{}); break;
  }
}

}  // namespace ganloss
