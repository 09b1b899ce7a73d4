// Every ganloss operator schema, in one place. Each loss family registers its kernels per
// dispatch key in cpu/<family>.cpp and cuda/<family>_api.cpp; fake (meta) kernels and autograd
// are attached from Python (ganloss_cuda/ops/<family>.py). The Python module of the build (its
// eager entry points and PyInit__C) is python_calls.cpp.
#include <torch/library.h>

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

  // Gram matrix of features [B, C, K] (K = H*W): G = scale * F F^T, [B, C, C] in fp32 (fp64 for
  // fp64 features) whatever the input dtype: never a 16-bit Gram. allow_tf32: fp32 features may
  // use TF32 tensor cores (torch.get_float32_matmul_precision() != "highest").
  m.def("gram_matrix(Tensor features, float scale, bool allow_tf32) -> Tensor");
  // dF = scale * (grad + grad^T) F, in the features' dtype, rounded once.
  m.def("gram_matrix_backward(Tensor grad, Tensor features, float scale, bool allow_tf32) -> Tensor");
  // Multi-layer style loss: sum_l weights[l] * reduce(criterion(D_l)) with
  // D_l = scales[l] * (X_l X_l^T - Y_l Y_l^T) (targets as features [B, C, K]) or
  // D_l = scales[l] * X_l X_l^T - targets[l] (targets as Grams [B or 1, C, C]), computed in fp32
  // (fp64 for fp64 inputs). Returns the loss ([] or [B] for reduction="per_sample"), per-(layer,
  // sample) stats [segments, 2] (sum of terms, gradient factor for an upstream gradient of 1) and
  // the D_l, which the backward reuses.
  m.def(
      "style_loss(Tensor[] inputs, Tensor[] targets, float[] weights, float[] scales, "
      "str criterion, str reduction, bool target_is_gram, bool allow_tf32) "
      "-> (Tensor loss, Tensor stats, Tensor[] diffs)");
  // Gradients of style_loss for upstream gradient `grad`: dX_l = 2 s_l E_l X_l, dY_l = -2 s_l E_l Y_l
  // (targets as features) or dG_l = -E_l (targets as Grams, summed over a broadcast batch), with
  // E_l = dL/dD_l (symmetric) from diffs and stats.
  m.def(
      "style_loss_backward(Tensor grad, Tensor stats, Tensor[] diffs, Tensor[] inputs, "
      "Tensor[] targets, float[] weights, float[] scales, str criterion, str reduction, "
      "bool target_is_gram, bool input_grad, bool target_grad, bool allow_tf32) "
      "-> (Tensor[] input_grads, Tensor[] target_grads)");
  // Adversarial loss over discriminator outputs (any shapes: one tensor per scale, real and fake
  // together for a discriminator step): loss = sum_i weights[i] * reduce(term(inputs[i]; real[i]))
  // with term of gan_type: "lsgan" (x - label)^2, "vanilla" BCE with logits in the stable softplus
  // form, "bce" BCE on probabilities (log clamped at -100, like torch), "wgan" -x (real) / x
  // (fake), "softplus" softplus(-x) / softplus(x), "hinge" relu(1 - x) / relu(1 + x) when is_disc,
  // else -x. label = real_label or fake_label. reduce: the mean over the tensor, or over each
  // sample when per_sample (loss [N]). fp32 loss (fp64 for fp64 inputs), no label tensors.
  m.def(
      "adversarial_loss(Tensor[] inputs, bool[] real, str gan_type, bool is_disc, "
      "float real_label, float fake_label, float[] weights, bool per_sample) -> Tensor");
  // Gradients of adversarial_loss for upstream gradient `grad`, one launch for every input.
  m.def(
      "adversarial_loss_backward(Tensor grad, Tensor[] inputs, bool[] real, str gan_type, "
      "bool is_disc, float real_label, float fake_label, float[] weights, bool per_sample) "
      "-> Tensor[]");
}
