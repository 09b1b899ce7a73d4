// Validation and work planning for the Gram-matrix and style-loss ops, shared by the CPU and
// CUDA kernels: checks the arguments (messages and exception types of
// ganloss_cuda/reference/gram.py), picks a layout each feature tensor is read in, and allocates
// the outputs. Features are [B, C, K] views; the kernels read them in place when the K axis
// (contiguous (N, C, H, W)) or the C axis (channels_last) has stride 1, else from a dense copy.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "../common/gram.h"

namespace ganloss {

struct StyleLayerPlan {
  at::Tensor x;            // [B, C, K] input features (stride(2) == 1 or stride(1) == 1)
  at::Tensor y;            // target features like x; undefined when the target is a Gram
  at::Tensor target_gram;  // [B or 1, C, C] in the accumulation dtype, contiguous; else undefined
  at::Tensor diff;         // D: [B, C, C] accumulation dtype, contiguous (output of the forward,
                           // input of the backward)
  at::Tensor input_grad;   // [B, C, K] (backward, when input_grad), else undefined: x's strides
                           // when x is dense, else contiguous (kernels use its own strides)
  at::Tensor target_grad;  // like input_grad for y, or the target Gram's shape and dtype
  double scale = 1.0;      // s_l = 1 / normalisation
  double weight = 1.0;     // w_l
  int64_t batch = 0, channels = 0, k = 0;
  int64_t seg_begin = 0;   // first row of this layer in stats
  int64_t segments = 0;    // B (per_sample) or 1
};

struct StylePlan {
  std::vector<StyleLayerPlan> layers;
  Criterion criterion;
  Reduction reduction;
  bool target_is_gram = false;
  bool allow_tf32 = false;
  DType dtype;                  // of the features
  at::ScalarType acc_dtype;     // fp32, fp64 for fp64 features
  int64_t batch = 0;            // B of every layer (per_sample only)
  int64_t total_segments = 0;
  at::Tensor loss;              // [] or [B] (forward)
  at::Tensor stats;             // [segments, kStyleStatCols] fp64 (forward: allocated; backward: given)
  std::vector<at::Tensor> input_grads, target_grads;  // the backward's outputs (views of the layers')
};

// style_loss: checks, layouts, D per layer, loss and stats allocated (uninitialised).
StylePlan plan_style_loss(at::TensorList inputs, at::TensorList targets,
                          at::ArrayRef<double> weights, at::ArrayRef<double> scales,
                          c10::string_view criterion, c10::string_view reduction,
                          bool target_is_gram, bool allow_tf32);

// style_loss_backward: the same checks plus grad, stats and diffs against them; allocates the
// requested gradients (input grads in x's layout, target grads in the target's).
StylePlan plan_style_loss_backward(const at::Tensor& grad, const at::Tensor& stats,
                                   at::TensorList diffs, at::TensorList inputs,
                                   at::TensorList targets, at::ArrayRef<double> weights,
                                   at::ArrayRef<double> scales, c10::string_view criterion,
                                   c10::string_view reduction, bool target_is_gram,
                                   bool input_grad, bool target_grad, bool allow_tf32);

struct GramPlan {
  at::Tensor features;  // [B, C, K] (stride(2) == 1 or stride(1) == 1)
  at::Tensor grad;      // [B, C, C] accumulation dtype, contiguous (backward)
  at::Tensor out;       // forward: G [B, C, C] accumulation dtype; backward: dF like features
  double scale = 1.0;
  bool allow_tf32 = false;
  DType dtype;
  at::ScalarType acc_dtype;
};

GramPlan plan_gram_matrix(const at::Tensor& features, double scale, bool allow_tf32);
GramPlan plan_gram_matrix_backward(const at::Tensor& grad, const at::Tensor& features,
                                   double scale, bool allow_tf32);

// The feature layout the kernels read: `t` itself when its K axis or its C axis has stride 1,
// else a contiguous copy. Gradients are allocated with the strides of what was read.
at::Tensor readable_features(const at::Tensor& t);

}  // namespace ganloss
