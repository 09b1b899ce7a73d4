// CUDA kernels of the Gram matrix and the multi-layer style loss (math and work decomposition in
// common/gram.h). Torch-free: cuda/gram_driver.cpp fills GramLaunch and calls the launchers at
// the bottom; shared device helpers in cuda/cuda_helpers.cuh. Blocks of 256 threads; at most
// kGramLayersPerLaunch layers per launch, so a whole style loss is a few launches.
//
// Engines (the GEMM inner product): fp16/bf16 -> tensor cores through nvcuda::wmma (m16n16k16,
// fp32 accumulators); fp32 -> exact FFMA, or wmma tf32 (m16n16k8) when allow_tf32; fp64 -> FFMA in
// double. Features are staged tile by tile into shared memory from either layout (K or C axis of
// stride 1: 16-byte vector loads along it when aligned; scalar loads otherwise and at tails).
//
// gram_partials : per (sample, tile pair i <= j, K slab): P = [X_i|Y_i] [X_j|-Y_j]^T over the slab
//                 (Y negated in shared memory: exact), i.e. X_i X_j^T - Y_i Y_j^T in one fp32
//                 (fp64) accumulator; no Y for a Gram target or gram_matrix.
//                 Traffic: reads X (and Y) tiles(C)+1 / 2 times; writes 16 KB (32 KB) per block.
// gram_reduce   : per (sample, tile pair): D = s * sum of the slab partials in slab order (fp64)
//                 - G_target, rounded once, written to (i, j) and mirrored to (j, i); style: the
//                 fp64 sum of criterion terms of the tile (mirrored entries twice) to tile_sums.
// style_loss_finalize: one block: tile sums -> segment sums (one warp per segment, fixed order),
//                 stats (sum, f_seg = style_group), segment terms, and the loss.
// gram_absmax   : 16-bit backward: per (layer, sample) the power of two 2^e that brings
//                 max |A| into [2^14, 2^15), so A * 2^e = hi + lo splits into two fp16 values.
// gram_backward : per (operand, sample, 64 rows of C, 64 columns of K):
//                 dF = coef * A F with A = criterion'(D) (style: coef = +-2 s g_n f_seg, - for Y)
//                 or A = dG + dG^T (gram_matrix_backward: coef = s). The A tile is converted
//                 while staged: 16-bit: hi = round16(a 2^e), lo = round16(a 2^e - hi), two mma
//                 per step (one for L1's sign); tf32: round to tf32; FFMA: as is. coef * 2^-e is
//                 applied to the fp32 (fp64) accumulator, then dF is rounded once to its dtype.
//                 Traffic: reads F tiles(C) times, D (or dG, twice) k_tiles times; writes dF.
// style_loss_target_grad: dG_target = -g_n f_seg criterion'(D), elementwise, summed over the
//                 batch in sample order for a broadcast [1, C, C] target.
#include <mma.h>

#include <type_traits>

#include "cuda_helpers.cuh"
#include "gram_launch.h"

namespace ganloss {
namespace {

using namespace nvcuda;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kT = kGramTile;
static_assert(sizeof(GramLaunch) <= 4096, "kernel parameters must fit in 4 KB");
static_assert(kT == 64 && kThreads == 256, "the thread layouts below assume 64x64 tiles");

template <typename I>
__device__ __forceinline__ I min_(I a, I b) { return a < b ? a : b; }
template <typename I>
__device__ __forceinline__ I max_(I a, I b) { return a < b ? b : a; }

// ---------------------------------------------------------------------------------------------
// Engines: the inner product of two tiles staged in shared memory (element type S), summed into
// the block's 64x64 accumulator. B(k, n) is at bs[k * kBk + n * kBn] (forward: B = X_j^T, stored
// [n][k]; backward: B = F, stored [k][n]).

// FFMA: thread t owns rows t / 16 + 16 r and columns t % 16 + 16 c, r, c < 4 (conflict-free
// shared loads: a half warp reads 16 consecutive columns, one row).
template <typename S>
struct FfmaEngine {
  S acc[4][4];
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[r][c] = S(0);
  }
  template <int kDepth, int kLda, int kBk, int kBn>
  __device__ __forceinline__ void mma(const S* as, const S* bs) {
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll 4
    for (int k = 0; k < kDepth; ++k) {
      S a[4], b[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) a[r] = as[(ty + 16 * r) * kLda + k];
#pragma unroll
      for (int c = 0; c < 4; ++c) b[c] = bs[k * kBk + (tx + 16 * c) * kBn];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = fma(a[r], b[c], acc[r][c]);
    }
  }
  // f(row, column, value) for each of the thread's elements.
  template <typename F>
  __device__ __forceinline__ void for_each(F f) const {
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) f(ty + 16 * r, tx + 16 * c, acc[r][c]);
  }
};

