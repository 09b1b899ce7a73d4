// Tensor-core (nvcuda::wmma) self-tests of the SIMT emulation tier: written as CUDA for a real GPU
// (tests/test_simt_wmma.py also compiles this file with nvcc for sm_80 and sm_90), compiled by g++
// after the prelude through wmma_kernels.cpp, where nvcuda::wmma is simt_wmma.h.
//
// The GEMM self-tests compute C = A * B^T + C0 with M = 48, N = 64, K = 80 and read their inputs
// from out, float32, as [C: M*N | A: M*K | B: N*K | C0: M*N]; A and B are row-major and, for the
// 16-bit tests, must hold values exact in the input type (the test rounds them; the tf32 test
// passes raw floats, which the kernel rounds), C and C0 are row-major M x N, except for
// "wmma_gemm_bf16", where both are column-major (stored and loaded with mem_col_major). The
// kernel writes C over the first M*N floats. One block per 16-row stripe of C, one warp per
// 16-column tile, the K dimension staged through dynamic shared memory a chunk at a time.
//   wmma_gemm_f16:  __half inputs, m16n16k16
//   wmma_gemm_bf16: __nv_bfloat16 inputs, m16n16k16, C and C0 column-major
//   wmma_gemm_tf32: float inputs rounded with __float_to_tf32 after the load, m16n16k8
// Each of the others has one deliberate bug the tier must report (out: at least 256 floats):
//   wmma_partial_warp:       mma_sync called by half of the warp
//   wmma_bad_ldm:            ldm 20 for __half elements (not a multiple of 8)
//   wmma_misaligned:         a tile pointer 16 bytes past a 32-byte boundary
//   wmma_nonuniform_pointer: each lane passes its own tile pointer
//   wmma_partial_update:     an elementwise update of x[0..7] only of a 16-element fragment
#include <mma.h>

#include <cstddef>
#include <new>
#include <type_traits>

#include "cuda/cuda_helpers.cuh"
#include "selftest.h"

using namespace nvcuda;

