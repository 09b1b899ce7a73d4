// Host side of the Gram-matrix and style-loss CUDA ops on a given stream, without c10::cuda:
// plans (plan/gram_plan.cpp), allocates the workspace, fills GramLaunch and calls the launchers
// of cuda/gram.cu. cuda/gram_api.cpp calls it with the current stream of the current device; the
// SIMT emulation tier (tests/simt) calls the same functions with its emulated runtime.
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime_api.h>

#include <tuple>
#include <vector>

namespace ganloss {

at::Tensor run_gram_matrix(const at::Tensor& features, double scale, bool allow_tf32,
                           cudaStream_t stream);

at::Tensor run_gram_matrix_backward(const at::Tensor& grad, const at::Tensor& features,
                                    double scale, bool allow_tf32, cudaStream_t stream);

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>> run_style_loss(
    at::TensorList inputs, at::TensorList targets, at::ArrayRef<double> weights,
    at::ArrayRef<double> scales, c10::string_view criterion, c10::string_view reduction,
    bool target_is_gram, bool allow_tf32, cudaStream_t stream);

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> run_style_loss_backward(
    const at::Tensor& grad, const at::Tensor& stats, at::TensorList diffs, at::TensorList inputs,
    at::TensorList targets, at::ArrayRef<double> weights, at::ArrayRef<double> scales,
    c10::string_view criterion, c10::string_view reduction, bool target_is_gram, bool input_grad,
    bool target_grad, bool allow_tf32, cudaStream_t stream);

}  // namespace ganloss
