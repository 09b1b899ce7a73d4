// Ops of the SIMT emulation tier (namespace ganloss_simt, CPU tensors): the CUDA ops'
// stream-level drivers (csrc/cuda/<family>_driver.cpp) running the emulated kernels, the
// scheduler's controls and the self-test kernels (selftest_kernels.cu, wmma_selftest.cu).
// build.load() wraps them in a module object.
#include <torch/library.h>

#include "cuda/adversarial_driver.h"
#include "cuda/feature_driver.h"
#include "cuda/gram_driver.h"
#include "selftest.h"
#include "simt_control.h"

namespace {

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> feature_loss(
    at::TensorList inputs, at::TensorList targets,
    const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights,
    c10::string_view criterion, c10::string_view reduction, double eps, bool input_grad,
    bool target_grad) {
  return ganloss::run_feature_loss(inputs, targets, masks, weights, criterion, reduction, eps,
                                   input_grad, target_grad, nullptr);
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> feature_loss_backward(
    const at::Tensor& grad, const at::Tensor& stats, at::TensorList inputs, at::TensorList targets,
    const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights,
    c10::string_view criterion, c10::string_view reduction, double eps, bool input_grad,
    bool target_grad) {
  return ganloss::run_feature_loss_backward(grad, stats, inputs, targets, masks, weights,
                                            criterion, reduction, eps, input_grad, target_grad,
                                            nullptr);
}

void feature_loss_scale_grads_(const at::Tensor& grad, const at::Tensor& stats,
                               c10::string_view reduction, at::TensorList grads) {
  ganloss::run_feature_loss_scale_grads(grad, stats, reduction, grads, nullptr);
}

at::Tensor gram_matrix(const at::Tensor& features, double scale, bool allow_tf32) {
  return ganloss::run_gram_matrix(features, scale, allow_tf32, nullptr);
}

at::Tensor gram_matrix_backward(const at::Tensor& grad, const at::Tensor& features, double scale,
                                bool allow_tf32) {
  return ganloss::run_gram_matrix_backward(grad, features, scale, allow_tf32, nullptr);
}

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>> style_loss(
    at::TensorList inputs, at::TensorList targets, at::ArrayRef<double> weights,
    at::ArrayRef<double> scales, c10::string_view criterion, c10::string_view reduction,
    bool target_is_gram, bool allow_tf32) {
  return ganloss::run_style_loss(inputs, targets, weights, scales, criterion, reduction,
                                 target_is_gram, allow_tf32, nullptr);
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> style_loss_backward(
    const at::Tensor& grad, const at::Tensor& stats, at::TensorList diffs, at::TensorList inputs,
    at::TensorList targets, at::ArrayRef<double> weights, at::ArrayRef<double> scales,
    c10::string_view criterion, c10::string_view reduction, bool target_is_gram, bool input_grad,
    bool target_grad, bool allow_tf32) {
  return ganloss::run_style_loss_backward(grad, stats, diffs, inputs, targets, weights, scales,
                                          criterion, reduction, target_is_gram, input_grad,
                                          target_grad, allow_tf32, nullptr);
}

at::Tensor adversarial_loss(at::TensorList inputs, const c10::List<bool>& real,
                            c10::string_view gan_type, bool is_disc, double real_label,
                            double fake_label, at::ArrayRef<double> weights, bool per_sample) {
  return ganloss::run_adversarial_loss(inputs, real, gan_type, is_disc, real_label, fake_label,
                                       weights, per_sample, nullptr);
}

std::vector<at::Tensor> adversarial_loss_backward(
    const at::Tensor& grad, at::TensorList inputs, const c10::List<bool>& real,
    c10::string_view gan_type, bool is_disc, double real_label, double fake_label,
    at::ArrayRef<double> weights, bool per_sample) {
  return ganloss::run_adversarial_loss_backward(grad, inputs, real, gan_type, is_disc, real_label,
                                                fake_label, weights, per_sample, nullptr);
}

void set_schedule(int64_t seed, int64_t policy) {
  TORCH_CHECK_VALUE(policy >= 0 && policy <= 2, "policy must be 0, 1 or 2, got ", policy);
  simt::set_schedule(uint64_t(seed), simt::Policy(policy));
}

// launches, blocks, switches, barriers, collectives, yields, shared_vars (build.STATS).
std::vector<int64_t> stats() {
  const simt::Stats s = simt::stats();
  return {int64_t(s.launches), int64_t(s.blocks), int64_t(s.switches), int64_t(s.barriers),
          int64_t(s.collectives), int64_t(s.yields), int64_t(s.shared_vars)};
}

void selftest(c10::string_view name, const at::Tensor& out, int64_t arg) {
  TORCH_CHECK_VALUE(out.is_contiguous() && out.scalar_type() == at::kFloat,
                    "out must be a contiguous float32 tensor");
  const cudaError_t err = simt_selftest::run(std::string(name), out.data_ptr<float>(),
                                             out.numel(), arg);
  TORCH_CHECK(err == cudaSuccess, cudaGetErrorString(err));
}

// The self-tests' names, joined by spaces (an op cannot return a list of strings).
std::string selftest_names() {
  std::string all;
  for (const std::string& n : simt_selftest::names()) all += (all.empty() ? "" : " ") + n;
  return all;
}

}  // namespace

TORCH_LIBRARY(ganloss_simt, m) {
  m.def("feature_loss(Tensor[] inputs, Tensor[] targets, Tensor?[] masks, float[] weights, "
        "str criterion, str reduction, float eps, bool input_grad, bool target_grad) -> "
        "(Tensor, Tensor, Tensor[], Tensor[])", &feature_loss);
  m.def("feature_loss_backward(Tensor grad, Tensor stats, Tensor[] inputs, Tensor[] targets, "
        "Tensor?[] masks, float[] weights, str criterion, str reduction, float eps, "
        "bool input_grad, bool target_grad) -> (Tensor[], Tensor[])", &feature_loss_backward);
  m.def("feature_loss_scale_grads_(Tensor grad, Tensor stats, str reduction, "
        "Tensor(a!)[] grads) -> ()", &feature_loss_scale_grads_);
  m.def("gram_matrix(Tensor features, float scale, bool allow_tf32) -> Tensor", &gram_matrix);
  m.def("gram_matrix_backward(Tensor grad, Tensor features, float scale, bool allow_tf32) -> "
        "Tensor", &gram_matrix_backward);
  m.def("style_loss(Tensor[] inputs, Tensor[] targets, float[] weights, float[] scales, "
        "str criterion, str reduction, bool target_is_gram, bool allow_tf32) -> "
        "(Tensor, Tensor, Tensor[])", &style_loss);
  m.def("style_loss_backward(Tensor grad, Tensor stats, Tensor[] diffs, Tensor[] inputs, "
        "Tensor[] targets, float[] weights, float[] scales, str criterion, str reduction, "
        "bool target_is_gram, bool input_grad, bool target_grad, bool allow_tf32) -> "
        "(Tensor[], Tensor[])", &style_loss_backward);
  m.def("adversarial_loss(Tensor[] inputs, bool[] real, str gan_type, bool is_disc, "
        "float real_label, float fake_label, float[] weights, bool per_sample) -> Tensor",
        &adversarial_loss);
  m.def("adversarial_loss_backward(Tensor grad, Tensor[] inputs, bool[] real, str gan_type, "
        "bool is_disc, float real_label, float fake_label, float[] weights, bool per_sample) -> "
        "Tensor[]", &adversarial_loss_backward);
  m.def("set_schedule(int seed, int policy) -> ()", &set_schedule);
  m.def("reset_stats() -> ()", &simt::reset_stats);
  m.def("stats() -> int[]", &stats);
  m.def("selftest(str name, Tensor(a!) out, int arg) -> ()", &selftest);
  m.def("selftest_names() -> str", &selftest_names);
}