// WMMA: warp w owns the 16x32 strip at rows (w / 2) * 16, columns (w % 2) * 32 (two fragments).
// E: the fragment element type (T, or precision::tf32 for float S); kK: its K (16, tf32: 8).
template <typename S, typename E, int kK, typename BLayout>
struct WmmaEngine {
  wmma::fragment<wmma::accumulator, 16, 16, kK, float> acc[2];
  __device__ __forceinline__ int row0() const { return threadIdx.x / 32 / 2 * 16; }
  __device__ __forceinline__ int col0() const { return threadIdx.x / 32 % 2 * 32; }
  __device__ __forceinline__ void zero() {
    wmma::fill_fragment(acc[0], 0.0f);
    wmma::fill_fragment(acc[1], 0.0f);
  }
  template <int kDepth, int kLda, int kBk, int kBn>
  __device__ __forceinline__ void mma(const S* as, const S* bs) {
    constexpr int kLdb = kBk == 1 ? kBn : kBk;
#pragma unroll
    for (int k = 0; k < kDepth; k += kK) {
      wmma::fragment<wmma::matrix_a, 16, 16, kK, E, wmma::row_major> fa;
      wmma::load_matrix_sync(fa, as + row0() * kLda + k, kLda);
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        wmma::fragment<wmma::matrix_b, 16, 16, kK, E, BLayout> fb;
        wmma::load_matrix_sync(fb, bs + k * kBk + (col0() + 16 * c) * kBn, kLdb);
        wmma::mma_sync(acc[c], fa, fb, acc[c]);
      }
    }
  }
  // Stores the block's 64x64 accumulator to out (row stride ld floats, 32-byte aligned).
  __device__ __forceinline__ void store(float* out, int ld) const {
    wmma::store_matrix_sync(out + row0() * ld + col0(), acc[0], ld, wmma::mem_row_major);
    wmma::store_matrix_sync(out + row0() * ld + col0() + 16, acc[1], ld, wmma::mem_row_major);
  }
};

// The engine of input type T: shared element type S, K elements per main-loop step, row pitch
// of a [64][kStep] tile (kLdA): padded by 16 bytes for wmma (its ldm must be a multiple of 16
// bytes), by one element for FFMA's strided reads.
template <typename T, bool Tf32, typename BLayout>
struct EngineOf {
  static constexpr bool kWmma = sizeof(T) == 2 || Tf32;
  using S = T;
  static constexpr int kStep = sizeof(T) == 8 ? 16 : 32;
  static constexpr int kLdA = kWmma ? kStep + 16 / int(sizeof(T)) : kStep + 1;
  using E = std::conditional_t<Tf32, wmma::precision::tf32, T>;
  using type = std::conditional_t<kWmma, WmmaEngine<S, E, Tf32 ? 8 : 16, BLayout>, FfmaEngine<S>>;
};

// ---------------------------------------------------------------------------------------------
// Staging.

// Copies the R x W window of a strided matrix (element (r, w) at src[r * sr + w * sw]; rows >=
// rows and columns >= cols read as 0) to put(r, w, value). 16-byte loads along w when sw == 1, or
// along r when sr == 1, for a whole aligned window (all vectors are loaded before any is put);
// scalar loads otherwise.
template <int R, int W, typename T, typename Put>
__device__ __forceinline__ void stage(const T* __restrict__ src, int64_t sr, int64_t sw, int rows,
                                      int cols, Put put) {
  constexpr int V = Vec<T>::kSize;
  constexpr int kPer = R * W / V / kThreads;  // vectors per thread
  static_assert(kPer >= 1 && R * W == kPer * V * kThreads, "whole vectors per thread");
  const bool along_w = sw == 1 && cols == W && (sr * int64_t(sizeof(T))) % 16 == 0;
  const bool along_r = !along_w && sr == 1 && rows == R && (sw * int64_t(sizeof(T))) % 16 == 0;
  if ((along_w || along_r) && aligned16(src)) {
    Vec<T> v[kPer];
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int i = threadIdx.x + u * kThreads;
      const int r = along_w ? i / (W / V) : i % (R / V) * V;
      const int w = along_w ? i % (W / V) * V : i / (R / V);
      if (along_w ? r < rows : w < cols) {
        v[u] = *reinterpret_cast<const Vec<T>*>(src + r * sr + w * sw);
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) v[u].v[e] = from_acc<T>(acc_t<T>(0));
      }
    }
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int i = threadIdx.x + u * kThreads;
      const int r = along_w ? i / (W / V) : i % (R / V) * V;
      const int w = along_w ? i % (W / V) * V : i / (R / V);
