// CPU kernels of the Gram-matrix and style-loss ops (math in common/gram.h), on at::bmm in the
// accumulation dtype (fp32, fp64 for fp64 features; 16-bit features are widened first), which is
// exact and parallel.
//
// gram_matrix          : G = s F F^T                                   reads F, writes G
// gram_matrix_backward : dF = round(bmm(s (dG + dG^T), F))             reads dG, F; writes dF
// style_loss           : D = s X X^T - s Y Y^T (or - G_target) written into the saved D, then per
//                        segment the fp64 sum of |D| or D^2 (one thread per row, rows in order:
//                        the same bits for any number of threads), stats and loss (style_group)
// style_loss_backward  : E = g_n f_seg criterion'(D); dX = round(bmm(2 s E, X)),
//                        dY = round(bmm(-2 s E, Y)), dG_target = round(-E) (batch-summed when
//                        broadcast): the upstream gradient is applied before the one rounding.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "../plan/gram_plan.h"

namespace ganloss {
namespace {

at::Tensor widened(const at::Tensor& f, at::ScalarType acc) { return f.to(acc); }

// criterion'(D): sign(D) (0 at 0, as torch's abs backward), 2 D or D (fro; 1/||D|| is in f_seg).
at::Tensor criterion_grad_cpu(const at::Tensor& d, Criterion c) {
  if (c == Criterion::L1) return d.sgn();
  if (c == Criterion::MSE) return d * 2;
  return d;
}

// Per-segment fp64 sums of the criterion terms |d| or d^2 (computed in D's dtype, as torch does)
// of D [B, C, C]: [B] (per_sample) or [1]. Each row of C terms is summed by one thread, rows in
// order per sample and samples in order: the same bits for any number of threads.
at::Tensor segment_sums(const at::Tensor& d, Criterion c, Reduction r) {
  const int64_t batch = d.size(0), rows = d.size(0) * d.size(1), cols = d.size(2);
  at::Tensor row_sums = at::empty({rows}, d.options().dtype(at::kDouble));
  double* out = row_sums.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "style_segment_sums", [&] {
    const scalar_t* in = d.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        double sum = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
          const scalar_t v = in[i * cols + j];
          sum += c == Criterion::L1 ? std::abs(v) : v * v;
        }
        out[i] = sum;
      }
    });
  });
  std::vector<double> sums(r == Reduction::PerSample ? batch : 1, 0.0);
  for (int64_t i = 0; i < rows; ++i) sums[r == Reduction::PerSample ? i / d.size(1) : 0] += out[i];
  return at::tensor(sums, at::kDouble);
}

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>> style_loss_cpu(
    at::TensorList inputs, at::TensorList targets, at::ArrayRef<double> weights,
    at::ArrayRef<double> scales, c10::string_view criterion, c10::string_view reduction,
    bool target_is_gram, bool allow_tf32) {
  StylePlan p = plan_style_loss(inputs, targets, weights, scales, criterion, reduction,
                                target_is_gram, allow_tf32);
  const bool per_sample = p.reduction == Reduction::PerSample;
  std::vector<double> loss(per_sample ? p.batch : 1, 0.0);
  std::vector<at::Tensor> diffs;
  auto stats = p.stats.accessor<double, 2>();
  for (StyleLayerPlan& L : p.layers) {
    const at::Tensor x = widened(L.x, p.acc_dtype);
    at::Tensor& d = L.diff;
    at::bmm_out(d, x, x.transpose(1, 2)).mul_(L.scale);
    if (p.target_is_gram) {
      d.sub_(L.target_gram);
    } else {
      const at::Tensor y = widened(L.y, p.acc_dtype);
      d.baddbmm_(y, y.transpose(1, 2), 1.0, -L.scale);
    }
    diffs.push_back(d);
    const at::Tensor sums = segment_sums(d, p.criterion, p.reduction);
    const double* sum = sums.data_ptr<double>();
    const int64_t count = style_segment_count(p.reduction, L.batch, L.channels);
    for (int64_t s = 0; s < L.segments; ++s) {
      const double seg_sum = L.batch > 0 ? sum[s] : 0.0;
      const GroupTerm t = style_group(p.criterion, p.reduction, L.weight, seg_sum, count);
      stats[L.seg_begin + s][0] = seg_sum;
      stats[L.seg_begin + s][1] = t.grad_factor;
      loss[per_sample ? s : 0] += t.value;
    }
  }
  at::Tensor loss_t = at::tensor(loss, at::kDouble).to(p.acc_dtype);
  p.loss.copy_(per_sample ? loss_t : loss_t.reshape({}));
  return {p.loss, p.stats, diffs};
}

