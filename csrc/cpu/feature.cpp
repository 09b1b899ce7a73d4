// CPU kernels of the multi-layer feature loss (math and work split in common/feature.h).
//
// forward : per chunk, sum_j criterion(x_j - y_j) [* m_j] (and sum_j m_j) into an fp64 chunk
//           partial, and, when asked, dx_j = s_l * criterion'(d_j) [* m_j], dy_j = -dx_j for an
//           upstream gradient of 1. Reads x, y (and m) once, writes dx (and dy) once.
// backward: recomputed from x, y: fp32/fp64 dx_j = g_n * f_seg * round(s_l * criterion'(d_j) [* m_j])
//           (the bits of forward + scale, so repeated backward passes agree exactly); 16-bit
//           dx_j = round(g_n * f_seg * s_l * criterion'(d_j) [* m_j]), one rounding after the
//           upstream (loss-scaled) gradient is applied.
// scale   : dx_j *= g_n * f_seg in place; chunks whose factor is exactly 1 are skipped.
// Chunks run in parallel (at::parallel_for); partials are combined in a fixed order, so the loss
// does not depend on the number of threads.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../plan/feature_plan.h"

namespace ganloss {
namespace {

// Which gradients a forward chunk writes: a template argument, so that the vectorized loop has
// no conditional (masked) stores.
enum GradOut { kNoGrad = 0, kDx = 1, kDy = 2, kDxDy = 3 };

// The chunk's mask values m[k] in the accumulation type A for its elements k = 0 .. end - begin,
// without a division per element: read in place where they are consecutive in an A mask (a full
// mask, or a one-channel mask over contiguous (N, C, ...) features when the chunk stays within
// one channel), else copied (converted from the input's dtype M) run by run into a per-thread
// buffer (each value repeated mask_div = C times over channels_last features).
template <typename A, typename M>
const A* chunk_mask_as(const FeatureLayer& L, const ChunkRange& r) {
  const M* row_mask = static_cast<const M*>(L.mask) + r.row * L.mask_mod;
  const int64_t div = mask_div(L);
  const int64_t first = (r.begin / div) % L.mask_mod;
  if (std::is_same_v<A, M> && div == 1 && first + (r.end - r.begin) <= L.mask_mod)
    return reinterpret_cast<const A*>(row_mask + first);
  thread_local std::vector<A> buf(kMaxChunk);
  for (int64_t j = r.begin; j < r.end;) {
    const int64_t i = (j / div) % L.mask_mod;
    A* out = buf.data() + (j - r.begin);
    if (div == 1) {
      const int64_t n = std::min(r.end - j, L.mask_mod - i);
      std::copy_n(row_mask + i, n, out);
      j += n;
    } else {
      const int64_t n = std::min(r.end - j, div - j % div);
      std::fill_n(out, n, A(row_mask[i]));
      j += n;
    }
  }
  return buf.data();
}

template <typename T>
const acc_t<T>* chunk_mask(const FeatureLayer& L, const ChunkRange& r) {
  using A = acc_t<T>;
  return L.mask_is_acc ? chunk_mask_as<A, A>(L, r) : chunk_mask_as<A, T>(L, r);
}

// The chunk's elements k = 0 .. n of x, y, dx, dy (dx, dy null when not written).
template <typename T>
struct ChunkData {
  const T* x;
  const T* y;
  T* dx;
  T* dy;
  int64_t n;
};

template <typename T>
ChunkData<T> chunk_data(const FeatureLayer& L, const ChunkRange& r) {
  const int64_t first = r.row * L.row_len + r.begin;
  return {static_cast<const T*>(L.x) + first, static_cast<const T*>(L.y) + first,
          L.dx ? static_cast<T*>(L.dx) + first : nullptr,
          L.dy ? static_cast<T*>(L.dy) + first : nullptr, r.end - r.begin};
}

// The element loop is an explicit SIMD reduction (-fopenmp-simd) into fp64 lanes: its summation
// order is fixed by the build, not by the data or the thread count, and a 16K-element chunk adds
// no visible fp32 rounding error to the sum (terms are rounded to fp32 like torch's own).
template <typename T, Criterion C, bool Masked, int Out>
void forward_chunk(const ChunkData<T> c, const acc_t<T>* __restrict__ mask, double eps,
                   double grad_scale, double* partial) {
  using A = acc_t<T>;
  const T* __restrict__ x = c.x;
  const T* __restrict__ y = c.y;
  T* __restrict__ dx = c.dx;
  T* __restrict__ dy = c.dy;
  const A e = A(eps), s = A(grad_scale);
  double sum = 0, mask_sum = 0;
#pragma omp simd reduction(+ : sum, mask_sum)
  for (int64_t k = 0; k < c.n; ++k) {
    const A d = A(x[k]) - A(y[k]);
    A v = criterion_value<C>(d, e);
    const A m = Masked ? mask[k] : A(1);
    if constexpr (Masked) {
      v *= m;
      mask_sum += double(m);
    }
    sum += double(v);
    if constexpr (Out != kNoGrad) {
      const A g = element_grad<C, Masked>(d, e, s, m);
      if constexpr ((Out & kDx) != 0) dx[k] = T(g);
      if constexpr ((Out & kDy) != 0) dy[k] = T(-g);
    }
  }
  partial[0] = sum;
  partial[1] = mask_sum;
}

// factor = g_n * f_seg. 16-bit: the whole gradient in fp32, rounded once. fp32/fp64: the
// forward's gradient rounded to T, then scaled as scale_chunk does (the same bits).
template <typename T, Criterion C, bool Masked>
void backward_chunk(const ChunkData<T> c, const acc_t<T>* __restrict__ mask, double eps,
                    double grad_scale, double factor) {
  using A = acc_t<T>;
  const T* __restrict__ x = c.x;
  const T* __restrict__ y = c.y;
  T* __restrict__ dx = c.dx;
  T* __restrict__ dy = c.dy;
  const A e = A(eps), f = A(factor);
  const A s = kRoundOnceInBackward<T> ? A(grad_scale * factor) : A(grad_scale);
  for (int64_t k = 0; k < c.n; ++k) {
    const A g = element_grad<C, Masked>(A(x[k]) - A(y[k]), e, s, Masked ? mask[k] : A(1));
    const A scaled = kRoundOnceInBackward<T> ? g : A(T(g)) * f;
    if (dx) dx[k] = T(scaled);
    if (dy) dy[k] = T(-scaled);
  }
}

template <typename T>
void scale_chunk(const FeatureLayer L, const ChunkRange& r, double factor) {
  using A = acc_t<T>;
  T* __restrict__ g = static_cast<T*>(L.dx) + r.row * L.row_len;
  const A f = A(factor);
  for (int64_t j = r.begin; j < r.end; ++j) g[j] = T(A(g[j]) * f);
}

// Upstream gradient of a layer's segment s (a scalar gradient serves every segment).
double upstream(const at::Tensor& grad, Reduction r, int64_t s) {
  const int64_t i = r == Reduction::PerSample ? s : 0;
  return grad.scalar_type() == at::kDouble ? grad.data_ptr<double>()[i]
                                           : double(grad.data_ptr<float>()[i]);
}

// g_n * f_seg of the segment that holds chunk r.
double segment_factor(const FeaturePlan& p, const ChunkRange& r, const at::Tensor& grad,
                      const double* stats) {
  const FeatureLayer& L = p.layers[r.layer];
  const int64_t s = local_segment(L, r.row);
  return upstream(grad, p.reduction, s) * stats[kStatCols * (L.seg_begin + s) + 2];
}

template <typename F>
void dispatch_grad_out(int grads, F&& f) {
  switch (grads) {
    case kNoGrad: f(std::integral_constant<int, kNoGrad>{}); break;
    case kDx: f(std::integral_constant<int, kDx>{}); break;
    case kDy: f(std::integral_constant<int, kDy>{}); break;
    default: f(std::integral_constant<int, kDxDy>{}); break;
  }
}

template <typename F>
void for_each_chunk(const FeaturePlan& p, F&& f) {
  at::parallel_for(0, p.total_chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c)
      f(c, locate_chunk(p.layers.data(), int(p.layers.size()), c));
  });
}