#pragma unroll
      for (int e = 0; e < V; ++e) put(along_w ? r : r + e, along_w ? w + e : w, v[u].v[e]);
    }
    return;
  }
  for (int i = threadIdx.x; i < R * W; i += kThreads) {
    const int r = i / W, w = i % W;
    put(r, w, r < rows && w < cols ? src[r * sr + w * sw] : from_acc<T>(acc_t<T>(0)));
  }
}

// v as stored in shared memory: tf32-rounded for the tf32 engine, negated when asked (exact).
template <typename T, bool Tf32>
__device__ __forceinline__ T smem_value(T v, bool negate) {
  if constexpr (Tf32) v = wmma::__float_to_tf32(v);
  return negate ? from_acc<T>(-to_acc(v)) : v;
}

// The layer that owns block `blk` of the launch: the last one whose first block is <= blk.
__device__ __forceinline__ int layer_of(const GramLaunch& p, int blk) {
  int l = 0;
  while (l + 1 < p.num_layers && p.layers[l + 1].work_begin <= blk) ++l;
  return l;
}

__host__ __device__ constexpr int align128(int bytes) { return (bytes + 127) / 128 * 128; }

// ---------------------------------------------------------------------------------------------
// Forward.

template <typename T, bool Tf32>
using FwdEngine = EngineOf<T, Tf32, wmma::col_major>;

template <typename T, bool Tf32>
constexpr int partials_smem() {
  using G = FwdEngine<T, Tf32>;
  return 4 * align128(kT * G::kLdA * int(sizeof(T)));
}

template <typename T, bool Tf32>
__global__ void __launch_bounds__(kThreads, 2)
gram_partials_kernel(const __grid_constant__ GramLaunch p) {
  using G = FwdEngine<T, Tf32>;
  using A = acc_t<T>;
  constexpr int kStep = G::kStep, kLd = G::kLdA;
  const int blk = blockIdx.x;
  const GramLayer& L = p.layers[layer_of(p, blk)];
  const int pairs = gram_tile_pairs(L.tiles);
  const int w = blk - L.work_begin;  // (sample * pairs + pair) * splits + slab
  const int slab = w % L.split.splits, tile = w / L.split.splits;
  const int b = tile / pairs;
  int ti, tj;
  gram_tile_pair(tile % pairs, L.tiles, ti, tj);
  const int rows_i = min_(kT, L.channels - ti * kT), rows_j = min_(kT, L.channels - tj * kT);
  const int64_t k0 = int64_t(slab) * L.split.slab;
  const int64_t k1 = min_(L.k, k0 + L.split.slab);

  unsigned char* smem = dynamic_smem<unsigned char>();
  constexpr int kBytes = align128(kT * kLd * int(sizeof(T)));
  T* xi = reinterpret_cast<T*>(smem);
  T* xj = reinterpret_cast<T*>(smem + kBytes);
  T* yi = reinterpret_cast<T*>(smem + 2 * kBytes);
  T* yj = reinterpret_cast<T*>(smem + 3 * kBytes);
  const GramOperand X = L.x, Y = L.y;
  const bool has_y = p.style && !L.target;  // targets as features

  typename G::type eng;
  eng.zero();
  for (int64_t k = k0; k < k1; k += kStep) {
    const int cols = int(min_(int64_t(kStep), k1 - k));
    const T* x = static_cast<const T*>(X.p) + b * X.sb + k * X.sk;
    auto put = [](T* s, bool neg) {
      return [=](int r, int c, T v) { s[r * kLd + c] = smem_value<T, Tf32>(v, neg); };
    };
    stage<kT, kStep>(x + ti * kT * X.sc, X.sc, X.sk, rows_i, cols, put(xi, false));
    stage<kT, kStep>(x + tj * kT * X.sc, X.sc, X.sk, rows_j, cols, put(xj, false));
    if (has_y) {
      const T* y = static_cast<const T*>(Y.p) + b * Y.sb + k * Y.sk;
      stage<kT, kStep>(y + ti * kT * Y.sc, Y.sc, Y.sk, rows_i, cols, put(yi, false));
      stage<kT, kStep>(y + tj * kT * Y.sc, Y.sc, Y.sk, rows_j, cols, put(yj, true));
    }
    __syncthreads();
    eng.template mma<kStep, kLd, 1, kLd>(xi, xj);
    if (has_y) eng.template mma<kStep, kLd, 1, kLd>(yi, yj);
    __syncthreads();  // before the next step overwrites the tiles
  }
  A* out = static_cast<A*>(p.partials) + (L.partial_begin + w) * (kT * kT);
  if constexpr (G::kWmma) {
    eng.store(out, kT);
  } else {
    eng.for_each([&](int r, int c, A v) { out[r * kT + c] = v; });
  }
}

