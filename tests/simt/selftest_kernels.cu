// Self-test kernels of the SIMT emulation tier. The first group is correct and checks what the
// emulator computes (block sums, shuffles, votes, atomics, dynamic shared memory); each kernel of
// the second group has one deliberate bug of a kind the tier must report (tests/test_simt.py).
// Written as CUDA on the project's device helpers; compiled by g++ through selftest_kernels.cpp.
#include "cuda/cuda_helpers.cuh"
#include "selftest.h"

namespace ganloss {
namespace {

constexpr int kThreads = 256;

// out[block] = sum over the block of (threadIdx.x + 1).
__global__ void block_sum_kernel(float* out) {
  __shared__ float smem[kThreads / 32];
  const float s = block_sum<kThreads>(float(threadIdx.x + 1), smem);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

// out[t] for t in one warp: down, up, idx and xor shuffles and a ballot, in 5 rows of 32.
__global__ void shuffles_kernel(float* out) {
  const int lane = threadIdx.x;
  const float v = float(lane);
  out[lane] = __shfl_down_sync(0xffffffffu, v, 3);
  out[32 + lane] = __shfl_up_sync(0xffffffffu, v, 5);
  out[64 + lane] = __shfl_sync(0xffffffffu, v, 31 - lane);
  out[96 + lane] = __shfl_xor_sync(0xffffffffu, v, 1, 8);
  out[128 + lane] = float(__ballot_sync(0xffffffffu, lane % 3 == 0) == 0x49249249u);
}

// out[0] = number of threads in the grid, counted with atomicAdd.
__global__ void atomics_kernel(float* out) { atomicAdd(out, 1.0f); }

// out[i] = i, through arg bytes of dynamic shared memory (more than the 48 KB default).
__global__ void dynamic_smem_kernel(float* out, int n) {
  float* s = dynamic_smem<float>();
  for (int i = threadIdx.x; i < n; i += blockDim.x) s[n - 1 - i] = float(n - 1 - i);
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = s[i];
}

// Bug: no __syncthreads between the warps' writes and thread 0's reads.
__global__ void missing_syncthreads_kernel(float* out) {
  __shared__ float smem[kThreads / 32];
  const float v = warp_sum(float(threadIdx.x + 1));
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
  if (threadIdx.x == 0) {
    float s = 0;
    for (int w = 0; w < kThreads / 32; ++w) s += smem[w];
    out[blockIdx.x] = s;
  }
}

// Bug: half of the block returns before the barrier.
__global__ void half_barrier_kernel(float* out) {
  if (threadIdx.x >= kThreads / 2) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

// Bug: the two halves of the block wait at different barriers.
__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x < kThreads / 2) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

// Bug: a half-warp mask for a full-warp shuffle (lanes 16..31 call outside their mask).
__global__ void half_warp_mask_kernel(float* out) {
  out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, float(threadIdx.x), 1);
}

// Bug: lanes 0..15 shuffle among themselves but read lanes 16..31.
__global__ void source_outside_mask_kernel(float* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, float(threadIdx.x), 16);
}

// Bug: shared memory read without ever being written (only warp 0 writes its slot).
__global__ void unwritten_shared_kernel(float* out) {
  __shared__ float smem[kThreads / 32];
  if (threadIdx.x == 0) smem[0] = 1.0f;
  __syncthreads();
  if (threadIdx.x < kThreads / 32) out[threadIdx.x] = smem[threadIdx.x];
}

// Bug: one element past the end of out (n elements).
__global__ void out_of_bounds_kernel(float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) out[i] = 1.0f;
}

// Bug: more dynamic shared memory than the default limit without cudaFuncSetAttribute.
__global__ void smem_over_limit_kernel(float* out) { out[threadIdx.x] = dynamic_smem<float>()[0]; }

}  // namespace
}  // namespace ganloss

namespace simt_selftest {

cudaError_t run(const std::string& name, float* out, int64_t n, int64_t arg) {
  using namespace ganloss;
  const cudaStream_t s = nullptr;
  const unsigned blocks = unsigned(arg > 0 ? arg : 1);
  if (name == "block_sum") GANLOSS_LAUNCH(blocks, kThreads, 0, s, block_sum_kernel)(out);
  else if (name == "shuffles") GANLOSS_LAUNCH(1, 32, 0, s, shuffles_kernel)(out);
  else if (name == "atomics") GANLOSS_LAUNCH(blocks, kThreads, 0, s, atomics_kernel)(out);
  else if (name == "dynamic_smem") {
    const cudaError_t e = cudaFuncSetAttribute(reinterpret_cast<const void*>(dynamic_smem_kernel),
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               int(n * sizeof(float)));
    if (e != cudaSuccess) return e;
    GANLOSS_LAUNCH(1, kThreads, n * sizeof(float), s, dynamic_smem_kernel)(out, int(n));
  } else if (name == "missing_syncthreads")
    GANLOSS_LAUNCH(blocks, kThreads, 0, s, missing_syncthreads_kernel)(out);
  else if (name == "half_barrier") GANLOSS_LAUNCH(1, kThreads, 0, s, half_barrier_kernel)(out);
  else if (name == "divergent_barrier")
    GANLOSS_LAUNCH(1, kThreads, 0, s, divergent_barrier_kernel)(out);
  else if (name == "half_warp_mask") GANLOSS_LAUNCH(1, 32, 0, s, half_warp_mask_kernel)(out);
  else if (name == "source_outside_mask")
    GANLOSS_LAUNCH(1, 32, 0, s, source_outside_mask_kernel)(out);
  else if (name == "unwritten_shared")
    GANLOSS_LAUNCH(1, kThreads, 0, s, unwritten_shared_kernel)(out);
  else if (name == "out_of_bounds")
    GANLOSS_LAUNCH(unsigned((n + kThreads) / kThreads), kThreads, 0, s, out_of_bounds_kernel)(
        out, int(n));
  else if (name == "smem_over_limit")
    GANLOSS_LAUNCH(1, 32, 64 * 1024, s, smem_over_limit_kernel)(out);
  else return run_wmma(name, out, n, arg);
  return cudaGetLastError();
}

std::vector<std::string> names() {
  std::vector<std::string> all = {"block_sum", "shuffles", "atomics", "dynamic_smem", "missing_syncthreads",
          "half_barrier", "divergent_barrier", "half_warp_mask", "source_outside_mask",
          "unwritten_shared", "out_of_bounds", "smem_over_limit"};
  for (const std::string& name : wmma_names()) all.push_back(name);
  return all;
}

}  // namespace simt_selftest
