// Prelude of the SIMT emulation tier: included before a kernel file (csrc/cuda/<family>.cu) so that
// g++ compiles the CUDA source unmodified and runs every CUDA thread as a fiber on the CPU
// (simt_runtime.cpp). Maps the CUDA built-ins the kernels use: qualifiers, thread and block
// indices, __syncthreads, warp shuffles and votes with their masks, atomics, fences, launches
// (GANLOSS_LAUNCH) and dynamic shared memory (dynamic_smem). __half and __nv_bfloat16 come from
// the CUDA headers, which work on the host. nvcuda::wmma is in simt_wmma.h.
//
// What it checks, each reported as a failed launch (cudaGetLastError) naming the kernel, block,
// thread and source line: a barrier or warp collective that not every required thread reaches,
// or that they reach from different lines; a calling or source lane outside a shuffle mask;
// overlapping masks in flight. Shared memory is filled with 0xff bytes at every block start (NaN
// for floats, an invalid bool for UBSan), so a read of shared memory never written shows.
// Out-of-bounds accesses are AddressSanitizer's job (the tier builds with it).
#pragma once

#define GANLOSS_SIMT 1

// Qualifiers: device code is host code here; __shared__ variables are function statics, shared by
// the fibers of the one block that runs at a time (the runtime finds and refills them).
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __grid_constant__
#define __launch_bounds__(...)

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>

namespace simt {

// ---- Launch state of the running fiber ----------------------------------------------------------
struct ThreadState {
  uint3 thread_idx;
  int linear;  // threadIdx in row-major order: x fastest
  int warp, lane;
};
struct BlockState {
  uint3 block_idx;
  dim3 block_dim, grid_dim;
  unsigned char* dynamic_smem;  // 128-byte aligned
  size_t dynamic_smem_bytes;
};
const ThreadState& this_thread();
const BlockState& this_block();

// ---- Synchronisation points (each is a place where the scheduler may switch fibers) ------------
void syncthreads(const char* file, int line);
void yield(const char* what, const char* file, int line);  // atomics and fences

// A warp collective over the lanes in `mask`. Every participating lane passes a pointer to its
// own data; once all lanes of the mask have arrived (from the same line), `complete` runs once
// with every lane's data (nullptr for lanes outside the mask) and may write results into it.
using CollectiveFn = void (*)(void* const* lane_data, unsigned mask, const char* what);
void warp_collective(const char* what, const char* file, int line, unsigned mask, void* data,
                     CollectiveFn complete);
// Records a fault and abandons the launch (does not return to the faulting fiber's code).
[[noreturn]] void fault(const char* fmt, ...);

// ---- Shuffles and votes ----------------------------------------------------------------------------
enum class ShuffleKind { Idx, Xor, Down, Up };

template <typename T>
struct ShuffleData {
  T in, out;
  int arg, width;
};

inline int shuffle_source(ShuffleKind kind, int lane, int arg, int width) {
  const int base = lane & ~(width - 1);
  switch (kind) {
    case ShuffleKind::Idx: return base + (arg & (width - 1));
    case ShuffleKind::Xor: {
      const int src = lane ^ arg;
      return src < base + width ? src : lane;  // beyond the segment: own value
    }
    case ShuffleKind::Down: return lane + arg < base + width ? lane + arg : lane;
    case ShuffleKind::Up: return lane - arg >= base ? lane - arg : lane;
  }
  return lane;
}

template <typename T, ShuffleKind Kind>
T shuffle(const char* what, const char* file, int line, unsigned mask, T v, int arg, int width) {
  static_assert(std::is_trivially_copyable<T>::value, "shuffled values must be trivially copyable");
  if (width <= 0 || width > 32 || (width & (width - 1)))
    fault("%s at %s:%d: width %d is not a power of 2 in [1, 32]", what, file, line, width);
  ShuffleData<T> d{v, v, arg, width};
  warp_collective(what, file, line, mask, &d, [](void* const* lanes, unsigned m, const char* w) {
    for (int l = 0; l < 32; ++l) {
      if (!(m >> l & 1u)) continue;
      auto* me = static_cast<ShuffleData<T>*>(lanes[l]);
      const int src = shuffle_source(Kind, l, me->arg, me->width);
      if (!(m >> src & 1u))
        fault("%s: lane %d reads lane %d, which is outside the mask 0x%08x", w, l, src, m);
      me->out = static_cast<ShuffleData<T>*>(lanes[src])->in;
    }
  });
  return d.out;
}

enum class VoteKind { Ballot, Any, All, Sync };
struct VoteData {
  int pred;
  unsigned out;
};

template <VoteKind Kind>
unsigned vote(const char* what, const char* file, int line, unsigned mask, int pred) {
  VoteData d{pred != 0, 0};
  warp_collective(what, file, line, mask, &d, [](void* const* lanes, unsigned m, const char*) {
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l)
      if (m >> l & 1u) ballot |= unsigned(static_cast<VoteData*>(lanes[l])->pred) << l;
    for (int l = 0; l < 32; ++l) {
      if (!(m >> l & 1u)) continue;
      unsigned& out = static_cast<VoteData*>(lanes[l])->out;
      if (Kind == VoteKind::Ballot) out = ballot;
      if (Kind == VoteKind::Any) out = ballot != 0;
      if (Kind == VoteKind::All) out = ballot == m;
    }
  });
  return d.out;
}