template <typename A, Criterion C, bool kStyle>
__global__ void __launch_bounds__(kThreads) gram_reduce_kernel(const __grid_constant__ GramLaunch p) {
  __shared__ double smem[kWarps];
  constexpr int V = Vec<A>::kSize, kPer = kT * kT / V / kThreads;
  const int blk = blockIdx.x;
  const GramLayer& L = p.layers[layer_of(p, blk)];
  const int pairs = gram_tile_pairs(L.tiles);
  const int t = blk - L.work_begin;  // sample * pairs + pair
  const int b = t / pairs;
  int ti, tj;
  gram_tile_pair(t % pairs, L.tiles, ti, tj);
  const A* part = static_cast<const A*>(p.partials) +
                  (L.partial_begin + int64_t(t) * L.split.splits) * (kT * kT);
  double sum[kPer][V];
#pragma unroll
  for (int u = 0; u < kPer; ++u)
#pragma unroll
    for (int e = 0; e < V; ++e) sum[u][e] = 0.0;
  for (int s = 0; s < L.split.splits; ++s) {  // fixed order: slab 0, 1, ...
    Vec<A> v[kPer];
#pragma unroll
    for (int u = 0; u < kPer; ++u)
      v[u] = *reinterpret_cast<const Vec<A>*>(part + s * (kT * kT) + (threadIdx.x + u * kThreads) * V);
#pragma unroll
    for (int u = 0; u < kPer; ++u)
#pragma unroll
      for (int e = 0; e < V; ++e) sum[u][e] += double(v[u].v[e]);
  }
  const int64_t c = L.channels;
  A* d = static_cast<A*>(L.diff) + b * c * c;
  const A* target = L.target ? static_cast<const A*>(L.target) + b * L.target_sb : nullptr;
  double terms = 0.0;
#pragma unroll
  for (int u = 0; u < kPer; ++u)
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const int i = (threadIdx.x + u * kThreads) * V + e;
      const int64_t ci = ti * kT + i / kT, cj = tj * kT + i % kT;
      if (ci < c && cj < c) {
        double g = L.scale * sum[u][e];
        if (target) g -= double(target[ci * c + cj]);
        const A v = A(g);
        d[ci * c + cj] = v;
        if (ti != tj) d[cj * c + ci] = v;  // the mirrored tile
        if (kStyle) terms += (ti != tj ? 2.0 : 1.0) * criterion_value<C>(double(v), 0.0);
      }
    }
  if constexpr (kStyle) {
    terms = block_sum<kThreads>(terms, smem);
    if (threadIdx.x == 0) p.tile_sums[L.tile_begin + t] = terms;
  }
}

