// Host/device qualifiers for math shared by the CPU kernels (g++) and the CUDA kernels (nvcc).
#pragma once

#ifdef __CUDACC__
#define GANLOSS_HD __host__ __device__ __forceinline__
#else
#define GANLOSS_HD inline
#endif

#include <cmath>
#include <cstdint>

namespace ganloss {

// Accumulation type: fp32 for fp16/bf16/fp32 inputs, fp64 for fp64 inputs.
template <typename T> struct acc_type { using type = float; };
template <> struct acc_type<double> { using type = double; };
template <typename T> using acc_t = typename acc_type<T>::type;

// Element type of the tensors a kernel reads, as passed to the torch-free CUDA launchers.
enum class DType : int32_t { F32 = 0, F64 = 1, F16 = 2, BF16 = 3 };

}  // namespace ganloss
