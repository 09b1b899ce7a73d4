// CUDA kernels of the multi-layer feature loss (math and work split in common/feature.h).
// Torch-free: cuda/feature_driver.cpp fills FeatureLaunch and calls the launchers at the bottom;
// shared device helpers in cuda/cuda_helpers.cuh.
//
// One block per chunk of kChunk elements of one row of a layer, 256 threads, 16-byte
// loads and stores when the chunk is aligned (scalar otherwise, and for the tail).
//
// forward : partial_c = sum_j rho(x_j - y_j) [* m_j] (+ sum_j m_j) -> chunk_sums[c], terms in
//           the accumulation type, summed in fp64 per thread and across the block;
//           dx_j = s_l * rho'(d_j) [* m_j], dy_j = -dx_j when asked (upstream gradient 1).
//           The last block to finish (atomic counter, zeroed by the host) reduces the partials
//           in a fixed order: segments (one warp each), segment terms (one thread per layer), loss.
//           Traffic: read x, y (+ m) once, write dx (+ dy) once; O(chunks) bytes of partials.
// backward: read x, y, write dx (+ dy). fp32/fp64: dx_j = g_n * f_seg * round(s_l * rho'(d_j) [* m_j]);
//           16-bit: dx_j = round(g_n * f_seg * s_l * rho'(d_j) [* m_j]), one rounding.
// scale   : dx_j *= g_n * f_seg: read + write dx, nothing when the factor is exactly 1.
#include "cuda_helpers.cuh"
#include "feature_launch.h"

namespace ganloss {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMinBlocks = 2;  // per SM: lets ptxas use up to 128 registers (no spills)
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

// Applies op(j, x_j, y_j) -> gradient to every element of the chunk and stores the gradient to
// dx (and its negation to dy) when those are set. Vectorized when all pointers are aligned.
template <typename T, typename Op>
__device__ __forceinline__ void for_chunk(const FeatureLayer& L, const ChunkRange& r, Op op) {
  const int64_t base = r.row * L.row_len;
  const T* __restrict__ x = static_cast<const T*>(L.x) + base;
  const T* __restrict__ y = static_cast<const T*>(L.y) + base;
  T* __restrict__ dx = L.dx ? static_cast<T*>(L.dx) + base : nullptr;
  T* __restrict__ dy = L.dy ? static_cast<T*>(L.dy) + base : nullptr;
  constexpr int V = Vec<T>::kSize;
  int64_t j0 = r.begin;
  const bool vector = aligned16(x + j0) && aligned16(y + j0) && (!dx || aligned16(dx + j0)) &&
                      (!dy || aligned16(dy + j0));
  if (vector) {
    const int64_t nvec = (r.end - r.begin) / V;
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < nvec; i += kThreads) {
      const int64_t j = j0 + i * V;
      const Vec<T> xv = *reinterpret_cast<const Vec<T>*>(x + j);
      const Vec<T> yv = *reinterpret_cast<const Vec<T>*>(y + j);
      Vec<T> gx, gy;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const acc_t<T> g = op(j + k, xv.v[k], yv.v[k]);
        gx.v[k] = from_acc<T>(g);
        gy.v[k] = from_acc<T>(-g);
      }
      if (dx) *reinterpret_cast<Vec<T>*>(dx + j) = gx;
      if (dy) *reinterpret_cast<Vec<T>*>(dy + j) = gy;
    }
    j0 += nvec * V;
  }
  for (int64_t j = j0 + threadIdx.x; j < r.end; j += kThreads) {
    const acc_t<T> g = op(j, x[j], y[j]);
    if (dx) dx[j] = from_acc<T>(g);
    if (dy) dy[j] = from_acc<T>(-g);
  }
}

