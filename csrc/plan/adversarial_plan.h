// Validation and work planning for the adversarial-loss ops, shared by the CPU and CUDA kernels:
// checks the arguments (messages and exception types of ganloss_cuda/reference/adversarial.py for
// the op-level arguments), brings every input into a dense layout and allocates the outputs.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "../common/adversarial.h"

namespace ganloss {

struct AdversarialPlan {
  std::vector<at::Tensor> inputs;  // contiguous views (or copies) of the inputs
  std::vector<bool> real;          // per input: its target is real (else fake)
  std::vector<double> weights;     // per input
  GanType gan_type;
  bool is_disc = false;
  double real_label = 1.0, fake_label = 0.0;
  bool per_sample = false;
  DType dtype;
  at::ScalarType acc_dtype;        // fp32, fp64 for fp64 inputs
  int64_t batch = 1;               // N of every input (per_sample), else 1
  at::Tensor loss;                 // [] or [N] in acc_dtype (forward)
  std::vector<at::Tensor> grads;   // like inputs, contiguous (backward)
};

// The elements one term of input i is averaged over: numel, or numel / N per sample.
inline int64_t adversarial_count(const AdversarialPlan& p, size_t i) {
  return p.per_sample ? p.inputs[i].numel() / p.batch : p.inputs[i].numel();
}

AdversarialPlan plan_adversarial_loss(at::TensorList inputs, const c10::List<bool>& real,
                                      c10::string_view gan_type, bool is_disc, double real_label,
                                      double fake_label, at::ArrayRef<double> weights,
                                      bool per_sample);

// The same checks plus grad against them; allocates the gradients.
AdversarialPlan plan_adversarial_loss_backward(const at::Tensor& grad, at::TensorList inputs,
                                               const c10::List<bool>& real,
                                               c10::string_view gan_type, bool is_disc,
                                               double real_label, double fake_label,
                                               at::ArrayRef<double> weights, bool per_sample);

}  // namespace ganloss
