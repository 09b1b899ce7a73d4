// nvcuda::wmma (CUDA's warp matrix multiply-accumulate API, <mma.h>) for the SIMT emulation
// tier: included at the end of the prelude simt.h, so a kernel file's own `#include <mma.h>` is
// harmless (the include guard of CUDA's crt/mma.h is defined here and that header adds nothing).
//
// Shapes and types: m16n16k16, m32n8k16 and m8n32k16 with __half or __nv_bfloat16 inputs
// (matrix_a, matrix_b; row_major or col_major) and float accumulators (__half accumulators with
// __half inputs too); m16n16k8 with precision::tf32 inputs (float storage) and float accumulators.
// num_elements, num_storage_elements, element_type, storage_element_type and x[] are CUDA's
// (e.g. 16 elements per lane for a __half matrix_a of m16n16k16, 8 for __nv_bfloat16).
//
// Element layout (unspecified on hardware; kernels may only apply elementwise operations to x[]):
// a fragment holds an R x C tile (matrix_a M x K, matrix_b K x N, accumulator M x N) indexed
// row-major by its logical row and column, e = r * C + c, whatever the memory layout it was
// loaded from. With D = R * C / 32 distinct elements per lane, lane l holds element
// e = (i % D) * 32 + l in x[i]; when num_elements > D (__half matrix_a / matrix_b fragments, as
// on hardware) x[i] and x[i + D] are copies of the same element, and mma_sync faults if the copies
// differ (an elementwise update that skipped some x[i]). A fragment is filled with 0xff bytes when
// constructed (NaN for every element type), so an accumulator used before fill_fragment or
// load_matrix_sync shows as NaN, like unwritten shared memory.
//
// load_matrix_sync, store_matrix_sync and mma_sync are warp collectives over all 32 lanes
// (simt::warp_collective, mask 0xffffffff, named "wmma::load_matrix_sync" and so on): a call by
// part of the warp, or from different lines, faults like a shuffle. They fault as well for an ldm
// that is not a multiple of 16 bytes (8 __half or __nv_bfloat16 elements, 4 float elements), a
// pointer that is not 256-bit (32-byte) aligned, a layout_t that is neither mem_row_major nor
// mem_col_major, lanes of one call that pass different pointers, ldm or layouts, or lanes that
// pass the same fragment. Memory is read and written element by element, so AddressSanitizer
// checks every access (the emulator's dynamic shared memory is 128-byte aligned).
//
// mma_sync: D = A * B + C with every product and sum in fp32: for each element of D, in this
// order, acc = C[m][n]; acc = acc + A[m][k] * B[k][n] for k = 0, 1, ..., K-1 (each product is
// exact in fp32 for __half, __nv_bfloat16 and tf32 inputs, so only the sums round, to nearest
// even), then D[m][n] = acc, rounded to nearest even for a __half accumulator. precision::tf32
// inputs are truncated to tf32 (the low 13 bits of the float cleared, NaN and infinity kept) before
// the product; __float_to_tf32 rounds to nearest, ties away from zero, as cvt.rna.tf32.f32.
// Tensor cores sum in another order with other internal precision, so hardware results can differ
// in the last bits; the emulator's are bitwise reproducible.
#pragma once