// ---- Atomics: plain read-modify-write (one OS thread runs every fiber), then a switch point ----
template <typename T, typename F>
T atomic_rmw(const char* what, const char* file, int line, T* p, F f) {
  const T old = *p;
  *p = f(old);
  yield(what, file, line);
  return old;
}

// ---- Launches ---------------------------------------------------------------------------------------
struct LaunchConfig {
  dim3 grid, block;
  size_t dynamic_smem_bytes;
  const void* kernel;  // identity for cudaFuncSetAttribute
  const char* name;
};
// Runs body(context) once per CUDA thread of every block, blocks one at a time in a seeded random
// order. A fault or a bad configuration is left in the error state read by cudaGetLastError.
void run_grid(const LaunchConfig& config, void (*body)(void*), void* context);

template <typename... P>
struct Launcher {
  LaunchConfig config;
  void (*kernel)(P...);

  Launcher(dim3 grid, dim3 block, size_t smem, cudaStream_t, const char* name, void (*k)(P...))
      : config{grid, block, smem, reinterpret_cast<const void*>(k), name}, kernel(k) {}

  template <typename... A>
  void operator()(A&&... args) const {
    struct Call {
      void (*kernel)(P...);
      std::tuple<std::decay_t<P>...> params;  // the kernel's by-value parameters
    } call{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
    run_grid(config, [](void* c) {
      auto* call = static_cast<Call*>(c);
      auto params = call->params;  // each thread gets its own copy of the parameters
      std::apply(call->kernel, params);
    }, &call);
  }
};

}  // namespace simt

// ---- The CUDA names -------------------------------------------------------------------------------
#define threadIdx (::simt::this_thread().thread_idx)
#define blockIdx (::simt::this_block().block_idx)
#define blockDim (::simt::this_block().block_dim)
#define gridDim (::simt::this_block().grid_dim)
#define warpSize 32

#define __syncthreads() ::simt::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) \
  ((void)::simt::vote<::simt::VoteKind::Sync>("__syncwarp", __FILE__, __LINE__, \
                                               ::simt::syncwarp_mask(__VA_ARGS__), 1))
namespace simt {
inline unsigned syncwarp_mask(unsigned mask = 0xffffffffu) { return mask; }
}  // namespace simt

#define SIMT_SHUFFLE_(kind, name, mask, v, arg, ...)                                        \
  ::simt::shuffle<std::decay_t<decltype(v)>, ::simt::ShuffleKind::kind>(                    \
      name, __FILE__, __LINE__, mask, v, arg, ::simt::shuffle_width(__VA_ARGS__))
namespace simt {
inline int shuffle_width(int width = 32) { return width; }
}  // namespace simt
#define __shfl_sync(mask, v, src, ...) SIMT_SHUFFLE_(Idx, "__shfl_sync", mask, v, src, __VA_ARGS__)
#define __shfl_xor_sync(mask, v, lane_mask, ...) \
  SIMT_SHUFFLE_(Xor, "__shfl_xor_sync", mask, v, lane_mask, __VA_ARGS__)
#define __shfl_down_sync(mask, v, delta, ...) \
  SIMT_SHUFFLE_(Down, "__shfl_down_sync", mask, v, delta, __VA_ARGS__)
#define __shfl_up_sync(mask, v, delta, ...) \
  SIMT_SHUFFLE_(Up, "__shfl_up_sync", mask, v, delta, __VA_ARGS__)
#define __ballot_sync(mask, pred) \
  ::simt::vote<::simt::VoteKind::Ballot>("__ballot_sync", __FILE__, __LINE__, mask, pred)
#define __any_sync(mask, pred) \
  int(::simt::vote<::simt::VoteKind::Any>("__any_sync", __FILE__, __LINE__, mask, pred))
#define __all_sync(mask, pred) \
  int(::simt::vote<::simt::VoteKind::All>("__all_sync", __FILE__, __LINE__, mask, pred))

#define __threadfence() ::simt::yield("__threadfence", __FILE__, __LINE__)
#define __threadfence_block() ::simt::yield("__threadfence_block", __FILE__, __LINE__)
#define atomicAdd(p, v) \
  ::simt::atomic_rmw("atomicAdd", __FILE__, __LINE__, p, [&](auto o) { return decltype(o)(o + (v)); })
#define atomicSub(p, v) \
  ::simt::atomic_rmw("atomicSub", __FILE__, __LINE__, p, [&](auto o) { return decltype(o)(o - (v)); })
#define atomicExch(p, v) \
  ::simt::atomic_rmw("atomicExch", __FILE__, __LINE__, p, [&](auto) { return (v); })
#define atomicMax(p, v) \
  ::simt::atomic_rmw("atomicMax", __FILE__, __LINE__, p, [&](auto o) { return o < (v) ? (v) : o; })
#define atomicMin(p, v) \
  ::simt::atomic_rmw("atomicMin", __FILE__, __LINE__, p, [&](auto o) { return (v) < o ? (v) : o; })
#define atomicCAS(p, cmp, v) \
  ::simt::atomic_rmw("atomicCAS", __FILE__, __LINE__, p, [&](auto o) { return o == (cmp) ? (v) : o; })

#define __ldg(p) (*(p))

#define GANLOSS_LAUNCH(grid, block, smem, stream, ...) \
  ::simt::Launcher(grid, block, smem, stream, #__VA_ARGS__, __VA_ARGS__)

namespace ganloss {
template <typename T>
T* dynamic_smem() {
  return reinterpret_cast<T*>(::simt::this_block().dynamic_smem);
}
}  // namespace ganloss
#include "simt_wmma.h"