// Chunk partials -> segment sums (stats columns 0, 1) -> segment terms and grad factors -> loss.
void finalize(FeaturePlan& p, const std::vector<double>& partials) {
  double* stats = p.stats.data_ptr<double>();
  for (const FeatureLayer& L : p.layers) {
    for (int64_t seg = 0; seg < L.segments; ++seg) {
      const double* partial = partials.data() + 2 * segment_first_chunk(L, seg);
      double s = 0.0, ms = 0.0;
      for (int64_t k = 0; k < segment_chunks(L); ++k) {
        s += partial[2 * k];
        ms += partial[2 * k + 1];
      }
      stats[kStatCols * (L.seg_begin + seg)] = s;
      stats[kStatCols * (L.seg_begin + seg) + 1] = ms;
    }
  }
  const int64_t num_layers = int64_t(p.layers.size());
  std::vector<double> terms(p.total_segments);
  for (const FeatureLayer& L : p.layers) finalize_layer(L, p.criterion, p.reduction, stats, terms.data());
  const int64_t outputs = p.loss.numel();
  for (int64_t i = 0; i < outputs; ++i) {
    const double v = combine_terms(p.reduction, terms.data(), num_layers, p.batch, i);
    if (p.loss.scalar_type() == at::kDouble) p.loss.data_ptr<double>()[i] = v;
    else p.loss.data_ptr<float>()[i] = float(v);
  }
}

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
feature_loss_cpu(at::TensorList inputs, at::TensorList targets,
                 const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights,
                 c10::string_view criterion, c10::string_view reduction, double eps, bool input_grad,
                 bool target_grad) {
  FeaturePlan p = plan_feature_loss(inputs, targets, masks, weights, criterion, reduction, eps,
                                    input_grad, target_grad, /*outputs=*/true);
  std::vector<double> partials(2 * p.total_chunks);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, inputs[0].scalar_type(), "feature_loss_cpu", [&] {
    dispatch_criterion(p.criterion, [&](auto crit) {
      constexpr Criterion C = decltype(crit)::value;
      for_each_chunk(p, [&](int64_t c, const ChunkRange& r) {
        const FeatureLayer& L = p.layers[r.layer];
        const ChunkData<scalar_t> data = chunk_data<scalar_t>(L, r);
        double* out = &partials[2 * c];
        const int grads = (L.dx ? kDx : 0) | (L.dy ? kDy : 0);
        dispatch_grad_out(grads, [&](auto g) {
          constexpr int Out = decltype(g)::value;
          if (L.mask) {
            forward_chunk<scalar_t, C, true, Out>(data, chunk_mask<scalar_t>(L, r), p.eps, L.grad_scale, out);
          } else {
            forward_chunk<scalar_t, C, false, Out>(data, nullptr, p.eps, L.grad_scale, out);
          }
        });
      });
    });
  });
  finalize(p, partials);
  return {p.loss, p.stats, p.input_grads, p.target_grads};
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> feature_loss_backward_cpu(
    const at::Tensor& grad, const at::Tensor& stats, at::TensorList inputs, at::TensorList targets,
    const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights,
    c10::string_view criterion, c10::string_view reduction, double eps, bool input_grad,
    bool target_grad) {
  FeaturePlan p = plan_feature_loss(inputs, targets, masks, weights, criterion, reduction, eps,
                                    input_grad, target_grad, /*outputs=*/false);
  check_feature_loss_backward_args(p, grad, stats);
  const at::Tensor g = grad.contiguous();
  const double* st = stats.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, inputs[0].scalar_type(), "feature_loss_backward_cpu", [&] {
    dispatch_criterion(p.criterion, [&](auto crit) {
      constexpr Criterion C = decltype(crit)::value;
      for_each_chunk(p, [&](int64_t, const ChunkRange& r) {
        const FeatureLayer& L = p.layers[r.layer];
        const ChunkData<scalar_t> data = chunk_data<scalar_t>(L, r);
        const double factor = segment_factor(p, r, g, st);
        if (L.mask) {
          backward_chunk<scalar_t, C, true>(data, chunk_mask<scalar_t>(L, r), p.eps, L.grad_scale, factor);
        } else {
          backward_chunk<scalar_t, C, false>(data, nullptr, p.eps, L.grad_scale, factor);
        }
      });
    });
  });
  return {p.input_grads, p.target_grads};
}

void feature_loss_scale_grads_cpu(const at::Tensor& grad, const at::Tensor& stats,
                                  c10::string_view reduction, at::TensorList grads) {
  const FeaturePlan p = plan_feature_loss_scale_grads(grad, stats, reduction, grads);
  const at::Tensor g = grad.contiguous();
  const double* st = stats.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads[0].scalar_type(), "feature_loss_scale_grads_cpu", [&] {
    for_each_chunk(p, [&](int64_t, const ChunkRange& r) {
      const double factor = segment_factor(p, r, g, st);
      if (factor != 1.0) scale_chunk<scalar_t>(p.layers[r.layer], r, factor);
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(ganloss, CPU, m) {
  m.impl("feature_loss", &feature_loss_cpu);
  m.impl("feature_loss_backward", &feature_loss_backward_cpu);
  m.impl("feature_loss_scale_grads_", &feature_loss_scale_grads_cpu);
}

}  // namespace ganloss