__global__ void __launch_bounds__(kThreads)
style_loss_finalize_kernel(const __grid_constant__ GramLaunch p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int first = p.layers[0].seg_begin;
  const GramLayer& last = p.layers[p.num_layers - 1];
  const int segments = last.seg_begin + last.segments - first;
  for (int g = warp; g < segments; g += kWarps) {
    int l = 0;  // the layer owning launch segment g
    while (l + 1 < p.num_layers && p.layers[l + 1].seg_begin - first <= g) ++l;
    const GramLayer& L = p.layers[l];
    const int seg = first + g - L.seg_begin;
    const int pairs = gram_tile_pairs(L.tiles);
    const int n = p.reduction == Reduction::PerSample ? pairs : L.batch * pairs;
    const double* tiles = p.tile_sums + L.tile_begin + seg * n;
    double s = 0.0;
    for (int k = lane; k < n; k += 32) s += tiles[k];
    s = warp_sum(s);
    if (lane == 0) {
      const int64_t count = style_segment_count(p.reduction, L.batch, L.channels);
      const GroupTerm t = style_group(p.criterion, p.reduction, L.weight, s, count);
      p.stats[kStyleStatCols * (L.seg_begin + seg)] = s;
      p.stats[kStyleStatCols * (L.seg_begin + seg) + 1] = t.grad_factor;
      p.terms[L.seg_begin + seg] = t.value;
    }
  }
  if (!p.last_launch) return;
  __syncthreads();
  const bool per_sample = p.reduction == Reduction::PerSample;
  const int outputs = per_sample ? p.batch : 1;
  for (int i = threadIdx.x; i < outputs; i += kThreads) {
    double v = 0.0;
    for (int l = 0; l < p.total_layers; ++l) v += p.terms[per_sample ? l * p.batch + i : l];
    if (p.loss_is_f64) static_cast<double*>(p.loss)[i] = v;
    else static_cast<float*>(p.loss)[i] = float(v);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward.

// Upstream gradient of sample b times its segment's f_seg (style), for an fp64 or fp32 grad.
__device__ __forceinline__ double upstream_factor(const GramLaunch& p, const GramLayer& L, int b) {
  const int i = p.reduction == Reduction::PerSample ? b : 0;
  const double g = p.loss_is_f64 ? static_cast<const double*>(p.grad)[i]
                                 : double(static_cast<const float*>(p.grad)[i]);
  return g * p.grad_factors[kStyleStatCols * (L.seg_begin + i) + 1];
}

// A(m, n) of sample b: criterion'(D) (style) or dG + dG^T (gram_matrix_backward), and the bound
// of max |A| from max |D| (or |dG|).
template <typename A>
__device__ __forceinline__ A a_value(const GramLaunch& p, const A* m, int64_t c, int64_t i,
                                     int64_t j) {
  if (!p.style) return m[i * c + j] + m[j * c + i];
  const A d = m[i * c + j];
  switch (p.criterion) {
    case Criterion::L1: return criterion_grad<Criterion::L1>(d, A(0));
    case Criterion::MSE: return criterion_grad<Criterion::MSE>(d, A(0));
    default: return d;  // Fro: 1/||D|| is in f_seg
  }
}

__global__ void __launch_bounds__(kThreads) gram_absmax_kernel(const __grid_constant__ GramLaunch p) {
  __shared__ float smem[kWarps];
  const int blk = blockIdx.x;
  const GramLayer& L = p.layers[layer_of(p, blk)];
  const int b = blk - L.work_begin;
  const int n = L.channels * L.channels;
  const float* m = static_cast<const float*>(L.diff) + int64_t(b) * n;
  float v = 0.0f;
  for (int i = threadIdx.x; i < n; i += kThreads) v = fmaxf(v, fabsf(m[i]));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w) v = fmaxf(v, smem[w]);
    // max |A| <= 2 max |D| (mse, dG + dG^T) or max |D| (fro)
    const float bound = (!p.style || p.criterion == Criterion::MSE) ? 2.0f * v : v;
    int e = 0;
    if (bound > 0.0f && bound <= 3.0e38f) e = min_(120, max_(-120, 14 - ilogbf(bound)));
    p.exponents[L.sample_begin + b] = e;
  }
}

template <typename T, bool Tf32>
using BwdEngine = EngineOf<T, Tf32, wmma::row_major>;

// Row pitch of the backward's [kStep][64] tile of F: padded by 16 bytes for wmma.
template <typename T, bool Tf32>
constexpr int backward_ldb() {
  return BwdEngine<T, Tf32>::kWmma ? kT + 16 / int(sizeof(T)) : kT;
}

template <typename T, bool Tf32>
constexpr int backward_smem() {
  using G = BwdEngine<T, Tf32>;
  constexpr int a = align128(kT * G::kLdA * int(sizeof(T)));
  constexpr int b = align128(G::kStep * backward_ldb<T, Tf32>() * int(sizeof(T)));
  constexpr int c = G::kWmma ? kT * (kT + 4) * int(sizeof(float)) : 0;  // the fp32 result tile
  return (sizeof(T) == 2 ? 2 : 1) * a + b + c;
}

