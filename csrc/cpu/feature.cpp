// CPU kernels of the multi-layer feature loss (math and work split in common/feature.h).
//
// forward : per chunk, sum_j criterion(x_j - y_j) [* m_j] (and sum_j m_j) into a chunk partial,
//           and, when asked, dx_j = s_l * criterion'(d_j) [* m_j], dy_j = -dx_j for an upstream
//           gradient of 1. Reads x, y (and m) once, writes dx (and dy) once.
// backward: dx_j = g_n * f_seg * round(s_l * criterion'(d_j) [* m_j]), recomputed from x, y:
//           the bits of forward + scale, so repeated backward passes agree exactly.
// scale   : dx_j *= g_n * f_seg in place; chunks whose factor is exactly 1 are skipped.
// Chunks run in parallel (at::parallel_for); partials are combined in a fixed order, so the loss
// does not depend on the number of threads.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "../feature_plan.h"

namespace ganloss {
namespace {

// Which gradients a forward chunk writes: a template argument, so that the vectorized loop has
// no conditional (masked) stores.
enum GradOut { kNoGrad = 0, kDx = 1, kDy = 2, kDxDy = 3 };

// L is taken by value so the compiler knows the gradient stores cannot change it. The element
// loop is an explicit SIMD reduction (-fopenmp-simd): its summation order is fixed by the build,
// not by the data or the thread count.
template <typename T, Criterion C, bool Masked, int Out>
void forward_chunk(const FeatureLayer L, const ChunkRange& r, double eps, double* partial) {
  using A = acc_t<T>;
  const int64_t base = r.sample * L.per_sample;
  const T* __restrict__ x = static_cast<const T*>(L.x) + base;
  const T* __restrict__ y = static_cast<const T*>(L.y) + base;
  T* __restrict__ dx = L.dx ? static_cast<T*>(L.dx) + base : nullptr;
  T* __restrict__ dy = L.dy ? static_cast<T*>(L.dy) + base : nullptr;
  const A e = A(eps);
  A sum = 0, mask_sum = 0;
#pragma omp simd reduction(+ : sum, mask_sum)
  for (int64_t j = r.begin; j < r.end; ++j) {
    const A d = A(x[j]) - A(y[j]);
    A v = criterion_value<C>(d, e);
    if constexpr (Masked) {
      const A m = mask_at<A>(L, r.sample, j);
      v *= m;
      mask_sum += m;
    }
    sum += v;
    if constexpr (Out != kNoGrad) {
      const A g = unit_grad<C, Masked>(L, r.sample, j, d, e);
      if constexpr ((Out & kDx) != 0) dx[j] = T(g);
      if constexpr ((Out & kDy) != 0) dy[j] = T(-g);
    }
  }
  partial[0] = double(sum);
  partial[1] = double(mask_sum);
}

// The forward's gradient rounded to T, then scaled as scale_chunk does: the same bits as the
// forward + scale path, so repeated backward passes agree exactly.
template <typename T, Criterion C, bool Masked>
void backward_chunk(const FeatureLayer L, const ChunkRange& r, double eps, double factor) {
  using A = acc_t<T>;
  const int64_t base = r.sample * L.per_sample;
  const T* __restrict__ x = static_cast<const T*>(L.x) + base;
  const T* __restrict__ y = static_cast<const T*>(L.y) + base;
  T* __restrict__ dx = L.dx ? static_cast<T*>(L.dx) + base : nullptr;
  T* __restrict__ dy = L.dy ? static_cast<T*>(L.dy) + base : nullptr;
  const A e = A(eps), f = A(factor);
  for (int64_t j = r.begin; j < r.end; ++j) {
    const A g = A(T(unit_grad<C, Masked>(L, r.sample, j, A(x[j]) - A(y[j]), e))) * f;
    if (dx) dx[j] = T(g);
    if (dy) dy[j] = T(-g);
  }
}

template <typename T>
void scale_chunk(const FeatureLayer L, const ChunkRange& r, double factor) {
  using A = acc_t<T>;
  T* __restrict__ g = static_cast<T*>(L.dx) + r.sample * L.per_sample;
  const A f = A(factor);
  for (int64_t j = r.begin; j < r.end; ++j) g[j] = T(A(g[j]) * f);
}

// Upstream gradient of sample n (a scalar gradient serves every sample).
double upstream(const at::Tensor& grad, Reduction r, int64_t n) {
  const int64_t i = r == Reduction::PerSample ? n : 0;
  return grad.scalar_type() == at::kDouble ? grad.data_ptr<double>()[i]
                                           : double(grad.data_ptr<float>()[i]);
}

double segment_factor(const FeaturePlan& p, const ChunkRange& r, const at::Tensor& grad,
                      const double* stats) {
  const FeatureLayer& L = p.layers[r.layer];
  return upstream(grad, p.reduction, r.sample) * stats[kStatCols * (L.seg_begin + r.sample) + 2];
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

// Chunk partials -> segment sums (stats columns 0, 1) -> layer terms and grad factors -> loss.
void finalize(FeaturePlan& p, const std::vector<double>& partials) {
  double* stats = p.stats.data_ptr<double>();
  for (const FeatureLayer& L : p.layers) {
    for (int64_t n = 0; n < L.batch; ++n) {
      double s = 0.0, ms = 0.0;
      for (int64_t k = 0; k < L.chunks_per_sample; ++k) {
        const int64_t c = L.chunk_begin + n * L.chunks_per_sample + k;
        s += partials[2 * c];
        ms += partials[2 * c + 1];
      }
      stats[kStatCols * (L.seg_begin + n)] = s;
      stats[kStatCols * (L.seg_begin + n) + 1] = ms;
    }
  }
  const int64_t num_layers = int64_t(p.layers.size());
  std::vector<double> terms(p.reduction == Reduction::PerSample ? p.total_segments : num_layers);
  for (int64_t l = 0; l < num_layers; ++l)
    finalize_layer(p.layers[l], l, p.criterion, p.reduction, stats, terms.data());
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
        double* out = &partials[2 * c];
        const int grads = (L.dx ? kDx : 0) | (L.dy ? kDy : 0);
        dispatch_grad_out(grads, [&](auto g) {
          if (L.mask) forward_chunk<scalar_t, C, true, decltype(g)::value>(L, r, p.eps, out);
          else forward_chunk<scalar_t, C, false, decltype(g)::value>(L, r, p.eps, out);
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
  check_backward_args(p, grad, stats);
  const at::Tensor g = grad.contiguous();
  const double* st = stats.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, inputs[0].scalar_type(), "feature_loss_backward_cpu", [&] {
    dispatch_criterion(p.criterion, [&](auto crit) {
      constexpr Criterion C = decltype(crit)::value;
      for_each_chunk(p, [&](int64_t, const ChunkRange& r) {
        const FeatureLayer& L = p.layers[r.layer];
        const double factor = segment_factor(p, r, g, st);
        if (L.mask) backward_chunk<scalar_t, C, true>(L, r, p.eps, factor);
        else backward_chunk<scalar_t, C, false>(L, r, p.eps, factor);
      });
    });
  });
  return {p.input_grads, p.target_grads};
}

void feature_loss_scale_grads_cpu(const at::Tensor& grad, const at::Tensor& stats,
                                  c10::string_view reduction, at::TensorList grads) {
  const FeaturePlan p = plan_grad_scale(grad, stats, reduction, grads);
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