namespace ganloss {
namespace {

constexpr int kM = 48, kN = 64, kK = 80;

// The fragment element type and K step of one input type (tf32 for float), and the row stride
// of a staged chunk in shared memory: the chunk plus 16 bytes of padding.
template <typename T>
struct WmmaInput {
  using Element = T;
  static constexpr int kStep = 16;
  static constexpr int kLd = kStep + 16 / int(sizeof(T));
};
template <>
struct WmmaInput<float> {
  using Element = wmma::precision::tf32;
  static constexpr int kStep = 8;
  static constexpr int kLd = kStep + 16 / int(sizeof(float));
};

// C = A * B^T + C0 (see the top of the file); blockDim.x = 32 * n / 16, gridDim.x = m / 16.
template <typename T, bool kColMajorC>
__global__ void wmma_gemm_kernel(const T* a, const T* b, const float* c0, float* c, int m, int n,
                                 int k) {
  using Element = typename WmmaInput<T>::Element;
  constexpr int kStep = WmmaInput<T>::kStep, kLd = WmmaInput<T>::kLd;
  T* as = dynamic_smem<T>();  // 16 rows of A, then n rows of B, kStep columns each
  T* bs = as + 16 * kLd;
  const int warp = threadIdx.x / 32;
  const int row0 = blockIdx.x * 16, col0 = warp * 16;
  const wmma::layout_t layout = kColMajorC ? wmma::mem_col_major : wmma::mem_row_major;
  const int ldc = kColMajorC ? m : n;
  const size_t tile = kColMajorC ? size_t(col0) * m + row0 : size_t(row0) * n + col0;

  wmma::fragment<wmma::accumulator, 16, 16, kStep, float> acc;
  wmma::load_matrix_sync(acc, c0 + tile, ldc, layout);
  wmma::fragment<wmma::matrix_a, 16, 16, kStep, Element, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, kStep, Element, wmma::col_major> fb;  // B^T
  for (int k0 = 0; k0 < k; k0 += kStep) {
    for (int i = threadIdx.x; i < (16 + n) * kStep; i += blockDim.x) {
      const int r = i / kStep, kk = i % kStep;
      as[r * kLd + kk] = r < 16 ? a[size_t(row0 + r) * k + k0 + kk] : b[size_t(r - 16) * k + k0 + kk];
    }
    __syncthreads();
    wmma::load_matrix_sync(fa, as, kLd);
    wmma::load_matrix_sync(fb, bs + col0 * kLd, kLd);
    if constexpr (std::is_same<T, float>::value) {
      for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
      for (int i = 0; i < fb.num_elements; ++i) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
    }
    wmma::mma_sync(acc, fa, fb, acc);
    __syncthreads();  // before the next chunk overwrites the staged one
  }
  wmma::store_matrix_sync(c + tile, acc, ldc, layout);
}

using HalfA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major>;
using HalfB = wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major>;
using FloatAcc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// Bug: only lanes 0..15 call mma_sync; all 32 lanes store.
__global__ void wmma_partial_warp_kernel(float* out) {
  HalfA fa;
  HalfB fb;
  FloatAcc acc;
  wmma::fill_fragment(fa, __float2half(1.0f));
  wmma::fill_fragment(fb, __float2half(1.0f));
  wmma::fill_fragment(acc, 0.0f);
  if (threadIdx.x < 16) wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
}

// Bug: rows 20 elements (40 bytes) apart; ldm must be a multiple of 8 for __half.
__global__ void wmma_bad_ldm_kernel(const __half* in, float* out) {
  HalfA fa;
  wmma::load_matrix_sync(fa, in, 20);
  out[threadIdx.x] = __half2float(fa.x[0]);
}

// Bug: the tile starts 8 __half elements (16 bytes) into a 32-byte aligned buffer.
__global__ void wmma_misaligned_kernel(const __half* in, float* out) {
  HalfA fa;
  wmma::load_matrix_sync(fa, in + 8, 16);
  out[threadIdx.x] = __half2float(fa.x[0]);
}

// Bug: each lane passes the tile of its own lane number.
__global__ void wmma_nonuniform_pointer_kernel(const __half* in, float* out) {
  HalfA fa;
  wmma::load_matrix_sync(fa, in + 16 * threadIdx.x, 16);
  out[threadIdx.x] = __half2float(fa.x[0]);
}

// Bug: negates x[0..7] only, as if a lane held 8 distinct elements (num_elements is 16).
__global__ void wmma_partial_update_kernel(const __half* in, float* out) {
  HalfA fa;
  HalfB fb;
  FloatAcc acc;
  wmma::load_matrix_sync(fa, in, 16);
  wmma::load_matrix_sync(fb, in, 16);
  for (int i = 0; i < 8; ++i) fa.x[i] = __hneg(fa.x[i]);
  wmma::fill_fragment(acc, 0.0f);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
}

// A buffer aligned as cudaMalloc's (256 bytes).
template <typename T>
struct Aligned {
  T* p;
  explicit Aligned(size_t n)
      : p(static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(256)))) {}
  ~Aligned() { ::operator delete(p, std::align_val_t(256)); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
};

template <typename T>
T from_float(float v) {
  return T(v);
}
template <>
__half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T, bool kColMajorC>
cudaError_t run_gemm(float* out, int64_t n) {
  if (n < int64_t(2 * kM * kN + kM * kK + kN * kK)) return cudaErrorInvalidValue;
  Aligned<T> a(size_t(kM) * kK), b(size_t(kN) * kK);
  const float* in_a = out + kM * kN;
  const float* in_b = in_a + kM * kK;
  const float* c0 = in_b + kN * kK;
  for (int i = 0; i < kM * kK; ++i) a.p[i] = from_float<T>(in_a[i]);
  for (int i = 0; i < kN * kK; ++i) b.p[i] = from_float<T>(in_b[i]);
  const size_t smem = size_t(16 + kN) * WmmaInput<T>::kLd * sizeof(T);
  GANLOSS_LAUNCH(kM / 16, 32 * (kN / 16), smem, nullptr, wmma_gemm_kernel<T, kColMajorC>)(
      a.p, b.p, c0, out, kM, kN, kK);
  return cudaGetLastError();
}

}  // namespace
}  // namespace ganloss

namespace simt_selftest {

cudaError_t run_wmma(const std::string& name, float* out, int64_t n, int64_t) {
  using namespace ganloss;
  if (name == "wmma_gemm_f16") return run_gemm<__half, false>(out, n);
  if (name == "wmma_gemm_bf16") return run_gemm<__nv_bfloat16, true>(out, n);
  if (name == "wmma_gemm_tf32") return run_gemm<float, false>(out, n);
  if (n < 256) return cudaErrorInvalidValue;
  Aligned<__half> in(16 * 32 * 16);  // 32 tiles of 16 x 16
  for (int i = 0; i < 16 * 32 * 16; ++i) in.p[i] = __float2half_rn(float(i % 7) - 3.0f);
  const cudaStream_t s = nullptr;
  if (name == "wmma_partial_warp") GANLOSS_LAUNCH(1, 32, 0, s, wmma_partial_warp_kernel)(out);
  else if (name == "wmma_bad_ldm") GANLOSS_LAUNCH(1, 32, 0, s, wmma_bad_ldm_kernel)(in.p, out);
  else if (name == "wmma_misaligned")
    GANLOSS_LAUNCH(1, 32, 0, s, wmma_misaligned_kernel)(in.p, out);
  else if (name == "wmma_nonuniform_pointer")
    GANLOSS_LAUNCH(1, 32, 0, s, wmma_nonuniform_pointer_kernel)(in.p, out);
  else if (name == "wmma_partial_update")
    GANLOSS_LAUNCH(1, 32, 0, s, wmma_partial_update_kernel)(in.p, out);
  else return cudaErrorInvalidValue;
  return cudaGetLastError();
}

std::vector<std::string> wmma_names() {
  return {"wmma_gemm_f16", "wmma_gemm_bf16", "wmma_gemm_tf32", "wmma_partial_warp", "wmma_bad_ldm",
          "wmma_misaligned", "wmma_nonuniform_pointer", "wmma_partial_update"};
}

}  // namespace simt_selftest
