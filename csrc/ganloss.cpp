// Every ganloss operator schema, in one place. Each loss family registers its kernels per
// dispatch key in cpu/<family>.cpp and cuda/<family>_api.cpp; fake (meta) kernels and autograd
// are attached from Python (ganloss_cuda/ops/<family>.py).
#include <Python.h>
#include <torch/library.h>

// Importing ganloss_cuda._C (the setup.py build) only has to run the static initialisers
// below; the module itself is empty. The JIT build loads this file as a plain library.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(ganloss, m) {
  // Multi-layer feature loss: sum_l weights[l] * reduce(criterion(inputs[l] - targets[l]) [* masks[l]]).
  // Returns the loss (fp32, fp64 for fp64 inputs; shape [] or [N] for reduction="per_sample"),
  // per-(layer, sample) stats [segments, 3] (sum of terms, sum of mask, gradient factor), and,
  // when asked, the gradients for an upstream gradient of 1, computed in the same pass.
  m.def(
      "feature_loss(Tensor[] inputs, Tensor[] targets, Tensor?[] masks, float[] weights, "
      "str criterion, str reduction, float eps, bool input_grad, bool target_grad) "
      "-> (Tensor loss, Tensor stats, Tensor[] input_grads, Tensor[] target_grads)");
  // Gradients of feature_loss for upstream gradient `grad`, recomputed from the inputs.
  m.def(
      "feature_loss_backward(Tensor grad, Tensor stats, Tensor[] inputs, Tensor[] targets, "
      "Tensor?[] masks, float[] weights, str criterion, str reduction, float eps, "
      "bool input_grad, bool target_grad) -> (Tensor[] input_grads, Tensor[] target_grads)");
  // Scales gradients that feature_loss computed for an upstream gradient of 1 by the actual
  // upstream gradient and the per-sample gradient factors in `stats`, in place.
  m.def("feature_loss_scale_grads_(Tensor grad, Tensor stats, str reduction, Tensor(a!)[] grads) -> ()");
}
