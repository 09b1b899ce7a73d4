// Python module of the SIMT emulation tier: the CUDA ops' stream-level drivers
// (csrc/cuda/<family>_driver.cpp) on CPU tensors, running the emulated kernels, plus the
// scheduler's controls and the self-test kernels (selftest_kernels.cu).
#include <torch/extension.h>

#include "cuda/feature_driver.h"
#include "selftest.h"
#include "simt_control.h"

namespace {

c10::List<std::optional<at::Tensor>> optional_list(const std::vector<std::optional<at::Tensor>>& v) {
  c10::List<std::optional<at::Tensor>> out;
  for (const auto& t : v) out.push_back(t);
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using Tensors = std::vector<at::Tensor>;
  using Masks = std::vector<std::optional<at::Tensor>>;
  m.def("feature_loss", [](const Tensors& inputs, const Tensors& targets, const Masks& masks,
                           const std::vector<double>& weights, const std::string& criterion,
                           const std::string& reduction, double eps, bool input_grad,
                           bool target_grad) {
    return ganloss::run_feature_loss(inputs, targets, optional_list(masks), weights, criterion,
                                     reduction, eps, input_grad, target_grad, nullptr);
  });
  m.def("feature_loss_backward",
        [](const at::Tensor& grad, const at::Tensor& stats, const Tensors& inputs,
           const Tensors& targets, const Masks& masks, const std::vector<double>& weights,
           const std::string& criterion, const std::string& reduction, double eps,
           bool input_grad, bool target_grad) {
          return ganloss::run_feature_loss_backward(grad, stats, inputs, targets,
                                                    optional_list(masks), weights, criterion,
                                                    reduction, eps, input_grad, target_grad,
                                                    nullptr);
        });
  m.def("feature_loss_scale_grads_", [](const at::Tensor& grad, const at::Tensor& stats,
                                        const std::string& reduction, const Tensors& grads) {
    ganloss::run_feature_loss_scale_grads(grad, stats, reduction, grads, nullptr);
  });
  m.def("set_schedule", [](uint64_t seed, int policy) {
    TORCH_CHECK_VALUE(policy >= 0 && policy <= 2, "policy must be 0, 1 or 2");
    simt::set_schedule(seed, simt::Policy(policy));
  });
  m.def("reset_stats", &simt::reset_stats);
  m.def("stats", [] {
    const simt::Stats s = simt::stats();
    return std::map<std::string, uint64_t>{
        {"launches", s.launches}, {"blocks", s.blocks}, {"switches", s.switches},
        {"barriers", s.barriers}, {"collectives", s.collectives}, {"yields", s.yields},
        {"shared_vars", s.shared_vars}};
  });
  m.def("selftest", [](const std::string& name, at::Tensor out, int64_t arg) {
    TORCH_CHECK_VALUE(out.is_contiguous() && out.scalar_type() == at::kFloat,
                      "out must be a contiguous float32 tensor");
    const cudaError_t err = simt_selftest::run(name, out.data_ptr<float>(), out.numel(), arg);
    if (err != cudaSuccess) throw std::runtime_error(cudaGetErrorString(err));
  });
  m.attr("SELFTESTS") = simt_selftest::names();
}
