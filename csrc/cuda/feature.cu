// CUDA kernels of the multi-layer feature loss (math and work split in common/feature.h).
// Torch-free: cuda/feature_driver.cpp fills FeatureLaunch and calls the launchers at the bottom;
// shared device helpers in cuda/cuda_helpers.cuh.
//
// One block of 256 threads per chunk (L.chunk elements of one row of a layer, chunk_elements()).
// When the chunk is 16-byte aligned, each thread loads kVectorsInFlight 16-byte vectors of x and
// of y (and of a full mask) before it computes or stores any, so that those loads are in flight
// together (the compiler does not move loads above stores through these pointers by itself);
// scalar loads otherwise and for the tail. Masks are read in their own dtype (the input's or the
// accumulation type), a one-channel mask through 32-bit indices and a FastDivider.
//
// forward : partial_c = sum_j rho(x_j - y_j) [* m_j] (+ sum_j m_j) -> chunk_sums[c], terms in
//           the accumulation type, summed in fp64 per thread and across the block;
//           dx_j = s_l * rho'(d_j) [* m_j], dy_j = -dx_j when asked (upstream gradient 1).
//           The last block to finish (atomic counter, zeroed by the host) reduces the partials
//           in a fixed order: segments (one warp each, all warps), segment terms (one thread per
//           layer), loss.
//           Traffic: read x, y (+ m) once, write dx (+ dy) once; O(chunks) bytes of partials.
// backward: read x, y (+ m), write dx (+ dy). fp32/fp64: dx_j = g_n * f_seg * round(s_l * rho'(d_j) [* m_j]);
//           16-bit: dx_j = round(g_n * f_seg * s_l * rho'(d_j) [* m_j]), one rounding.
// scale   : dx_j *= g_n * f_seg: read + write dx, nothing when the factor is exactly 1.
#include "cuda_helpers.cuh"
#include "feature_launch.h"

#include <type_traits>

