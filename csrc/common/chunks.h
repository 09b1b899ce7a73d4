// How the multi-tensor families (feature, adversarial) split rows into chunks, one CUDA block
// (or one CPU task) each: torch-free, shared by the plans, the drivers and the kernels.
//
// Chunk sizes are multiples of one CUDA block's step (kBlockThreads threads x kVectorsInFlight
// 16-byte vectors), at most kMaxChunk, and small enough that a problem of at least
// kTargetChunks steps gets kTargetChunks chunks or more (two blocks per SM of a 132-SM GPU):
// chosen from the element count and dtype alone, so the same shapes sum in the same order on any
// device and on the CPU.
#pragma once

#include <cstdint>

#include "hd.h"

namespace ganloss {

constexpr int64_t kBlockThreads = 256;
constexpr int64_t kVectorsInFlight = 4;
constexpr int64_t kMaxChunk = 16384;
constexpr int64_t kTargetChunks = 264;

inline int64_t chunk_elements(int64_t total_elements, int64_t itemsize) {
  const int64_t step = kBlockThreads * kVectorsInFlight * (16 / itemsize);
  const int64_t steps = total_elements / (kTargetChunks * step);
  return step * (steps < 1 ? 1 : steps > kMaxChunk / step ? kMaxChunk / step : steps);
}

GANLOSS_HD int64_t chunks_per_row(int64_t row_len, int64_t chunk) {
  return (row_len + chunk - 1) / chunk;
}

}  // namespace ganloss