// The last block of a forward launch: chunk partials -> segment sums (stats columns 0, 1) ->
// segment terms and grad factors -> (last launch) the loss. Fixed order throughout.
__device__ __forceinline__ void finalize_launch(const FeatureLaunch& p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int l = 0; l < p.num_layers; ++l) {
    const FeatureLayer& L = p.layers[l];
    for (int64_t seg = warp; seg < L.segments; seg += kWarps) {
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

template <typename T, Criterion C, bool Masked>
__device__ __forceinline__ void forward_chunk(const FeatureLayer& L, const ChunkRange& r,
                                              acc_t<T> eps, double& sum, double& mask_sum) {
  using A = acc_t<T>;
  const A scale = A(L.grad_scale);
  for_chunk<T>(L, r, [&](int64_t j, T xj, T yj) {
    const A d = to_acc(xj) - to_acc(yj);
    A v = criterion_value<C>(d, eps);
    const A m = Masked ? mask_at<A>(L, r.row, j) : A(1);
    if constexpr (Masked) {
      v *= m;
      mask_sum += double(m);
    }
    sum += double(v);
    return element_grad<C, Masked>(d, eps, scale, m);
  });
}

// factor = g_n * f_seg. 16-bit: the whole gradient in fp32, rounded once. fp32/fp64: the
// forward's gradient rounded to T, then scaled as in feature_loss_scale_grads_kernel.
template <typename T, Criterion C, bool Masked>
__device__ __forceinline__ void backward_chunk(const FeatureLayer& L, const ChunkRange& r,
                                               acc_t<T> eps, double factor) {
  using A = acc_t<T>;
  const A f = A(factor);
  const A scale = kRoundOnceInBackward<T> ? A(L.grad_scale * factor) : A(L.grad_scale);
  for_chunk<T>(L, r, [&](int64_t j, T xj, T yj) {
    const A m = Masked ? mask_at<A>(L, r.row, j) : A(1);
    const A g = element_grad<C, Masked>(to_acc(xj) - to_acc(yj), eps, scale, m);
    return kRoundOnceInBackward<T> ? g : to_acc(from_acc<T>(g)) * f;
  });
}

template <typename T, Criterion C>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
feature_loss_kernel(const __grid_constant__ FeatureLaunch p) {
  using A = acc_t<T>;
  __shared__ double smem[kWarps];
  __shared__ bool is_last;
  if (blockIdx.x < p.num_chunks) {  // a launch over empty layers runs one idle block
    const int64_t chunk = p.chunk_offset + blockIdx.x;
    const ChunkRange r = locate_chunk(p.layers, p.num_layers, chunk);
    const FeatureLayer& L = p.layers[r.layer];
    double sum = 0, mask_sum = 0;
    if (L.mask) forward_chunk<T, C, true>(L, r, A(p.eps), sum, mask_sum);
    else forward_chunk<T, C, false>(L, r, A(p.eps), sum, mask_sum);
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
__global__ void __launch_bounds__(kThreads, kMinBlocks)
feature_loss_backward_kernel(const __grid_constant__ FeatureLaunch p) {
  using A = acc_t<T>;
  const ChunkRange r = locate_chunk(p.layers, p.num_layers, p.chunk_offset + blockIdx.x);
  const FeatureLayer& L = p.layers[r.layer];
  const double factor = segment_factor(p, L, r.row);
  if (L.mask) backward_chunk<T, C, true>(L, r, A(p.eps), factor);
  else backward_chunk<T, C, false>(L, r, A(p.eps), factor);
}

template <typename T>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
feature_loss_scale_grads_kernel(const __grid_constant__ FeatureLaunch p) {
  using A = acc_t<T>;
  const ChunkRange r = locate_chunk(p.layers, p.num_layers, p.chunk_offset + blockIdx.x);
  const FeatureLayer& L = p.layers[r.layer];
  const double f = segment_factor(p, L, r.row);
  if (f == 1.0) return;  // the common case: mean loss, upstream gradient 1
  const A factor = A(f);
  T* __restrict__ g = static_cast<T*>(L.dx) + r.row * L.row_len;
  constexpr int V = Vec<T>::kSize;
  int64_t j0 = r.begin;
  if (aligned16(g + j0)) {
    const int64_t nvec = (r.end - r.begin) / V;
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < nvec; i += kThreads) {
      Vec<T>* gv = reinterpret_cast<Vec<T>*>(g + j0 + i * V);
      Vec<T> v = *gv;
#pragma unroll
      for (int k = 0; k < V; ++k) v.v[k] = from_acc<T>(to_acc(v.v[k]) * factor);
      *gv = v;
    }
    j0 += nvec * V;
  }
  for (int64_t j = j0 + threadIdx.x; j < r.end; j += kThreads) g[j] = from_acc<T>(to_acc(g[j]) * factor);
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
