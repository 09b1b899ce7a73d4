// CUDA kernels of the adversarial losses (per-element terms in common/adversarial.h, work split in
// cuda/adversarial_launch.h). Torch-free: cuda/adversarial_driver.cpp fills AdversarialLaunch and
// calls the launchers at the bottom. The gan type and the dtype are template parameters; labels are
// scalars of the launch (no target tensor).
//
// One block of 256 threads per chunk (elements of one row of one input). When the chunk is
// 16-byte aligned, each thread loads kUnroll 16-byte vectors before it uses any; scalar loads
// otherwise and for the tail.
//
// forward : partial_c = sum_j term(x_j), the term in the accumulation type, summed in fp64 per
//           thread and across the block (fixed order) -> chunk_sums[c]. The last block of the
//           launch (atomic counter, zeroed by the driver) sums each segment's partials in a fixed
//           order (one warp per segment): terms[i * N + n] = w_i * (sum / count_i); the last
//           launch's last block also writes loss_n = sum_i terms[i * N + n], i in order.
//           Traffic: read x once; O(chunks) bytes of partials. No float atomics, no host sync.
// backward: dx_j = round(A(g_n * w_i / count_i) * term'(x_j)), all in the accumulation type and
//           rounded once to the input dtype. Traffic: read x, write dx.
#include "adversarial_launch.h"
#include "cuda_helpers.cuh"

