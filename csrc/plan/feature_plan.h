// Validation and work planning for the feature-loss ops, shared by the CPU and CUDA kernels:
// checks the arguments, brings every pair into one dense layout, allocates the outputs and fills
// the torch-free layer descriptors (common/feature.h) that both kernels consume.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "../common/feature.h"

namespace ganloss {

struct FeaturePlan {
  std::vector<FeatureLayer> layers;  // one per (input, target) pair, pointers into the tensors below
  std::vector<at::Tensor> keep;      // dense copies and masks the pointers refer to
  std::vector<at::Tensor> input_grads, target_grads;  // empty lists when not requested
  Criterion criterion;
  Reduction reduction;
  double eps;
  DType dtype;
  int64_t total_chunks = 0;
  int64_t total_segments = 0;
  int64_t batch = 0;  // N of every layer (reduction "per_sample" only)
  at::Tensor loss;    // [] or [N], fp32 (fp64 for fp64 inputs); allocated only by plan_feature_loss
  at::Tensor stats;   // [segments, kStatCols] fp64; allocated only by plan_feature_loss
};

// For feature_loss and feature_loss_backward. Allocates loss/stats when `outputs` is set, and
// the gradient lists as requested.
FeaturePlan plan_feature_loss(at::TensorList inputs, at::TensorList targets,
                              const c10::List<std::optional<at::Tensor>>& masks,
                              at::ArrayRef<double> weights, c10::string_view criterion,
                              c10::string_view reduction, double eps, bool input_grad,
                              bool target_grad, bool outputs);

// Checks feature_loss_backward's extra arguments against the plan.
void check_feature_loss_backward_args(const FeaturePlan& plan, const at::Tensor& grad,
                                      const at::Tensor& stats);

// For feature_loss_scale_grads_: descriptors over the gradient tensors alone (x, y unset).
FeaturePlan plan_feature_loss_scale_grads(const at::Tensor& grad, const at::Tensor& stats,
                                          c10::string_view reduction, at::TensorList grads);

}  // namespace ganloss
