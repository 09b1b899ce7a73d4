// Host side of the adversarial-loss CUDA ops on a given stream, without c10::cuda: plans
// (plan/adversarial_plan.cpp), allocates the workspace, fills AdversarialLaunch and calls the
// launchers of cuda/adversarial.cu. cuda/adversarial_api.cpp calls it with the current stream of
// the current device; the SIMT emulation tier (tests/simt) calls the same functions with its
// emulated runtime.
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime_api.h>

#include <vector>

namespace ganloss {

at::Tensor run_adversarial_loss(at::TensorList inputs, const c10::List<bool>& real,
                                c10::string_view gan_type, bool is_disc, double real_label,
                                double fake_label, at::ArrayRef<double> weights, bool per_sample,
                                cudaStream_t stream);

std::vector<at::Tensor> run_adversarial_loss_backward(
    const at::Tensor& grad, at::TensorList inputs, const c10::List<bool>& real,
    c10::string_view gan_type, bool is_disc, double real_label, double fake_label,
    at::ArrayRef<double> weights, bool per_sample, cudaStream_t stream);

}  // namespace ganloss