namespace ganloss {
namespace {

constexpr int kThreads = int(kBlockThreads);
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = int(kVectorsInFlight);
// Blocks per SM that ptxas must fit (__launch_bounds__), chosen from ptxas -v of every kernel
// (benchmarks/NOTES.md, "SASS checks"): 2, i.e. at most 128 registers, where ptxas's own choice
// spills (fp32 Charbonnier on sm_90) or takes up to 174 registers (16-bit on sm_90: one block per
// SM); 1 for 16-bit Charbonnier, which spills at 128 registers on sm_90.
template <typename T, Criterion C = Criterion::L1>
constexpr int kMinBlocks = sizeof(T) == 2 && C == Criterion::Charbonnier ? 1 : 2;
static_assert(sizeof(FeatureLaunch) <= 4096, "kernel parameters must fit in 4 KB");

// g_n * f_seg for the segment that holds row `row` of layer L.
__device__ __forceinline__ double segment_factor(const FeatureLaunch& p, const FeatureLayer& L,
                                                 int64_t row) {
  const int64_t s = local_segment(L, row);
  const int64_t i = p.reduction == Reduction::PerSample ? s : 0;
  const double g = p.loss_is_f64 ? static_cast<const double*>(p.grad)[i]
                                 : double(static_cast<const float*>(p.grad)[i]);
  return g * p.grad_factors[kStatCols * (L.seg_begin + s) + 2];
}

// Mask readers: the mask value, in the accumulation type A, of chunk element k (at), and for a
// full mask (kVector) those of elements k .. k + V - 1 in 16-byte loads (load), issued with the
// loads of x and y. M is the mask's element type.
template <typename A>
struct NoMask {
  static constexpr bool kMasked = false, kVector = false;
  __device__ __forceinline__ bool aligned() const { return true; }
  template <int V>
  __device__ __forceinline__ void load(int, A (&)[V]) const {}
  __device__ __forceinline__ A at(int) const { return A(1); }
};

// A full mask, laid out like x (two 16-byte loads per vector of x for an fp32 mask over 16-bit x).
template <typename A, typename M>
struct FullMask {
  static constexpr bool kMasked = true, kVector = true;
  const M* __restrict__ m;  // the chunk's first mask value
  __device__ __forceinline__ bool aligned() const { return aligned16(m); }
  template <int V>
  __device__ __forceinline__ void load(int k, A (&out)[V]) const {
    constexpr int W = Vec<M>::kSize;
    static_assert(V % W == 0, "a vector of x spans whole vectors of the mask");
#pragma unroll
    for (int w = 0; w < V / W; ++w) {
      const Vec<M> v = *reinterpret_cast<const Vec<M>*>(m + k + w * W);
#pragma unroll
      for (int e = 0; e < W; ++e) out[w * W + e] = to_acc(v.v[e]);
    }
  }
  __device__ __forceinline__ A at(int k) const { return to_acc(m[k]); }
};

// A one-channel mask of the row: element j = begin + k maps to mask value j % HW (NCHW) or j / C
// (NHWC); 32-bit, since the plan keeps such rows under 2^31 elements. Read per element where it is
// used (the HW values are shared by all C channels, so these loads mostly hit the caches): loading
// them with x and y as well would hold 4 x V more registers through the vector loop.
template <typename A, typename M, bool NHWC>
struct ChannelMask {
  static constexpr bool kMasked = true, kVector = false;
  const M* __restrict__ m;  // the row's HW mask values
  FastDivider by;           // HW (NCHW) or C (NHWC)
  uint32_t begin;           // the chunk's first element within the row
  __device__ __forceinline__ bool aligned() const { return true; }
  __device__ __forceinline__ A at(int k) const {
    const uint32_t j = begin + uint32_t(k);
    return to_acc(m[NHWC ? by.div(j) : by.mod(j)]);
  }
  template <int V>
  __device__ __forceinline__ void load(int, A (&)[V]) const {}
};

template <typename A, typename M, typename F>
__device__ __forceinline__ void with_mask_of(const FeatureLayer& L, const ChunkRange& r, F f) {
  const M* row_mask = static_cast<const M*>(L.mask) + r.row * L.mask_mod;
  const uint32_t begin = uint32_t(r.begin);
  switch (L.mask_kind) {
    case MaskKind::Full: f(FullMask<A, M>{row_mask + r.begin}); break;
    case MaskKind::ChannelNCHW: f(ChannelMask<A, M, false>{row_mask, L.mask_divider, begin}); break;
    case MaskKind::ChannelNHWC: f(ChannelMask<A, M, true>{row_mask, L.mask_divider, begin}); break;
  }
}

// Calls f(mask reader) for the chunk: NoMask, or the layer's kind over its mask dtype (criterion
// Fro takes no masks: the plan refuses them).
template <typename T, Criterion C, typename F>
__device__ __forceinline__ void with_mask(const FeatureLayer& L, const ChunkRange& r, F f) {
  using A = acc_t<T>;
  if constexpr (C == Criterion::Fro) {
    f(NoMask<A>{});
  } else {
    if (!L.mask) f(NoMask<A>{});
    else if (std::is_same<T, A>::value || L.mask_is_acc) with_mask_of<A, A>(L, r, f);
    else with_mask_of<A, T>(L, r, f);
  }
}

// Applies op(x_j, y_j, m_j) -> gradient to every element of the chunk and stores the gradient to
// dx (and its negation to dy) when those are set. Thread t visits its vectors t, t + 256, ... in
// order (kUnroll of them loaded before any is used), then its elements of the scalar tail.
template <typename T, typename Mask, typename Op>
__device__ __forceinline__ void for_chunk(const FeatureLayer& L, const ChunkRange& r,
                                          const Mask& mask, Op op) {
  using A = acc_t<T>;
  constexpr int V = Vec<T>::kSize;
  const int64_t first = r.row * L.row_len + r.begin;
  const T* __restrict__ x = static_cast<const T*>(L.x) + first;
  const T* __restrict__ y = static_cast<const T*>(L.y) + first;
  T* __restrict__ dx = L.dx ? static_cast<T*>(L.dx) + first : nullptr;
  T* __restrict__ dy = L.dy ? static_cast<T*>(L.dy) + first : nullptr;
  const int n = int(r.end - r.begin);
  int k0 = 0;
  if (aligned16(x) && aligned16(y) && (!dx || aligned16(dx)) && (!dy || aligned16(dy)) &&
      mask.aligned()) {
    const int nvec = n / V;
    for (int i = threadIdx.x; i < nvec; i += kUnroll * kThreads) {
      Vec<T> xv[kUnroll], yv[kUnroll];
      A mv[kUnroll][V];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int k = (i + u * kThreads) * V;
        if (i + u * kThreads < nvec) {
          xv[u] = *reinterpret_cast<const Vec<T>*>(x + k);
          yv[u] = *reinterpret_cast<const Vec<T>*>(y + k);
          mask.template load<V>(k, mv[u]);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int k = (i + u * kThreads) * V;
        if (i + u * kThreads < nvec) {
          Vec<T> gx, gy;
#pragma unroll
          for (int e = 0; e < V; ++e) {
            const A g = op(xv[u].v[e], yv[u].v[e], Mask::kVector ? mv[u][e] : mask.at(k + e));
            gx.v[e] = from_acc<T>(g);
            gy.v[e] = from_acc<T>(-g);
          }
          if (dx) *reinterpret_cast<Vec<T>*>(dx + k) = gx;
          if (dy) *reinterpret_cast<Vec<T>*>(dy + k) = gy;
        }
      }
    }
    k0 = nvec * V;
  }
  for (int k = k0 + threadIdx.x; k < n; k += kThreads) {
    const A g = op(x[k], y[k], mask.at(k));
    if (dx) dx[k] = from_acc<T>(g);
    if (dy) dy[k] = from_acc<T>(-g);
  }
}

// The last block of a forward launch: chunk partials -> segment sums (stats columns 0, 1) ->
// segment terms and grad factors -> (last launch) the loss. Fixed order throughout: each segment
// is summed by one warp (lane-strided, then warp_sum), the launch's segments spread over all warps.
__device__ __forceinline__ void finalize_launch(const FeatureLaunch& p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t first_seg = p.layers[0].seg_begin;
  const FeatureLayer& last = p.layers[p.num_layers - 1];
  const int64_t segments = last.seg_begin + last.segments - first_seg;
  for (int64_t g = warp; g < segments; g += kWarps) {
    int l = 0;  // the layer owning launch segment g: the last one starting at or before it
    while (l + 1 < p.num_layers && p.layers[l + 1].seg_begin - first_seg <= g) ++l;
    const FeatureLayer& L = p.layers[l];
    const int64_t seg = first_seg + g - L.seg_begin;
    const double* partial = p.chunk_sums + 2 * segment_first_chunk(L, seg);
    double s = 0.0, ms = 0.0;
    for (int64_t k = lane; k < segment_chunks(L); k += 32) {
      s += partial[2 * k];
      ms += partial[2 * k + 1];
    }
    s = warp_sum(s);
    ms = warp_sum(ms);
    if (lane == 0) {
      p.stats[kStatCols * (L.seg_begin + seg)] = s;
      p.stats[kStatCols * (L.seg_begin + seg) + 1] = ms;
    }
  }
  __syncthreads();
  if (threadIdx.x < p.num_layers)
    finalize_layer(p.layers[threadIdx.x], p.criterion, p.reduction, p.stats, p.terms);
  if (!p.last_launch) return;
  __syncthreads();
  const int64_t outputs = p.reduction == Reduction::PerSample ? p.batch : 1;
  for (int64_t i = threadIdx.x; i < outputs; i += kThreads) {
    const double v = combine_terms(p.reduction, p.terms, p.total_layers, p.batch, i);
    if (p.loss_is_f64) static_cast<double*>(p.loss)[i] = v;
    else static_cast<float*>(p.loss)[i] = float(v);
  }
}

template <typename T, Criterion C, typename Mask>
__device__ __forceinline__ void forward_chunk(const FeatureLayer& L, const ChunkRange& r,
                                              const Mask& mask, acc_t<T> eps, double& sum,
                                              double& mask_sum) {
  using A = acc_t<T>;
  const A scale = A(L.grad_scale);
  for_chunk<T>(L, r, mask, [&](T xj, T yj, A m) {
    const A d = to_acc(xj) - to_acc(yj);
    A v = criterion_value<C>(d, eps);
    if constexpr (Mask::kMasked) {
      v *= m;
      mask_sum += double(m);
    }
    sum += double(v);
    return element_grad<C, Mask::kMasked>(d, eps, scale, m);
  });
}

// factor = g_n * f_seg. 16-bit: the whole gradient in fp32, rounded once. fp32/fp64: the
// forward's gradient rounded to T, then scaled as in feature_loss_scale_grads_kernel.
template <typename T, Criterion C, typename Mask>
__device__ __forceinline__ void backward_chunk(const FeatureLayer& L, const ChunkRange& r,
                                               const Mask& mask, acc_t<T> eps, double factor) {
  using A = acc_t<T>;
  const A f = A(factor);
  const A scale = kRoundOnceInBackward<T> ? A(L.grad_scale * factor) : A(L.grad_scale);
  for_chunk<T>(L, r, mask, [&](T xj, T yj, A m) {
    const A g = element_grad<C, Mask::kMasked>(to_acc(xj) - to_acc(yj), eps, scale, m);
    return kRoundOnceInBackward<T> ? g : to_acc(from_acc<T>(g)) * f;
  });
}

template <typename T, Criterion C>
__global__ void __launch_bounds__(kThreads, kMinBlocks<T, C>)
feature_loss_kernel(const __grid_constant__ FeatureLaunch p) {
  using A = acc_t<T>;
  __shared__ double smem[kWarps];
  __shared__ bool is_last;
  if (blockIdx.x < p.num_chunks) {  // a launch over empty layers runs one idle block
    const int64_t chunk = p.chunk_offset + blockIdx.x;
    const ChunkRange r = locate_chunk(p.layers, p.num_layers, chunk);
    const FeatureLayer& L = p.layers[r.layer];
    double sum = 0, mask_sum = 0;
    with_mask<T, C>(L, r, [&](const auto& mask) {
      forward_chunk<T, C>(L, r, mask, A(p.eps), sum, mask_sum);
    });
    sum = block_sum<kThreads>(sum, smem);
    mask_sum = block_sum<kThreads>(mask_sum, smem);
    if (threadIdx.x == 0) {
      p.chunk_sums[2 * chunk] = double(sum);
      p.chunk_sums[2 * chunk + 1] = double(mask_sum);
    }
  }
  if (threadIdx.x == 0) {
    __threadfence();  // publish this block's partials before counting it as done
    is_last = atomicAdd(p.counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();  // see every other block's partials
  finalize_launch(p);
}

template <typename T, Criterion C>
__global__ void __launch_bounds__(kThreads, kMinBlocks<T, C>)
feature_loss_backward_kernel(const __grid_constant__ FeatureLaunch p) {
  using A = acc_t<T>;
  const ChunkRange r = locate_chunk(p.layers, p.num_layers, p.chunk_offset + blockIdx.x);
  const FeatureLayer& L = p.layers[r.layer];
  const double factor = segment_factor(p, L, r.row);
  with_mask<T, C>(L, r, [&](const auto& mask) {
    backward_chunk<T, C>(L, r, mask, A(p.eps), factor);
  });
}

template <typename T>
__global__ void __launch_bounds__(kThreads, kMinBlocks<T>)
feature_loss_scale_grads_kernel(const __grid_constant__ FeatureLaunch p) {
  using A = acc_t<T>;
  const ChunkRange r = locate_chunk(p.layers, p.num_layers, p.chunk_offset + blockIdx.x);
  const FeatureLayer& L = p.layers[r.layer];
  const double f = segment_factor(p, L, r.row);
  if (f == 1.0) return;  // the common case: mean loss, upstream gradient 1
  const A factor = A(f);
  T* __restrict__ g = static_cast<T*>(L.dx) + r.row * L.row_len + r.begin;
  constexpr int V = Vec<T>::kSize;
  const int n = int(r.end - r.begin);
  int k0 = 0;
  if (aligned16(g)) {
    const int nvec = n / V;
    for (int i = threadIdx.x; i < nvec; i += kUnroll * kThreads) {
      Vec<T> v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int k = (i + u * kThreads) * V;
        if (i + u * kThreads < nvec) v[u] = *reinterpret_cast<const Vec<T>*>(g + k);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int k = (i + u * kThreads) * V;
        if (i + u * kThreads < nvec) {
#pragma unroll
          for (int e = 0; e < V; ++e) v[u].v[e] = from_acc<T>(to_acc(v[u].v[e]) * factor);
          *reinterpret_cast<Vec<T>*>(g + k) = v[u];
        }
      }
    }
    k0 = nvec * V;
  }
  for (int k = k0 + threadIdx.x; k < n; k += kThreads) g[k] = from_acc<T>(to_acc(g[k]) * factor);
}

unsigned int grid_of(const FeatureLaunch& p) {
  return static_cast<unsigned int>(p.num_chunks > 0 ? p.num_chunks : 1);
}

}  // namespace

cudaError_t launch_feature_loss(const FeatureLaunch& p, DType dtype, cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    dispatch_criterion(p.criterion, [&](auto crit) {
      GANLOSS_LAUNCH(grid_of(p), kThreads, 0, stream,
                     feature_loss_kernel<T, decltype(crit)::value>)(p);
    });
  });
  return cudaGetLastError();
}

cudaError_t launch_feature_loss_backward(const FeatureLaunch& p, DType dtype, cudaStream_t stream) {
  if (p.num_chunks == 0) return cudaSuccess;
  dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    dispatch_criterion(p.criterion, [&](auto crit) {
      GANLOSS_LAUNCH(grid_of(p), kThreads, 0, stream,
                     feature_loss_backward_kernel<T, decltype(crit)::value>)(p);
    });
  });
  return cudaGetLastError();
}

cudaError_t launch_feature_loss_scale_grads(const FeatureLaunch& p, DType dtype,
                                             cudaStream_t stream) {
  if (p.num_chunks == 0) return cudaSuccess;
  dispatch_dtype(dtype, [&](auto t) {
    GANLOSS_LAUNCH(grid_of(p), kThreads, 0, stream,
                   feature_loss_scale_grads_kernel<decltype(t)>)(p);
  });
  return cudaGetLastError();
}

}  // namespace ganloss
