// The CUDA kernels of the feature-loss ops: on the inputs' device and its current stream, through
// the stream-level driver (cuda/feature_driver.cpp) that the SIMT emulation tier also runs.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "feature_driver.h"

namespace ganloss {
namespace {

cudaStream_t current_stream(at::TensorList tensors, const char* name) {
  TORCH_CHECK_VALUE(!tensors.empty(), name, " must hold at least one tensor");
  return c10::cuda::getCurrentCUDAStream(tensors[0].device().index());
}

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
feature_loss_cuda(at::TensorList inputs, at::TensorList targets,
                  const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights,
                  c10::string_view criterion, c10::string_view reduction, double eps,
                  bool input_grad, bool target_grad) {
  const cudaStream_t stream = current_stream(inputs, "inputs");
  const c10::cuda::CUDAGuard guard(inputs[0].device());
  return run_feature_loss(inputs, targets, masks, weights, criterion, reduction, eps, input_grad,
                          target_grad, stream);
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> feature_loss_backward_cuda(
    const at::Tensor& grad, const at::Tensor& stats, at::TensorList inputs, at::TensorList targets,
    const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights,
    c10::string_view criterion, c10::string_view reduction, double eps, bool input_grad,
    bool target_grad) {
  const cudaStream_t stream = current_stream(inputs, "inputs");
  const c10::cuda::CUDAGuard guard(inputs[0].device());
  return run_feature_loss_backward(grad, stats, inputs, targets, masks, weights, criterion,
                                   reduction, eps, input_grad, target_grad, stream);
}

void feature_loss_scale_grads_cuda(const at::Tensor& grad, const at::Tensor& stats,
                                   c10::string_view reduction, at::TensorList grads) {
  const cudaStream_t stream = current_stream(grads, "grads");
  const c10::cuda::CUDAGuard guard(grads[0].device());
  run_feature_loss_scale_grads(grad, stats, reduction, grads, stream);
}

}  // namespace

TORCH_LIBRARY_IMPL(ganloss, CUDA, m) {
  m.impl("feature_loss", &feature_loss_cuda);
  m.impl("feature_loss_backward", &feature_loss_backward_cuda);
  m.impl("feature_loss_scale_grads_", &feature_loss_scale_grads_cuda);
}

}  // namespace ganloss
