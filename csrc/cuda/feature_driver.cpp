// See feature_driver.h.
#include "feature_driver.h"

#include <algorithm>

#include "../plan/feature_plan.h"
#include "driver_helpers.h"
#include "feature_launch.h"

namespace ganloss {
namespace {

// Calls launch(params, index) once per group of at most kMaxLayersPerLaunch layers.
template <typename F>
void for_each_launch(const FeaturePlan& plan, const FeatureLaunch& base, F&& launch) {
  for_each_launch_group(int64_t(plan.layers.size()), kMaxLayersPerLaunch,
                        [&](int64_t first, int64_t count, int64_t index, bool last) {
    FeatureLaunch p = base;
    p.num_layers = int(count);
    std::copy_n(plan.layers.begin() + first, count, p.layers);
    p.chunk_offset = plan.layers[first].chunk_begin;
    p.num_chunks = (last ? plan.total_chunks : plan.layers[first + count].chunk_begin) -
                   p.chunk_offset;
    p.last_launch = last;
    launch(p, index);
  });
}

FeatureLaunch launch_base(const FeaturePlan& plan) {
  FeatureLaunch p{};
  p.total_layers = int64_t(plan.layers.size());
  p.batch = plan.batch;
  p.criterion = plan.criterion;
  p.reduction = plan.reduction;
  p.eps = plan.eps;
  p.loss_is_f64 = plan.dtype == DType::F64;
  return p;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
run_feature_loss(at::TensorList inputs, at::TensorList targets,
                  const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights,
                  c10::string_view criterion, c10::string_view reduction, double eps,
                  bool input_grad, bool target_grad, cudaStream_t stream) {
  TORCH_CHECK_VALUE(!inputs.empty(), "inputs must hold at least one tensor");
  FeaturePlan plan = plan_feature_loss(inputs, targets, masks, weights, criterion, reduction, eps,
                                       input_grad, target_grad, /*outputs=*/true);
  // Workspace: chunk partials [chunks, 2], loss terms, one block counter per launch.
  const int64_t terms = plan.total_segments;
  const int64_t launches = launch_groups(int64_t(plan.layers.size()), kMaxLayersPerLaunch);
  at::Tensor workspace = at::empty({2 * plan.total_chunks + terms + (launches + 1) / 2},
                                   inputs[0].options().dtype(at::kDouble));
  double* ws = workspace.data_ptr<double>();
  auto* counters = reinterpret_cast<unsigned int*>(ws + 2 * plan.total_chunks + terms);
  check_cuda(cudaMemsetAsync(counters, 0, sizeof(unsigned int) * launches, stream));

  FeatureLaunch base = launch_base(plan);
  base.chunk_sums = ws;
  base.terms = ws + 2 * plan.total_chunks;
  base.stats = plan.stats.data_ptr<double>();
  base.loss = plan.loss.data_ptr();
  for_each_launch(plan, base, [&](FeatureLaunch& p, int64_t index) {
    p.counter = counters + index;
    check_cuda(launch_feature_loss(p, plan.dtype, stream));
  });
  return {plan.loss, plan.stats, plan.input_grads, plan.target_grads};
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> run_feature_loss_backward(
    const at::Tensor& grad, const at::Tensor& stats, at::TensorList inputs, at::TensorList targets,
    const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights,
    c10::string_view criterion, c10::string_view reduction, double eps, bool input_grad,
    bool target_grad, cudaStream_t stream) {
  TORCH_CHECK_VALUE(!inputs.empty(), "inputs must hold at least one tensor");
  FeaturePlan plan = plan_feature_loss(inputs, targets, masks, weights, criterion, reduction, eps,
                                       input_grad, target_grad, /*outputs=*/false);
  check_feature_loss_backward_args(plan, grad, stats);
  const at::Tensor g = grad.contiguous();
  FeatureLaunch base = launch_base(plan);
  base.grad = g.data_ptr();
  base.grad_factors = stats.data_ptr<double>();
  for_each_launch(plan, base, [&](FeatureLaunch& p, int64_t) {
    check_cuda(launch_feature_loss_backward(p, plan.dtype, stream));
  });
  return {plan.input_grads, plan.target_grads};
}

void run_feature_loss_scale_grads(const at::Tensor& grad, const at::Tensor& stats,
                                   c10::string_view reduction, at::TensorList grads,
                                  cudaStream_t stream) {
  TORCH_CHECK_VALUE(!grads.empty(), "grads must hold at least one tensor");
  const FeaturePlan plan = plan_feature_loss_scale_grads(grad, stats, reduction, grads);
  const at::Tensor g = grad.contiguous();
  FeatureLaunch base = launch_base(plan);
  base.loss_is_f64 = g.scalar_type() == at::kDouble;
  base.grad = g.data_ptr();
  base.grad_factors = stats.data_ptr<double>();
  for_each_launch(plan, base, [&](FeatureLaunch& p, int64_t) {
    check_cuda(launch_feature_loss_scale_grads(p, plan.dtype, stream));
  });
}

}  // namespace ganloss
