// Host side of the feature-loss CUDA ops on a given stream, without c10::cuda: plans
// (plan/feature_plan.cpp), allocates the workspace, fills FeatureLaunch and calls the launchers
// of cuda/feature.cu. cuda/feature_api.cpp calls it with the current stream of the current device;
// the SIMT emulation tier (tests/simt) calls the same functions with its emulated runtime, so the
// emulated kernels get exactly the launches the extension makes.
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime_api.h>

#include <tuple>
#include <vector>

namespace ganloss {

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
run_feature_loss(at::TensorList inputs, at::TensorList targets,
                 const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights,
                 c10::string_view criterion, c10::string_view reduction, double eps,
                 bool input_grad, bool target_grad, cudaStream_t stream);

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> run_feature_loss_backward(
    const at::Tensor& grad, const at::Tensor& stats, at::TensorList inputs, at::TensorList targets,
    const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights,
    c10::string_view criterion, c10::string_view reduction, double eps, bool input_grad,
    bool target_grad, cudaStream_t stream);

void run_feature_loss_scale_grads(const at::Tensor& grad, const at::Tensor& stats,
                                  c10::string_view reduction, at::TensorList grads,
                                  cudaStream_t stream);

}  // namespace ganloss