namespace ganloss {
namespace {

constexpr int kThreads = int(kBlockThreads);
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = int(kVectorsInFlight);
constexpr int kMinBlocks = 2;  // at most 128 registers per thread
static_assert(sizeof(AdversarialLaunch) <= 4096, "kernel parameters must fit in 4 KB");

// Applies op(x_j) -> value to every element j of the chunk x[0, n) and, when Store, writes the
// value rounded to T to dx[j]. Thread t visits its vectors t, t + 256, ... in order (kUnroll of
// them loaded before any is used), then its elements of the scalar tail.
template <typename T, bool Store, typename Op>
__device__ __forceinline__ void for_chunk(const T* __restrict__ x, T* __restrict__ dx, int n,
                                          Op op) {
  constexpr int V = Vec<T>::kSize;
  int k0 = 0;
  if (aligned16(x) && (!Store || aligned16(dx))) {
    const int nvec = n / V;
    for (int i = threadIdx.x; i < nvec; i += kUnroll * kThreads) {
      Vec<T> xv[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (i + u * kThreads < nvec)
          xv[u] = *reinterpret_cast<const Vec<T>*>(x + (i + u * kThreads) * V);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (i + u * kThreads < nvec) {
          Vec<T> g;
#pragma unroll
          for (int e = 0; e < V; ++e) g.v[e] = from_acc<T>(op(to_acc(xv[u].v[e])));
          if constexpr (Store) *reinterpret_cast<Vec<T>*>(dx + (i + u * kThreads) * V) = g;
        }
      }
    }
    k0 = nvec * V;
  }
  for (int k = k0 + threadIdx.x; k < n; k += kThreads) {
    const T g = from_acc<T>(op(to_acc(x[k])));
    if constexpr (Store) dx[k] = g;
  }
}

template <typename T>
__device__ __forceinline__ const T* chunk_x(const AdvTensor& X, const AdvChunk& c) {
  return static_cast<const T*>(X.x) + c.row * X.row_len + c.begin;
}

// The last block of a forward launch: chunk partials -> segment terms -> (last launch) the loss.
// Each segment is summed by one warp (lane-strided, then warp_sum), segments spread over warps.
__device__ __forceinline__ void finalize_launch(const AdversarialLaunch& p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t first_seg = p.tensors[0].seg_begin;
  const AdvTensor& last = p.tensors[p.num_tensors - 1];
  const int64_t segments = last.seg_begin + last.rows - first_seg;
  for (int64_t s = warp; s < segments; s += kWarps) {
    int t = 0;  // the input owning launch segment s
    while (t + 1 < p.num_tensors && p.tensors[t + 1].seg_begin - first_seg <= s) ++t;
    const AdvTensor& X = p.tensors[t];
    const int64_t row = first_seg + s - X.seg_begin;
    const double* partial = p.chunk_sums + X.chunk_begin + row * X.chunks_per_row;
    double sum = 0.0;
    for (int64_t k = lane; k < X.chunks_per_row; k += 32) sum += partial[k];
    sum = warp_sum(sum);
    if (lane == 0) p.terms[X.seg_begin + row] = sum / double(X.row_len) * X.weight;
  }
  if (!p.last_launch) return;
  __syncthreads();
  for (int64_t n = threadIdx.x; n < p.batch; n += kThreads) {
    double total = 0.0;
    for (int64_t i = 0; i < p.total_tensors; ++i) total += p.terms[i * p.batch + n];
    if (p.acc_is_f64) static_cast<double*>(p.loss)[n] = total;
    else static_cast<float*>(p.loss)[n] = float(total);
  }
}

template <typename T, GanType G>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
adversarial_loss_kernel(const __grid_constant__ AdversarialLaunch p) {
  using A = acc_t<T>;
  __shared__ double smem[kWarps];
  __shared__ bool is_last;
  const int64_t chunk = p.chunk_offset + blockIdx.x;
  const AdvChunk c = locate_adv_chunk(p, chunk);
  const AdvTensor& X = p.tensors[c.tensor];
  const A y = A(X.real ? p.real_label : p.fake_label);
  double sum = 0.0;
  for_chunk<T, false>(chunk_x<T>(X, c), static_cast<T*>(nullptr), int(c.end - c.begin),
                      [&](A x) {
                        const A t = adversarial_term<G>(x, X.real, p.is_disc, y);
                        sum += double(t);
                        return t;
                      });
  sum = block_sum<kThreads>(sum, smem);
  if (threadIdx.x == 0) {
    p.chunk_sums[chunk] = sum;
    __threadfence();  // publish this block's partial before counting it as done
    is_last = atomicAdd(p.counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();  // see every other block's partial
  finalize_launch(p);
}

template <typename T, GanType G>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
adversarial_loss_backward_kernel(const __grid_constant__ AdversarialLaunch p) {
  using A = acc_t<T>;
  const AdvChunk c = locate_adv_chunk(p, p.chunk_offset + blockIdx.x);
  const AdvTensor& X = p.tensors[c.tensor];
  // Upstream gradient of this row's loss entry (rows = N per sample, else the one row 0).
  const double g = p.acc_is_f64 ? static_cast<const double*>(p.grad)[c.row]
                                : double(static_cast<const float*>(p.grad)[c.row]);
  const A f = A(g * X.scale);
  const A y = A(X.real ? p.real_label : p.fake_label);
  T* dx = static_cast<T*>(X.dx) + c.row * X.row_len + c.begin;
  for_chunk<T, true>(chunk_x<T>(X, c), dx, int(c.end - c.begin),
                     [&](A x) { return f * adversarial_grad<G>(x, X.real, p.is_disc, y); });
}

}  // namespace

cudaError_t launch_adversarial_loss(const AdversarialLaunch& p, DType dtype, cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    dispatch_gan_type(p.gan_type, [&](auto g) {
      GANLOSS_LAUNCH(unsigned(p.num_chunks), kThreads, 0, stream,
                     adversarial_loss_kernel<T, decltype(g)::value>)(p);
    });
  });
  return cudaGetLastError();
}

cudaError_t launch_adversarial_loss_backward(const AdversarialLaunch& p, DType dtype,
                                             cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    dispatch_gan_type(p.gan_type, [&](auto g) {
      GANLOSS_LAUNCH(unsigned(p.num_chunks), kThreads, 0, stream,
                     adversarial_loss_backward_kernel<T, decltype(g)::value>)(p);
    });
  });
  return cudaGetLastError();
}

}  // namespace ganloss
