// Device helpers shared by the CUDA kernels of every loss family: conversions between an element
// type and its accumulation type, 16-byte vectors, warp and block sums, dtype dispatch.
// Torch-free, like the kernel files that include it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../common/hd.h"

// Every kernel launch is GANLOSS_LAUNCH(grid, block, dynamic_smem_bytes, stream, kernel)(args):
// the triple chevron under nvcc; the SIMT emulation tier (tests/simt) defines its own launch first.
#ifndef GANLOSS_LAUNCH
#define GANLOSS_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#endif

namespace ganloss {

template <typename T> __device__ __forceinline__ acc_t<T> to_acc(T v) { return v; }
template <> __device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

// To T, rounding to nearest even.
template <typename T> __device__ __forceinline__ T from_acc(acc_t<T> v) { return v; }
template <> __device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// 16 bytes of T: one vector load or store.
template <typename T>
struct alignas(16) Vec {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

template <typename T>
__device__ __forceinline__ bool aligned16(const T* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Fixed-order sum over a block of Threads threads; smem holds Threads / 32 values. The result is
// valid in thread 0.
template <int Threads, typename A>
__device__ __forceinline__ A block_sum(A v, A* smem) {
  static_assert(Threads % 32 == 0 && Threads <= 1024, "Threads must be whole warps");
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = threadIdx.x < Threads / 32 ? smem[threadIdx.x] : A(0);
  if (warp == 0) v = warp_sum(v);
  __syncthreads();
  return v;
}

// The block's dynamic shared memory (the launch's dynamic_smem_bytes), 16-byte aligned. Kernels
// take it from here rather than declaring their own extern __shared__ array, so the emulation
// tier can give every block its own exact-size buffer.
#ifndef GANLOSS_SIMT
template <typename T>
__device__ __forceinline__ T* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char ganloss_dynamic_smem[];
  return reinterpret_cast<T*>(ganloss_dynamic_smem);
}
#endif

// Calls f(T{}) for the element type T of dtype.
template <typename F>
void dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32: f(float{}); break;
    case DType::F64: f(double{}); break;
    case DType::F16: f(__half{}); break;
    case DType::BF16: f(__nv_bfloat16{}); break;
  }
}

}  // namespace ganloss
