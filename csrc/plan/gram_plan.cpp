#include "gram_plan.h"

#include <cmath>
#include <string>

#include "checks.h"

namespace ganloss {
namespace {

Criterion parse_style_criterion(c10::string_view s) {
  if (s == "l1") return Criterion::L1;
  if (s == "mse") return Criterion::MSE;
  if (s == "fro") return Criterion::Fro;
  TORCH_CHECK_VALUE(false, "criterion must be 'l1', 'mse' or 'fro', got '", s, "'");
}

void check_3d(const at::Tensor& t, const std::string& name) {
  TORCH_CHECK_VALUE(t.dim() == 3, name, " must be 3-D [B, C, K] features, got shape ",
                    shape_str(t.sizes()));
}

void check_scale(double scale, const std::string& name) {
  TORCH_CHECK_VALUE(std::isfinite(scale) && scale >= 0.0, name,
                    " must be a finite non-negative number, got ", scale);
}

// A [B, C, C] Gram-shaped tensor (grad of a Gram, D) of the accumulation dtype on x's device.
void check_gram_like(const at::Tensor& g, const std::string& name, const at::Tensor& x,
                     const std::string& xname) {
  check_same_device(g, name, x, xname);
  TORCH_CHECK_TYPE(g.scalar_type() == acc_of(x), name, " has dtype ", dtype_str(g.scalar_type()),
                   " but must be ", dtype_str(acc_of(x)), " for ", xname);
  const int64_t b = x.size(0), c = x.size(1);
  TORCH_CHECK_VALUE(g.dim() == 3 && g.size(0) == b && g.size(1) == c && g.size(2) == c, name,
                    " has shape ", shape_str(g.sizes()), " but the Gram of ", xname, " is (", b,
                    ", ", c, ", ", c, ")");
}

// Checks shared by style_loss and its backward; fills everything but the outputs.
StylePlan plan_style_layers(at::TensorList inputs, at::TensorList targets,
                            at::ArrayRef<double> weights, at::ArrayRef<double> scales,
                            c10::string_view criterion, c10::string_view reduction,
                            bool target_is_gram, bool allow_tf32) {
  check_layer_lists(inputs, targets, weights);
  const size_t n = inputs.size();
  TORCH_CHECK_VALUE(scales.size() == n, "scales has ", scales.size(), " entries but inputs has ",
                    n);
  StylePlan p;
  p.criterion = parse_style_criterion(criterion);
  p.reduction = parse_reduction(reduction);
  p.target_is_gram = target_is_gram;
  p.allow_tf32 = allow_tf32;
  const at::Tensor& x0 = inputs[0];
  check_floating(x0, "inputs[0]");
  check_3d(x0, "inputs[0]");
  p.dtype = dtype_of(x0.scalar_type());
  p.acc_dtype = acc_of(x0);
  p.batch = x0.size(0);
  for (size_t i = 0; i < n; ++i) {
    const at::Tensor &x = inputs[i], &y = targets[i];
    const std::string xname = arg_name("inputs", i), yname = arg_name("targets", i);
    check_same_dtype(x, xname, x0, "inputs[0]");
    check_same_device(x, xname, x0, "inputs[0]");
    check_3d(x, xname);
    check_scale(scales[i], arg_name("scales", i));
    if (p.reduction == Reduction::PerSample)
      TORCH_CHECK_VALUE(x.size(0) == p.batch, xname, " has batch size ", x.size(0),
                        " but inputs[0] has ", p.batch,
                        "; reduction 'per_sample' needs one batch size");
    StyleLayerPlan L;
    L.batch = x.size(0);
    L.channels = x.size(1);
    L.k = x.size(2);
    L.scale = scales[i];
    L.weight = weights.empty() ? 1.0 : weights[i];
    L.x = readable_features(x);
    check_same_device(y, yname, x, xname);
    if (target_is_gram) {
      check_floating(y, yname);
      const bool shape_ok = y.dim() == 3 && (y.size(0) == L.batch || y.size(0) == 1) &&
                            y.size(1) == L.channels && y.size(2) == L.channels;
      TORCH_CHECK_VALUE(shape_ok, yname, " has shape ", shape_str(y.sizes()), " but the Gram of ",
                        xname, " ", shape_str(x.sizes()), " must be (", L.batch, ", ", L.channels,
                        ", ", L.channels, ") or (1, ", L.channels, ", ", L.channels, ")");
      L.target_gram = y.to(p.acc_dtype).contiguous();
    } else {
      check_same_dtype(y, yname, x, xname);
      TORCH_CHECK_VALUE(x.sizes() == y.sizes(), yname, " has shape ", shape_str(y.sizes()),
                        " but ", xname, " has ", shape_str(x.sizes()));
      L.y = readable_features(y);
    }
    L.segments = p.reduction == Reduction::PerSample ? L.batch : 1;
    L.seg_begin = p.total_segments;
    p.total_segments += L.segments;
    p.layers.push_back(std::move(L));
  }
  return p;
}

}  // namespace

at::Tensor readable_features(const at::Tensor& t) {
  if (t.numel() == 0 || t.stride(2) == 1 || t.size(2) == 1 || t.stride(1) == 1 || t.size(1) == 1)
    return t;
  return t.contiguous();
}

StylePlan plan_style_loss(at::TensorList inputs, at::TensorList targets,
                          at::ArrayRef<double> weights, at::ArrayRef<double> scales,
                          c10::string_view criterion, c10::string_view reduction,
                          bool target_is_gram, bool allow_tf32) {
  StylePlan p = plan_style_layers(inputs, targets, weights, scales, criterion, reduction,
                                  target_is_gram, allow_tf32);
  const auto opts = inputs[0].options().dtype(p.acc_dtype);
  for (StyleLayerPlan& L : p.layers) L.diff = at::empty({L.batch, L.channels, L.channels}, opts);
  p.loss = p.reduction == Reduction::PerSample ? at::empty({p.batch}, opts) : at::empty({}, opts);
  p.stats = at::empty({p.total_segments, kStyleStatCols}, opts.dtype(at::kDouble));
  return p;
}

StylePlan plan_style_loss_backward(const at::Tensor& grad, const at::Tensor& stats,
                                   at::TensorList diffs, at::TensorList inputs,
                                   at::TensorList targets, at::ArrayRef<double> weights,
                                   at::ArrayRef<double> scales, c10::string_view criterion,
                                   c10::string_view reduction, bool target_is_gram,
                                   bool input_grad, bool target_grad, bool allow_tf32) {
  StylePlan p = plan_style_layers(inputs, targets, weights, scales, criterion, reduction,
                                  target_is_gram, allow_tf32);
  const at::Tensor& x0 = inputs[0];
  TORCH_CHECK_TYPE(grad.scalar_type() == p.acc_dtype, "grad has dtype ",
                   dtype_str(grad.scalar_type()), " but the loss of inputs[0] is ",
                   dtype_str(p.acc_dtype));
  check_same_device(grad, "grad", x0, "inputs[0]");
  if (p.reduction == Reduction::PerSample) {
    TORCH_CHECK_VALUE(grad.dim() == 1 && grad.size(0) == p.batch, "grad has shape ",
                      shape_str(grad.sizes()), " but reduction 'per_sample' gives a loss of shape (",
                      p.batch, ",)");
  } else {
    TORCH_CHECK_VALUE(grad.dim() == 0, "grad has shape ", shape_str(grad.sizes()),
                      " but the loss is a 0-dim tensor");
  }
  check_same_device(stats, "stats", x0, "inputs[0]");
  TORCH_CHECK_VALUE(stats.scalar_type() == at::kDouble && stats.dim() == 2 &&
                        stats.size(0) == p.total_segments && stats.size(1) == kStyleStatCols &&
                        stats.is_contiguous(),
                    "stats must be the contiguous float64 (", p.total_segments, ", ",
                    kStyleStatCols, ") tensor returned by style_loss, got ",
                    dtype_str(stats.scalar_type()), " ", shape_str(stats.sizes()));
  p.stats = stats;
  TORCH_CHECK_VALUE(diffs.size() == inputs.size(), "diffs has ", diffs.size(),
                    " tensors but inputs has ", inputs.size());
  for (size_t i = 0; i < p.layers.size(); ++i) {
    StyleLayerPlan& L = p.layers[i];
    check_gram_like(diffs[i], arg_name("diffs", i), inputs[i], arg_name("inputs", i));
    L.diff = diffs[i].contiguous();
    if (input_grad) {
      L.input_grad = at::empty_like(L.x);
      p.input_grads.push_back(L.input_grad);
    }
    if (target_grad) {
      L.target_grad = target_is_gram ? at::empty(targets[i].sizes(), targets[i].options())
                                     : at::empty_like(L.y);
      p.target_grads.push_back(L.target_grad);
    }
  }
  return p;
}

GramPlan plan_gram_matrix(const at::Tensor& features, double scale, bool allow_tf32) {
  check_floating(features, "features");
  check_3d(features, "features");
  check_scale(scale, "scale");
  GramPlan p;
  p.features = readable_features(features);
  p.scale = scale;
  p.allow_tf32 = allow_tf32;
  p.dtype = dtype_of(features.scalar_type());
  p.acc_dtype = acc_of(features);
  p.out = at::empty({features.size(0), features.size(1), features.size(1)},
                    features.options().dtype(p.acc_dtype));
  return p;
}

GramPlan plan_gram_matrix_backward(const at::Tensor& grad, const at::Tensor& features,
                                   double scale, bool allow_tf32) {
  GramPlan p = plan_gram_matrix(features, scale, allow_tf32);
  check_gram_like(grad, "grad", features, "features");
  p.grad = grad.contiguous();
  p.out = at::empty_like(p.features);
  return p;
}

}  // namespace ganloss