template <typename T, bool Tf32>
__global__ void __launch_bounds__(kThreads, 2)
gram_backward_kernel(const __grid_constant__ GramLaunch p) {
  using G = BwdEngine<T, Tf32>;
  using A = acc_t<T>;
  constexpr int kStep = G::kStep, kLdA = G::kLdA, kLdB = backward_ldb<T, Tf32>();
  constexpr bool kSplit = sizeof(T) == 2;
  const int blk = blockIdx.x;
  const GramLayer& L = p.layers[layer_of(p, blk)];
  int w = blk - L.work_begin;  // ((operand * B + sample) * tiles + m tile) * k_tiles + n tile
  const int tn = w % L.k_tiles;
  w /= L.k_tiles;
  const int tm = w % L.tiles;
  w /= L.tiles;
  const int b = w % L.batch;
  const bool is_y = !L.dx.p || w >= L.batch;
  const GramOperand F = is_y ? L.y : L.x;
  const GramOutput D = is_y ? L.dy : L.dx;
  const int64_t c = L.channels;
  const int m0 = tm * kT;
  const int64_t n0 = int64_t(tn) * kT;
  const int rows = min_(kT, L.channels - m0), cols = int(min_(int64_t(kT), L.k - n0));
  const int e = p.exponents ? p.exponents[L.sample_begin + b] : 0;
  const double coef = (p.style ? 2.0 * L.scale * upstream_factor(p, L, b) : L.scale) *
                      (is_y ? -1.0 : 1.0);
  const A* m = static_cast<const A*>(L.diff) + b * c * c;
  const T* f = static_cast<const T*>(F.p) + b * F.sb + n0 * F.sk;

  unsigned char* smem = dynamic_smem<unsigned char>();
  constexpr int kABytes = align128(kT * kLdA * int(sizeof(T)));
  T* ahi = reinterpret_cast<T*>(smem);
  T* alo = reinterpret_cast<T*>(smem + kABytes);
  T* bs = reinterpret_cast<T*>(smem + (kSplit ? 2 : 1) * kABytes);
  const bool split = kSplit && p.exponents;

  typename G::type eng;
  eng.zero();
  for (int k0 = 0; k0 < L.channels; k0 += kStep) {
    // A tile [64 rows][kStep]: scalar loads along a row of D (coalesced), converted here.
    for (int i = threadIdx.x; i < kT * kStep; i += kThreads) {
      const int r = i / kStep, k = i % kStep;
      const A a = r < rows && k0 + k < c ? a_value(p, m, c, m0 + r, k0 + k) : A(0);
      if constexpr (kSplit) {
        const float scaled = ldexpf(a, e);
        const T hi = from_acc<T>(scaled);
        ahi[r * kLdA + k] = hi;
        alo[r * kLdA + k] = from_acc<T>(scaled - to_acc(hi));
      } else {
        ahi[r * kLdA + k] = smem_value<T, Tf32>(a, false);
      }
    }
    // B tile [kStep rows of C][64 columns of K] of F.
    stage<kStep, kT>(f + k0 * F.sc, F.sc, F.sk, int(min_(int64_t(kStep), c - k0)), cols,
                     [&](int r, int k, T v) { bs[r * kLdB + k] = smem_value<T, Tf32>(v, false); });
    __syncthreads();
    eng.template mma<kStep, kLdA, kLdB, 1>(ahi, bs);
    if (split) eng.template mma<kStep, kLdA, kLdB, 1>(alo, bs);
    __syncthreads();
  }
  // dF(m0 + r, n0 + k) = coef 2^-e acc, rounded once.
  const A factor = A(ldexp(coef, -e));
  T* out = static_cast<T*>(D.p) + b * D.sb + m0 * D.sc + n0 * D.sk;
  auto write = [&](int r, int k, A v) {
    if (r < rows && k < cols) out[r * D.sc + k * D.sk] = from_acc<T>(v * factor);
  };
  if constexpr (G::kWmma) {
    constexpr int kLdC = kT + 4;
    float* cs = reinterpret_cast<float*>(smem + (kSplit ? 2 : 1) * kABytes +
                                         align128(kStep * kLdB * int(sizeof(T))));
    eng.store(cs, kLdC);
    __syncthreads();
    const bool k_major = D.sk == 1;  // consecutive threads along the axis of stride 1
    for (int i = threadIdx.x; i < kT * kT; i += kThreads) {
      const int r = k_major ? i / kT : i % kT, k = k_major ? i % kT : i / kT;
      write(r, k, cs[r * kLdC + k]);
    }
  } else {
    eng.for_each(write);
  }
}