#define __CUDA_MMA_H__ 1  // CUDA's crt/mma.h (included by mma.h) then declares nothing

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace nvcuda {
namespace wmma {

// ---- Tags, layouts, element types ---------------------------------------------------------------
struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
namespace precision {
struct tf32;
}  // namespace precision

enum layout_t { mem_row_major, mem_col_major };

template <typename T>
struct helper_traits {
  typedef T element_type;
  typedef T storage_element_type;
  typedef T fill_argument_type;
};
template <>
struct helper_traits<precision::tf32> {
  typedef precision::tf32 element_type;
  typedef float storage_element_type;
  typedef float fill_argument_type;
};

// Rounds to tf32 (10 explicit mantissa bits) to nearest, ties away from zero; the low 13 bits of
// the result are zero. NaN and infinity pass unchanged.
inline float __float_to_tf32(float in) {
  uint32_t u;
  std::memcpy(&u, &in, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & ~0x1fffu;
  float out;
  std::memcpy(&out, &u, 4);
  return out;
}

// ---- Fragments ----------------------------------------------------------------------------------
template <typename T, int size, int packed_size = size>
struct alignas(8) __frag_base {
  enum { num_elements = size };
  enum { num_storage_elements = packed_size };
  typedef T element_type;
  typedef typename helper_traits<T>::storage_element_type storage_element_type;
  storage_element_type x[num_storage_elements];
  __frag_base() { std::memset(static_cast<void*>(x), 0xff, sizeof x); }  // NaN until written
};

namespace detail {

template <typename Use, int M, int N, int K>
struct Tile;
template <int M, int N, int K>
struct Tile<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct Tile<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct Tile<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <typename T, typename... U>
constexpr bool one_of() {
  return (std::is_same<T, U>::value || ...);
}

template <typename Use, int M, int N, int K, typename T, typename Layout>
constexpr bool supported() {
  constexpr bool k16 = (M == 16 && N == 16 && K == 16) || (M == 32 && N == 8 && K == 16) ||
                       (M == 8 && N == 32 && K == 16);
  constexpr bool k8 = M == 16 && N == 16 && K == 8;
  if (std::is_same<Use, accumulator>::value)
    return std::is_void<Layout>::value &&
           ((k16 && one_of<T, float, __half>()) || (k8 && std::is_same<T, float>::value));
  if (!one_of<Use, matrix_a, matrix_b>() || !one_of<Layout, row_major, col_major>()) return false;
  return (k16 && one_of<T, __half, __nv_bfloat16>()) || (k8 && std::is_same<T, precision::tf32>::value);
}

// CUDA's element counts: 16 for __half matrix_a and matrix_b fragments, otherwise one element of
// the tile per lane and register slot.
template <typename Use, int M, int N, int K, typename T>
constexpr int fragment_size() {
  if (!std::is_same<Use, accumulator>::value && std::is_same<T, __half>::value) return 16;
  return Tile<Use, M, N, K>::rows * Tile<Use, M, N, K>::cols / 32;
}

}  // namespace detail

template <typename Use, int m, int n, int k, typename T, typename Layout = void>
class fragment : public __frag_base<T, detail::fragment_size<Use, m, n, k, T>()> {
  static_assert(detail::supported<Use, m, n, k, T, Layout>(),
                "nvcuda::wmma (SIMT emulator): unsupported fragment; supported are m16n16k16, "
                "m32n8k16, m8n32k16 with __half or __nv_bfloat16 matrix_a/matrix_b (row_major or "
                "col_major) and float or __half accumulators, and m16n16k8 with precision::tf32 "
                "inputs and float accumulators");
};

template <typename Use, int m, int n, int k, typename T, typename Layout>
inline void fill_fragment(fragment<Use, m, n, k, T, Layout>& f,
                          const typename helper_traits<T>::fill_argument_type& v) {
  using S = typename helper_traits<T>::storage_element_type;
  const S s = S(v);
  for (int i = 0; i < f.num_storage_elements; ++i) f.x[i] = s;
}

// ---- The emulation ------------------------------------------------------------------------------
namespace detail {

template <typename F>
struct FragInfo;
template <typename U, int M, int N, int K, typename T, typename L>
struct FragInfo<fragment<U, M, N, K, T, L>> {
  using Use = U;
  using Element = T;
  using Storage = typename helper_traits<T>::storage_element_type;
  static constexpr int rows = Tile<U, M, N, K>::rows, cols = Tile<U, M, N, K>::cols;
  static constexpr int distinct = rows * cols / 32;  // elements of the tile per lane
  static constexpr int size = fragment_size<U, M, N, K, T>();
  static constexpr bool col_major = std::is_same<L, wmma::col_major>::value;
  static const char* name() {
    return std::is_same<U, matrix_a>::value ? "matrix_a"
           : std::is_same<U, matrix_b>::value ? "matrix_b" : "accumulator";
  }
};

template <typename S>
const char* type_name() {
  if (std::is_same<S, __half>::value) return "__half";
  if (std::is_same<S, __nv_bfloat16>::value) return "__nv_bfloat16";
  return "float";
}

inline float to_float(__half v) { return __half2float(v); }
inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
inline float to_float(float v) { return v; }
// What a tensor core reads of a tf32 operand: the float with its low 13 bits cleared.
inline float tf32_operand(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u &= ~0x1fffu;
  std::memcpy(&v, &u, 4);
  return v;
}
template <typename T>
inline T from_float(float v);
template <>
inline float from_float<float>(float v) { return v; }
template <>
inline __half from_float<__half>(float v) { return __float2half_rn(v); }

// A per-instantiation address identifying the operation (lanes at one line must agree on it).
template <typename Op, typename F>
inline const char op_tag = 0;
struct LoadOp;
struct StoreOp;
struct MmaOp;

inline const char* layout_name(int layout) {
  return layout == mem_row_major ? "mem_row_major" : layout == mem_col_major ? "mem_col_major"
                                                                             : "invalid";
}

// Per-lane arguments of a load or store.
struct MemArgs {
  const void* op;
  const char* file;
  int line;
  const void* p;
  unsigned ldm;
  int layout;  // layout_t
  void* frag;
};

template <typename S>
void check_memory(const char* what, const char* file, int line, const void* p, unsigned ldm,
                  int layout) {
  constexpr unsigned multiple = 16 / sizeof(S);
  if (ldm % multiple != 0)
    ::simt::fault("%s at %s:%d: ldm %u is not a multiple of %u (for %s elements; rows or columns "
                  "must start at multiples of 16 bytes)", what, file, line, ldm, multiple,
                  type_name<S>());
  if (layout != mem_row_major && layout != mem_col_major)
    ::simt::fault("%s at %s:%d: layout %d is neither mem_row_major nor mem_col_major", what, file,
                  line, layout);
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
    ::simt::fault("%s at %s:%d: the pointer %p is not 256-bit (32-byte) aligned", what, file, line,
                  p);
}

// The checks every lane's arguments must pass together: the same operation, pointer, ldm and
// layout in all lanes, and a fragment of its own in each.
inline void check_uniform(void* const* lanes, const char* what) {
  const auto* a0 = static_cast<const MemArgs*>(lanes[0]);
  for (int l = 1; l < 32; ++l) {
    const auto* a = static_cast<const MemArgs*>(lanes[l]);
    if (a->op != a0->op)
      ::simt::fault("%s at %s:%d: lanes 0 and %d call it with different fragment types", what,
                    a0->file, a0->line, l);
    if ((a->p != a0->p || a->ldm != a0->ldm || a->layout != a0->layout))
      ::simt::fault("%s at %s:%d: lane %d passes pointer %p, ldm %u, %s, but lane 0 passes %p, "
                    "ldm %u, %s: they must be the same in the whole warp", what, a0->file,
                    a0->line, l, a->p, a->ldm, layout_name(a->layout), a0->p, a0->ldm,
                    layout_name(a0->layout));
  }
}

template <typename Frag>
void check_own_fragments(Frag* const* frags, const char* what, const char* file, int line,
                         const char* role) {
  for (int l = 1; l < 32; ++l)
    for (int o = 0; o < l; ++o)
      if (frags[l] == frags[o])
        ::simt::fault("%s at %s:%d: lanes %d and %d pass the same %s fragment (fragments are "
                      "per-thread registers)", what, file, line, o, l, role);
}

template <typename Frag>
void load_complete(void* const* lanes, unsigned, const char* what) {
  using I = FragInfo<Frag>;
  using S = typename I::Storage;
  check_uniform(lanes, what);
  const auto* a0 = static_cast<const MemArgs*>(lanes[0]);
  Frag* frags[32];
  for (int l = 0; l < 32; ++l) frags[l] = static_cast<Frag*>(static_cast<const MemArgs*>(lanes[l])->frag);
  check_own_fragments(frags, what, a0->file, a0->line, I::name());
  const S* p = static_cast<const S*>(a0->p);
  const size_t ldm = a0->ldm;
  for (int l = 0; l < 32; ++l)
    for (int i = 0; i < I::size; ++i) {
      const int e = (i % I::distinct) * 32 + l, r = e / I::cols, c = e % I::cols;
      frags[l]->x[i] = a0->layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
    }
}

template <typename Frag>
void store_complete(void* const* lanes, unsigned, const char* what) {
  using I = FragInfo<Frag>;
  using S = typename I::Storage;
  check_uniform(lanes, what);
  const auto* a0 = static_cast<const MemArgs*>(lanes[0]);
  S* p = static_cast<S*>(const_cast<void*>(a0->p));
  const size_t ldm = a0->ldm;
  for (int l = 0; l < 32; ++l) {
    const Frag& f = *static_cast<const Frag*>(static_cast<const MemArgs*>(lanes[l])->frag);
    for (int i = 0; i < I::distinct; ++i) {
      const int e = i * 32 + l, r = e / I::cols, c = e % I::cols;
      (a0->layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[i];
    }
  }
}

template <typename Frag>
void load(Frag& f, const void* p, unsigned ldm, int layout, const char* file, int line) {
  static const char* const what = "wmma::load_matrix_sync";
  check_memory<typename FragInfo<Frag>::Storage>(what, file, line, p, ldm, layout);
  MemArgs args{&op_tag<LoadOp, Frag>, file, line, p, ldm, layout, &f};
  ::simt::warp_collective(what, file, line, 0xffffffffu, &args, &load_complete<Frag>);
}

template <typename Frag>
void store(void* p, const Frag& f, unsigned ldm, int layout, const char* file, int line) {
  static const char* const what = "wmma::store_matrix_sync";
  check_memory<typename FragInfo<Frag>::Storage>(what, file, line, p, ldm, layout);
  MemArgs args{&op_tag<StoreOp, Frag>, file, line, p, ldm, layout, const_cast<Frag*>(&f)};
  ::simt::warp_collective(what, file, line, 0xffffffffu, &args, &store_complete<Frag>);
}

struct MmaArgs {
  const void* op;
  const char* file;
  int line;
  void* d;
  const void *a, *b, *c;
};

// The warp's tile of a fragment as floats (row-major R x C), checking that copies agree.
template <typename Frag>
void gather(void* const* lanes, const void* MmaArgs::*which, float* tile, const char* what) {
  using I = FragInfo<Frag>;
  using S = typename I::Storage;
  constexpr bool tf32 = std::is_same<typename I::Element, precision::tf32>::value;
  for (int l = 0; l < 32; ++l) {
    const auto* args = static_cast<const MmaArgs*>(lanes[l]);
    const Frag& f = *static_cast<const Frag*>(args->*which);
    for (int i = 0; i < I::size; ++i) {
      const int j = i % I::distinct;
      if (i != j && std::memcmp(&f.x[i], &f.x[j], sizeof(S)) != 0)
        ::simt::fault("%s at %s:%d: lane %d's %s fragment holds different values in x[%d] and "
                      "x[%d], which are copies of one matrix element: an elementwise update must "
                      "cover every x[i], i < num_elements (%d)", what, args->file, args->line, l,
                      I::name(), j, i, I::size);
      if (i == j) tile[j * 32 + l] = tf32 ? tf32_operand(to_float(f.x[i])) : to_float(f.x[i]);
    }
  }
}

template <typename FD, typename FA, typename FB, typename FC>
void mma_complete(void* const* lanes, unsigned, const char* what) {
  using ID = FragInfo<FD>;
  using IA = FragInfo<FA>;
  using IB = FragInfo<FB>;
  constexpr int M = IA::rows, K = IA::cols, N = IB::cols;
  const auto* a0 = static_cast<const MmaArgs*>(lanes[0]);
  FD* d[32];
  for (int l = 0; l < 32; ++l) {
    const auto* args = static_cast<const MmaArgs*>(lanes[l]);
    if (args->op != a0->op)
      ::simt::fault("%s at %s:%d: lanes 0 and %d call it with different fragment types", what,
                    a0->file, a0->line, l);
    d[l] = static_cast<FD*>(args->d);
  }
  check_own_fragments(d, what, a0->file, a0->line, "accumulator (d)");
  float a[M * K], b[K * N], c[M * N];
  gather<FA>(lanes, &MmaArgs::a, a, what);
  gather<FB>(lanes, &MmaArgs::b, b, what);
  gather<FC>(lanes, &MmaArgs::c, c, what);  // before any d is written: d may be c
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      float acc = c[m * N + n];
      for (int k = 0; k < K; ++k) {
        const float product = a[m * K + k] * b[k * N + n];  // exact
        acc = acc + product;
      }
      c[m * N + n] = acc;
    }
  for (int l = 0; l < 32; ++l)
    for (int i = 0; i < ID::distinct; ++i)
      d[l]->x[i] = from_float<typename ID::Storage>(c[i * 32 + l]);
}

}  // namespace detail

// Loads of matrix_a and matrix_b fragments (layout from the fragment type).
template <typename Use, int m, int n, int k, typename T, typename Layout,
          std::enable_if_t<!std::is_same<Use, accumulator>::value, int> = 0>
inline void load_matrix_sync(fragment<Use, m, n, k, T, Layout>& a,
                             const typename helper_traits<T>::storage_element_type* p,
                             unsigned ldm, const char* file = __builtin_FILE(),
                             int line = __builtin_LINE()) {
  detail::load(a, p, ldm, std::is_same<Layout, col_major>::value ? mem_col_major : mem_row_major,
               file, line);
}

// Loads of accumulators (layout from the argument).
template <int m, int n, int k, typename T>
inline void load_matrix_sync(fragment<accumulator, m, n, k, T>& a, const T* p, unsigned ldm,
                             layout_t layout, const char* file = __builtin_FILE(),
                             int line = __builtin_LINE()) {
  detail::load(a, p, ldm, int(layout), file, line);
}

template <int m, int n, int k, typename T>
inline void store_matrix_sync(T* p, const fragment<accumulator, m, n, k, T>& a, unsigned ldm,
                              layout_t layout, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  detail::store(p, a, ldm, int(layout), file, line);
}

// d = a * b + c (see the top of this file for the order of the sums). d may be c.
template <int m, int n, int k, typename TD, typename TI, typename LA, typename LB, typename TC>
inline void mma_sync(fragment<accumulator, m, n, k, TD>& d,
                     const fragment<matrix_a, m, n, k, TI, LA>& a,
                     const fragment<matrix_b, m, n, k, TI, LB>& b,
                     const fragment<accumulator, m, n, k, TC>& c,
                     const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  static_assert(std::is_same<TI, __half>::value ||
                    (std::is_same<TD, float>::value && std::is_same<TC, float>::value),
                "nvcuda::wmma::mma_sync: __nv_bfloat16 and tf32 inputs need float accumulators");
  using FD = fragment<accumulator, m, n, k, TD>;
  using FA = fragment<matrix_a, m, n, k, TI, LA>;
  using FB = fragment<matrix_b, m, n, k, TI, LB>;
  using FC = fragment<accumulator, m, n, k, TC>;
  detail::MmaArgs args{&detail::op_tag<detail::MmaOp, void (*)(FD, FA, FB, FC)>, file, line, &d,
                       &a, &b, &c};
  ::simt::warp_collective("wmma::mma_sync", file, line, 0xffffffffu, &args,
                          &detail::mma_complete<FD, FA, FB, FC>);
}

}  // namespace wmma
}  // namespace nvcuda