// g_n * f_seg per sample of a layer, as a [B, 1, 1] fp64 tensor.
at::Tensor sample_factors(const StylePlan& p, const StyleLayerPlan& L, const at::Tensor& grad) {
  const at::Tensor f = p.stats.select(1, 1).narrow(0, L.seg_begin, L.segments);
  const at::Tensor g = grad.to(at::kDouble).reshape({-1});
  return (g * f).expand({L.batch}).reshape({L.batch, 1, 1});
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> style_loss_backward_cpu(
    const at::Tensor& grad, const at::Tensor& stats, at::TensorList diffs, at::TensorList inputs,
    at::TensorList targets, at::ArrayRef<double> weights, at::ArrayRef<double> scales,
    c10::string_view criterion, c10::string_view reduction, bool target_is_gram, bool input_grad,
    bool target_grad, bool allow_tf32) {
  StylePlan p = plan_style_loss_backward(grad, stats, diffs, inputs, targets, weights, scales,
                                         criterion, reduction, target_is_gram, input_grad,
                                         target_grad, allow_tf32);
  for (StyleLayerPlan& L : p.layers) {
    const at::Tensor factors = sample_factors(p, L, grad);
    const at::Tensor e = criterion_grad_cpu(L.diff, p.criterion);
    if (input_grad) {
      const at::Tensor m = (e * (factors * (2.0 * L.scale)).to(p.acc_dtype));
      L.input_grad.copy_(at::bmm(m, widened(L.x, p.acc_dtype)));
    }
    if (!target_grad) continue;
    if (p.target_is_gram) {
      at::Tensor dg = -(e * factors.to(p.acc_dtype));
      if (L.target_grad.size(0) == 1 && L.batch != 1) dg = dg.sum(0, /*keepdim=*/true);
      L.target_grad.copy_(dg);
    } else {
      const at::Tensor m = (e * (factors * (-2.0 * L.scale)).to(p.acc_dtype));
      L.target_grad.copy_(at::bmm(m, widened(L.y, p.acc_dtype)));
    }
  }
  return {p.input_grads, p.target_grads};
}

at::Tensor gram_matrix_cpu(const at::Tensor& features, double scale, bool allow_tf32) {
  GramPlan p = plan_gram_matrix(features, scale, allow_tf32);
  const at::Tensor f = widened(p.features, p.acc_dtype);
  at::bmm_out(p.out, f, f.transpose(1, 2)).mul_(p.scale);
  return p.out;
}

at::Tensor gram_matrix_backward_cpu(const at::Tensor& grad, const at::Tensor& features,
                                    double scale, bool allow_tf32) {
  GramPlan p = plan_gram_matrix_backward(grad, features, scale, allow_tf32);
  const at::Tensor m = (p.grad + p.grad.transpose(1, 2)).mul_(p.scale);
  p.out.copy_(at::bmm(m, widened(p.features, p.acc_dtype)));
  return p.out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ganloss, CPU, m) {
  m.impl("gram_matrix", &gram_matrix_cpu);
  m.impl("gram_matrix_backward", &gram_matrix_backward_cpu);
  m.impl("style_loss", &style_loss_cpu);
  m.impl("style_loss_backward", &style_loss_backward_cpu);
}

}  // namespace ganloss