template <typename A>
__global__ void __launch_bounds__(kThreads)
style_loss_target_grad_kernel(const __grid_constant__ GramLaunch p) {
  const int blk = blockIdx.x;
  const GramLayer& L = p.layers[layer_of(p, blk)];
  const int n = L.channels * L.channels;
  const int total = (L.target_sb ? L.batch : 1) * n;
  const int begin = (blk - L.work_begin) * kGramTargetGradElements;
  const A* d = static_cast<const A*>(L.diff);
  for (int i = begin + threadIdx.x; i < min_(total, begin + kGramTargetGradElements);
       i += kThreads) {
    const int first = L.target_sb ? i / n : 0, end = L.target_sb ? first + 1 : L.batch;
    const int j = i % n;
    double v = 0.0;
    for (int b = first; b < end; ++b)  // a broadcast target: samples in order
      v -= upstream_factor(p, L, b) * double(a_value(p, d + int64_t(b) * n, 0, 0, j));
    static_cast<A*>(L.dtarget)[i] = A(v);
  }
}

unsigned int blocks(const GramLaunch& p) { return static_cast<unsigned int>(p.num_blocks); }

}  // namespace

cudaError_t launch_gram_partials(const GramLaunch& p, DType dtype, bool tf32, cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    if (std::is_same<T, float>::value && tf32) {
      GANLOSS_LAUNCH(blocks(p), kThreads, (partials_smem<float, true>()), stream,
                     gram_partials_kernel<float, true>)(p);
    } else {
      GANLOSS_LAUNCH(blocks(p), kThreads, (partials_smem<T, false>()), stream,
                     gram_partials_kernel<T, false>)(p);
    }
  });
  return cudaGetLastError();
}

cudaError_t launch_gram_reduce(const GramLaunch& p, DType dtype, cudaStream_t stream) {
  auto go = [&](auto a, auto crit, auto style) {
    GANLOSS_LAUNCH(blocks(p), kThreads, 0, stream,
                   gram_reduce_kernel<decltype(a), decltype(crit)::value, decltype(style)::value>)(p);
  };
  auto by_acc = [&](auto a) {
    using C = Criterion;
    using std::integral_constant;
    using Yes = std::true_type;
    if (!p.style) return go(a, integral_constant<C, C::L1>{}, std::false_type{});
    switch (p.criterion) {
      case C::L1: return go(a, integral_constant<C, C::L1>{}, Yes{});
      case C::MSE: return go(a, integral_constant<C, C::MSE>{}, Yes{});
      default: return go(a, integral_constant<C, C::Fro>{}, Yes{});
    }
  };
  if (dtype == DType::F64) by_acc(double{});
  else by_acc(float{});
  return cudaGetLastError();
}

cudaError_t launch_style_loss_finalize(const GramLaunch& p, cudaStream_t stream) {
  GANLOSS_LAUNCH(1, kThreads, 0, stream, style_loss_finalize_kernel)(p);
  return cudaGetLastError();
}

cudaError_t launch_gram_absmax(const GramLaunch& p, cudaStream_t stream) {
  GANLOSS_LAUNCH(blocks(p), kThreads, 0, stream, gram_absmax_kernel)(p);
  return cudaGetLastError();
}

cudaError_t launch_gram_backward(const GramLaunch& p, DType dtype, bool tf32, cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    if (std::is_same<T, float>::value && tf32) {
      GANLOSS_LAUNCH(blocks(p), kThreads, (backward_smem<float, true>()), stream,
                     gram_backward_kernel<float, true>)(p);
    } else {
      GANLOSS_LAUNCH(blocks(p), kThreads, (backward_smem<T, false>()), stream,
                     gram_backward_kernel<T, false>)(p);
    }
  });
  return cudaGetLastError();
}

cudaError_t launch_style_loss_target_grad(const GramLaunch& p, DType dtype, cudaStream_t stream) {
  if (dtype == DType::F64) {
    GANLOSS_LAUNCH(blocks(p), kThreads, 0, stream, style_loss_target_grad_kernel<double>)(p);
  } else {
    GANLOSS_LAUNCH(blocks(p), kThreads, 0, stream, style_loss_target_grad_kernel<float>)(p);
  }
  return cudaGetLastError();
}

}  // namespace ganloss
