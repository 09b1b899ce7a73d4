// Host helpers every CUDA driver (cuda/<family>_driver.cpp) shares: the check of a CUDA runtime
// call, and the split of a family's layers (or inputs) into launches of at most one by-value
// parameter block each.
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

namespace ganloss {

inline void check_cuda(cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, "CUDA error: ", cudaGetErrorString(err));
}

// Launches needed for `total` items at most `per_launch` at a time.
inline int64_t launch_groups(int64_t total, int64_t per_launch) {
  return (total + per_launch - 1) / per_launch;
}

// Calls f(first, count, index, last) for the consecutive groups of at most per_launch of total
// items: index counts the groups, last marks the final one.
template <typename F>
void for_each_launch_group(int64_t total, int64_t per_launch, F&& f) {
  for (int64_t first = 0, index = 0; first < total; first += per_launch, ++index) {
    const int64_t count = std::min(per_launch, total - first);
    f(first, count, index, first + count == total);
  }
}

}  // namespace ganloss
