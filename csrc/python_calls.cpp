// Python entry points for the eager calls of host-bound ops (ganloss_cuda/ops/adversarial.py):
// typed, unboxed calls of the registered ops through the dispatcher below the Autograd key (the
// callers' torch.autograd.Function records the graph), so every backend key, dispatch mode and
// profiler record is as through torch.ops, without torch.ops' boxing of each argument into an
// IValue and its __torch_function__ handling. A StyleGAN-like loss step costs less host time
// than that wrapping. The schemas and kernels stay where they are (ganloss.cpp, cpu/, cuda/);
// autograd stays in Python.
//
// Also the module init of the setup.py build (ganloss_cuda._C). The JIT build is loaded as a
// plain library, and the loader calls PyInit__C through ctypes for the same module.
#include <torch/extension.h>

#include <string>
#include <vector>

namespace ganloss {
namespace {

c10::List<bool> to_list(const std::vector<bool>& flags) {
  c10::List<bool> list;
  list.reserve(flags.size());
  for (bool f : flags) list.push_back(f);
  return list;
}

at::Tensor adversarial_loss(const std::vector<at::Tensor>& inputs, const std::vector<bool>& real,
                            const std::string& gan_type, bool is_disc, double real_label,
                            double fake_label, const std::vector<double>& weights,
                            bool per_sample) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("ganloss::adversarial_loss", "")
          .typed<at::Tensor(at::TensorList, const c10::List<bool>&, c10::string_view, bool, double,
                            double, at::ArrayRef<double>, bool)>();
  at::AutoDispatchBelowAutograd below_autograd;
  return op.call(inputs, to_list(real), gan_type, is_disc, real_label, fake_label, weights,
                 per_sample);
}

std::vector<at::Tensor> adversarial_loss_backward(
    const at::Tensor& grad, const std::vector<at::Tensor>& inputs, const std::vector<bool>& real,
    const std::string& gan_type, bool is_disc, double real_label, double fake_label,
    const std::vector<double>& weights, bool per_sample) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("ganloss::adversarial_loss_backward", "")
          .typed<std::vector<at::Tensor>(const at::Tensor&, at::TensorList, const c10::List<bool>&,
                                         c10::string_view, bool, double, double,
                                         at::ArrayRef<double>, bool)>();
  at::AutoDispatchBelowAutograd below_autograd;
  return op.call(grad, inputs, to_list(real), gan_type, is_disc, real_label, fake_label, weights,
                 per_sample);
}

}  // namespace
}  // namespace ganloss

extern "C" PyObject* PyInit__C(void) {
  static pybind11::module_::module_def module_def;
  auto m = pybind11::module_::create_extension_module(
      "_C", "Eager entry points of ganloss ops (csrc/python_calls.cpp)", &module_def);
  m.def("adversarial_loss", &ganloss::adversarial_loss);
  m.def("adversarial_loss_backward", &ganloss::adversarial_loss_backward);
  return m.release().ptr();
}
