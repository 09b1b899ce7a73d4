// See gram_driver.h.
#include "gram_driver.h"

#include <algorithm>
#include <limits>

#include "../plan/gram_plan.h"
#include "driver_helpers.h"
#include "gram_launch.h"

namespace ganloss {
namespace {

GramOperand operand(const at::Tensor& t) {
  return {t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}

GramOutput output(const at::Tensor& t) {
  return {t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}

// The layer of features x [B, C, K] (no target, no outputs yet).
GramLayer gram_layer(const at::Tensor& x, double scale) {
  const int64_t b = x.size(0), c = x.size(1), k = x.size(2);
  TORCH_CHECK_VALUE(b * c * c < std::numeric_limits<int32_t>::max(),
                    "the CUDA Gram kernels need B*C*C < 2^31, got B = ", b, ", C = ", c);
  GramLayer L{};
  L.x = operand(x);
  L.batch = int(b);
  L.channels = int(c);
  L.k = k;
  L.tiles = gram_tiles(c);
  L.k_tiles = int((k + kGramTile - 1) / kGramTile);
  L.split = gram_split(b, c, k);
  L.scale = scale;
  L.weight = 1.0;
  return L;
}

// Sets each layer's work_begin to the blocks count(L) of the layers before it; returns the total.
template <typename F>
int set_work(GramLaunch& p, F count) {
  int64_t n = 0;
  for (int l = 0; l < p.num_layers; ++l) {
    p.layers[l].work_begin = int(n);
    n += count(p.layers[l]);
  }
  TORCH_CHECK(n < std::numeric_limits<int32_t>::max(), "too many CUDA blocks (", n, ")");
  p.num_blocks = int(n);
  return p.num_blocks;
}

// Calls launch(params) once per group of at most kGramLayersPerLaunch layers.
template <typename F>
void for_each_launch(const std::vector<GramLayer>& layers, const GramLaunch& base, F&& launch) {
  for_each_launch_group(int64_t(layers.size()), kGramLayersPerLaunch,
                        [&](int64_t first, int64_t count, int64_t, bool last) {
    GramLaunch p = base;
    p.num_layers = int(count);
    std::copy_n(layers.begin() + first, count, p.layers);
    p.last_launch = last;
    launch(p);
  });
}

int64_t partial_elements(const std::vector<GramLayer>& layers) {
  int64_t n = 0;
  for (const GramLayer& L : layers) n += gram_partials_blocks(L);
  return n * kGramTile * kGramTile;
}

int tile_count(const GramLayer& L) { return gram_reduce_blocks(L); }
int sample_count(const GramLayer& L) { return L.dx.p || L.dy.p ? L.batch : 0; }

// Backward of 16-bit features with a non-L1 A: per-sample exponents for the hi/lo split.
at::Tensor exponents_for(DType dtype, bool split, int64_t samples, const at::Tensor& like) {
  const bool half = dtype == DType::F16 || dtype == DType::BF16;
  return half && split ? at::empty({samples}, like.options().dtype(at::kInt)) : at::Tensor();
}

void launch_backward(GramLaunch& p, DType dtype, bool tf32, cudaStream_t stream) {
  if (p.exponents && set_work(p, sample_count) > 0) check_cuda(launch_gram_absmax(p, stream));
  if (set_work(p, gram_backward_blocks) > 0)
    check_cuda(launch_gram_backward(p, dtype, tf32, stream));
}

}  // namespace

at::Tensor run_gram_matrix(const at::Tensor& features, double scale, bool allow_tf32,
                           cudaStream_t stream) {
  GramPlan plan = plan_gram_matrix(features, scale, allow_tf32);
  std::vector<GramLayer> layers{gram_layer(plan.features, scale)};
  layers[0].diff = plan.out.data_ptr();
  at::Tensor partials = at::empty({partial_elements(layers)}, plan.out.options());
  GramLaunch p{};
  p.partials = partials.data_ptr();
  for_each_launch(layers, p, [&](GramLaunch& q) {
    if (set_work(q, gram_partials_blocks) > 0)
      check_cuda(launch_gram_partials(q, plan.dtype, plan.allow_tf32, stream));
    if (set_work(q, tile_count) > 0) check_cuda(launch_gram_reduce(q, plan.dtype, stream));
  });
  return plan.out;
}

at::Tensor run_gram_matrix_backward(const at::Tensor& grad, const at::Tensor& features,
                                    double scale, bool allow_tf32, cudaStream_t stream) {
  GramPlan plan = plan_gram_matrix_backward(grad, features, scale, allow_tf32);
  std::vector<GramLayer> layers{gram_layer(plan.features, scale)};
  layers[0].diff = plan.grad.data_ptr();
  layers[0].dx = output(plan.out);
  const at::Tensor exponents = exponents_for(plan.dtype, true, layers[0].batch, plan.out);
  GramLaunch p{};
  p.exponents = exponents.defined() ? exponents.data_ptr<int>() : nullptr;
  for_each_launch(layers, p, [&](GramLaunch& q) {
    launch_backward(q, plan.dtype, plan.allow_tf32, stream);
  });
  return plan.out;
}

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>> run_style_loss(
    at::TensorList inputs, at::TensorList targets, at::ArrayRef<double> weights,
    at::ArrayRef<double> scales, c10::string_view criterion, c10::string_view reduction,
    bool target_is_gram, bool allow_tf32, cudaStream_t stream) {
  StylePlan plan = plan_style_loss(inputs, targets, weights, scales, criterion, reduction,
                                   target_is_gram, allow_tf32);
  std::vector<GramLayer> layers;
  std::vector<at::Tensor> diffs;
  int64_t tiles = 0;
  for (const StyleLayerPlan& P : plan.layers) {
    GramLayer L = gram_layer(P.x, P.scale);
    if (plan.target_is_gram) {
      L.target = P.target_gram.data_ptr();
      L.target_sb = P.target_gram.size(0) == 1 ? 0 : int64_t(L.channels) * L.channels;
    } else {
      L.y = operand(P.y);
    }
    L.diff = P.diff.data_ptr();
    L.weight = P.weight;
    L.seg_begin = int(P.seg_begin);
    L.segments = int(P.segments);
    L.partial_begin = partial_elements(layers) / (kGramTile * kGramTile);
    L.tile_begin = int(tiles);
    tiles += tile_count(L);
    layers.push_back(L);
    diffs.push_back(P.diff);
  }
  const at::TensorOptions opts = plan.stats.options();
  at::Tensor partials = at::empty({partial_elements(layers)}, opts.dtype(plan.acc_dtype));
  at::Tensor sums = at::empty({tiles + plan.total_segments}, opts);
  GramLaunch base{};
  base.style = true;
  base.criterion = plan.criterion;
  base.reduction = plan.reduction;
  base.partials = partials.data_ptr();
  base.tile_sums = sums.data_ptr<double>();
  base.terms = base.tile_sums + tiles;
  base.stats = plan.stats.data_ptr<double>();
  base.loss = plan.loss.data_ptr();
  base.total_layers = int(layers.size());
  base.batch = int(plan.batch);
  base.loss_is_f64 = plan.dtype == DType::F64;
  for_each_launch(layers, base, [&](GramLaunch& p) {
    if (set_work(p, gram_partials_blocks) > 0)
      check_cuda(launch_gram_partials(p, plan.dtype, plan.allow_tf32, stream));
    if (set_work(p, tile_count) > 0) check_cuda(launch_gram_reduce(p, plan.dtype, stream));
    check_cuda(launch_style_loss_finalize(p, stream));
  });
  return {plan.loss, plan.stats, diffs};
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> run_style_loss_backward(
    const at::Tensor& grad, const at::Tensor& stats, at::TensorList diffs, at::TensorList inputs,
    at::TensorList targets, at::ArrayRef<double> weights, at::ArrayRef<double> scales,
    c10::string_view criterion, c10::string_view reduction, bool target_is_gram, bool input_grad,
    bool target_grad, bool allow_tf32, cudaStream_t stream) {
  StylePlan plan = plan_style_loss_backward(grad, stats, diffs, inputs, targets, weights, scales,
                                            criterion, reduction, target_is_gram, input_grad,
                                            target_grad, allow_tf32);
  std::vector<GramLayer> layers;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (target grad, its fp32/fp64 buffer)
  int samples = 0;
  for (const StyleLayerPlan& P : plan.layers) {
    GramLayer L = gram_layer(P.x, P.scale);
    L.diff = P.diff.data_ptr();
    L.seg_begin = int(P.seg_begin);
    L.segments = int(P.segments);
    if (input_grad) L.dx = output(P.input_grad);
    if (plan.target_is_gram) {
      L.target_sb = P.target_gram.size(0) == 1 ? 0 : int64_t(L.channels) * L.channels;
      if (target_grad) {
        at::Tensor dg = P.target_grad;
        if (dg.scalar_type() != plan.acc_dtype) {
          dg = at::empty(dg.sizes(), dg.options().dtype(plan.acc_dtype));
          copies.emplace_back(P.target_grad, dg);
        }
        L.dtarget = dg.data_ptr();
      }
    } else {
      L.y = operand(P.y);
      if (target_grad) L.dy = output(P.target_grad);
    }
    L.sample_begin = samples;
    samples += sample_count(L);
    layers.push_back(L);
  }
  const at::Tensor g = grad.contiguous();
  const at::Tensor exponents =
      exponents_for(plan.dtype, plan.criterion != Criterion::L1, samples, g);
  GramLaunch base{};
  base.style = true;
  base.criterion = plan.criterion;
  base.reduction = plan.reduction;
  base.grad = g.data_ptr();
  base.grad_factors = plan.stats.data_ptr<double>();
  base.loss_is_f64 = plan.dtype == DType::F64;
  base.exponents = exponents.defined() ? exponents.data_ptr<int>() : nullptr;
  for_each_launch(layers, base, [&](GramLaunch& p) {
    launch_backward(p, plan.dtype, plan.allow_tf32, stream);
    if (set_work(p, style_loss_target_grad_blocks) > 0)
      check_cuda(launch_style_loss_target_grad(p, plan.dtype, stream));
  });
  for (auto& [out, buffer] : copies) out.copy_(buffer);
  return {plan.input_grads, plan.target_grads};
}

}  // namespace ganloss
