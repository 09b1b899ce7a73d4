#include "adversarial_plan.h"

#include <cmath>
#include <string>

#include "checks.h"

namespace ganloss {
namespace {

GanType parse_gan_type(c10::string_view s) {
  if (s == "lsgan") return GanType::LSGAN;
  if (s == "vanilla") return GanType::Vanilla;
  if (s == "bce") return GanType::BCE;
  if (s == "wgan") return GanType::WGAN;
  if (s == "softplus") return GanType::Softplus;
  if (s == "hinge") return GanType::Hinge;
  TORCH_CHECK_VALUE(false, "gan_type must be 'lsgan', 'vanilla', 'bce', 'wgan', 'softplus' or "
                    "'hinge', got '", s, "'");
}

void check_label(double v, const char* name) {
  TORCH_CHECK_VALUE(std::isfinite(v), name, " must be a finite number, got ", v);
}

}  // namespace

AdversarialPlan plan_adversarial_loss(at::TensorList inputs, const c10::List<bool>& real,
                                      c10::string_view gan_type, bool is_disc, double real_label,
                                      double fake_label, at::ArrayRef<double> weights,
                                      bool per_sample) {
  TORCH_CHECK_VALUE(!inputs.empty(),
                    "inputs must hold at least one tensor (one per discriminator scale)");
  const size_t n = inputs.size();
  TORCH_CHECK_VALUE(real.size() == n, "real has ", real.size(), " entries but inputs has ", n);
  TORCH_CHECK_VALUE(weights.size() == n, "weights has ", weights.size(), " entries but inputs has ",
                    n);
  AdversarialPlan p;
  p.gan_type = parse_gan_type(gan_type);
  check_label(real_label, "real_label");
  check_label(fake_label, "fake_label");
  p.is_disc = is_disc;
  p.real_label = real_label;
  p.fake_label = fake_label;
  p.per_sample = per_sample;
  const at::Tensor& x0 = inputs[0];
  check_floating(x0, "inputs[0]");
  p.dtype = dtype_of(x0.scalar_type());
  p.acc_dtype = acc_of(x0);
  if (per_sample) {
    TORCH_CHECK_VALUE(x0.dim() >= 1,
                      "inputs[0] is a 0-dim tensor; reduction 'per_sample' needs a batch dim");
    p.batch = x0.size(0);
  }
  for (size_t i = 0; i < n; ++i) {
    const at::Tensor& x = inputs[i];
    const std::string name = arg_name("inputs", i);
    check_same_dtype(x, name, x0, "inputs[0]");
    check_same_device(x, name, x0, "inputs[0]");
    TORCH_CHECK_VALUE(x.numel() > 0, name, " is empty");
    TORCH_CHECK_VALUE(std::isfinite(weights[i]) && weights[i] >= 0.0, arg_name("weights", i),
                      " must be a finite non-negative number, got ", weights[i]);
    if (per_sample) {
      TORCH_CHECK_VALUE(x.dim() >= 1, name,
                        " is a 0-dim tensor; reduction 'per_sample' needs a batch dim");
      TORCH_CHECK_VALUE(x.size(0) == p.batch, name, " has batch size ", x.size(0),
                        " but inputs[0] has ", p.batch,
                        "; reduction 'per_sample' needs one batch size");
    }
    p.inputs.push_back(x.contiguous());
    p.real.push_back(real.get(i));
    p.weights.push_back(weights[i]);
  }
  const auto opts = x0.options().dtype(p.acc_dtype);
  p.loss = per_sample ? at::empty({p.batch}, opts) : at::empty({}, opts);
  return p;
}

AdversarialPlan plan_adversarial_loss_backward(const at::Tensor& grad, at::TensorList inputs,
                                               const c10::List<bool>& real,
                                               c10::string_view gan_type, bool is_disc,
                                               double real_label, double fake_label,
                                               at::ArrayRef<double> weights, bool per_sample) {
  AdversarialPlan p = plan_adversarial_loss(inputs, real, gan_type, is_disc, real_label,
                                            fake_label, weights, per_sample);
  TORCH_CHECK_TYPE(grad.scalar_type() == p.acc_dtype, "grad has dtype ",
                   dtype_str(grad.scalar_type()), " but the loss is ", dtype_str(p.acc_dtype));
  check_same_device(grad, "grad", inputs[0], "inputs[0]");
  if (per_sample) {
    TORCH_CHECK_VALUE(grad.dim() == 1 && grad.size(0) == p.batch, "grad has shape ",
                      shape_str(grad.sizes()), " but reduction 'per_sample' gives a loss of shape (",
                      p.batch, ",)");
  } else {
    TORCH_CHECK_VALUE(grad.dim() == 0, "grad has shape ", shape_str(grad.sizes()),
                      " but the loss is a 0-dim tensor");
  }
  p.loss = at::Tensor();
  for (const at::Tensor& x : p.inputs) p.grads.push_back(at::empty_like(x));
  return p;
}

}  // namespace ganloss
