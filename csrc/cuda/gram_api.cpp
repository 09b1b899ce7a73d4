// The CUDA kernels of the Gram-matrix and style-loss ops: on the inputs' device and its current
// stream, through the stream-level driver (cuda/gram_driver.cpp) that the SIMT emulation tier
// also runs.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "gram_driver.h"

namespace ganloss {
namespace {

cudaStream_t current_stream(const at::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index());
}

at::Tensor gram_matrix_cuda(const at::Tensor& features, double scale, bool allow_tf32) {
  const c10::cuda::CUDAGuard guard(features.device());
  return run_gram_matrix(features, scale, allow_tf32, current_stream(features));
}

at::Tensor gram_matrix_backward_cuda(const at::Tensor& grad, const at::Tensor& features,
                                     double scale, bool allow_tf32) {
  const c10::cuda::CUDAGuard guard(features.device());
  return run_gram_matrix_backward(grad, features, scale, allow_tf32, current_stream(features));
}

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>> style_loss_cuda(
    at::TensorList inputs, at::TensorList targets, at::ArrayRef<double> weights,
    at::ArrayRef<double> scales, c10::string_view criterion, c10::string_view reduction,
    bool target_is_gram, bool allow_tf32) {
  TORCH_CHECK_VALUE(!inputs.empty(), "inputs must hold at least one tensor");
  const c10::cuda::CUDAGuard guard(inputs[0].device());
  return run_style_loss(inputs, targets, weights, scales, criterion, reduction, target_is_gram,
                        allow_tf32, current_stream(inputs[0]));
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> style_loss_backward_cuda(
    const at::Tensor& grad, const at::Tensor& stats, at::TensorList diffs, at::TensorList inputs,
    at::TensorList targets, at::ArrayRef<double> weights, at::ArrayRef<double> scales,
    c10::string_view criterion, c10::string_view reduction, bool target_is_gram, bool input_grad,
    bool target_grad, bool allow_tf32) {
  TORCH_CHECK_VALUE(!inputs.empty(), "inputs must hold at least one tensor");
  const c10::cuda::CUDAGuard guard(inputs[0].device());
  return run_style_loss_backward(grad, stats, diffs, inputs, targets, weights, scales, criterion,
                                 reduction, target_is_gram, input_grad, target_grad, allow_tf32,
                                 current_stream(inputs[0]));
}

}  // namespace

TORCH_LIBRARY_IMPL(ganloss, CUDA, m) {
  m.impl("gram_matrix", &gram_matrix_cuda);
  m.impl("gram_matrix_backward", &gram_matrix_backward_cuda);
  m.impl("style_loss", &style_loss_cuda);
  m.impl("style_loss_backward", &style_loss_backward_cuda);
}

}  // namespace ganloss
