// The CUDA kernels of the adversarial-loss ops: on the inputs' device and its current stream,
// through the stream-level driver (cuda/adversarial_driver.cpp) that the SIMT emulation tier also
// runs.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "adversarial_driver.h"

namespace ganloss {
namespace {

// The device of the inputs (the plan checks that they share one and that the list is not empty).
c10::Device device_of(at::TensorList inputs) {
  TORCH_CHECK_VALUE(!inputs.empty(),
                    "inputs must hold at least one tensor (one per discriminator scale)");
  return inputs[0].device();
}

at::Tensor adversarial_loss_cuda(at::TensorList inputs, const c10::List<bool>& real,
                                 c10::string_view gan_type, bool is_disc, double real_label,
                                 double fake_label, at::ArrayRef<double> weights,
                                 bool per_sample) {
  const c10::Device device = device_of(inputs);
  const c10::cuda::CUDAGuard guard(device);
  return run_adversarial_loss(inputs, real, gan_type, is_disc, real_label, fake_label, weights,
                              per_sample, c10::cuda::getCurrentCUDAStream(device.index()));
}

std::vector<at::Tensor> adversarial_loss_backward_cuda(
    const at::Tensor& grad, at::TensorList inputs, const c10::List<bool>& real,
    c10::string_view gan_type, bool is_disc, double real_label, double fake_label,
    at::ArrayRef<double> weights, bool per_sample) {
  const c10::Device device = device_of(inputs);
  const c10::cuda::CUDAGuard guard(device);
  return run_adversarial_loss_backward(grad, inputs, real, gan_type, is_disc, real_label,
                                       fake_label, weights, per_sample,
                                       c10::cuda::getCurrentCUDAStream(device.index()));
}

}  // namespace

TORCH_LIBRARY_IMPL(ganloss, CUDA, m) {
  m.impl("adversarial_loss", &adversarial_loss_cuda);
  m.impl("adversarial_loss_backward", &adversarial_loss_backward_cuda);
}

}  // namespace ganloss
