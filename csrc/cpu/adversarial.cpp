// CPU kernels of the adversarial-loss ops (per-element math in common/adversarial.h).
//
// forward : per input i and segment (the tensor, or one sample under per_sample), the fp64 sum of
//           term(x_j) (each term in fp32, fp64 for fp64 inputs) over fixed chunks of kChunk
//           elements in parallel, chunk sums added in order: the loss does not depend on the
//           number of threads. loss = sum_i w_i * sum_i,seg / count_i. Reads every x once.
// backward: dx_j = round(g_seg * w_i / count_i * term'(x_j)), computed in fp32 (fp64) and rounded
//           once, after the upstream (loss-scaled) gradient is applied. Reads x, writes dx.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../plan/adversarial_plan.h"

namespace ganloss {
namespace {

constexpr int64_t kChunk = 4096;
constexpr int64_t kSerialElements = 1 << 16;  // below this, no parallel region (its start costs
                                              // more than the work: patch logits are small)

// Calls f(std::integral_constant<GanType, t>{}) for the plan's gan type.
template <typename F>
void dispatch_gan_type(GanType t, F&& f) {
  using G = GanType;
  switch (t) {
    case G::LSGAN: return f(std::integral_constant<G, G::LSGAN>{});
    case G::Vanilla: return f(std::integral_constant<G, G::Vanilla>{});
    case G::BCE: return f(std::integral_constant<G, G::BCE>{});
    case G::WGAN: return f(std::integral_constant<G, G::WGAN>{});
    case G::Softplus: return f(std::integral_constant<G, G::Softplus>{});
    case G::Hinge: return f(std::integral_constant<G, G::Hinge>{});
  }
}

// The fp64 term sums of input i, one per segment.
template <GanType G, typename T>
std::vector<double> segment_sums(const AdversarialPlan& p, size_t i) {
  using A = at::opmath_type<T>;
  const T* x = p.inputs[i].data_ptr<T>();
  const int64_t len = adversarial_count(p, i), segments = p.per_sample ? p.batch : 1;
  const int64_t per_segment = (len + kChunk - 1) / kChunk;
  const bool real = p.real[i];
  const A y = A(real ? p.real_label : p.fake_label);
  std::vector<double> chunk_sums(segments * per_segment);
  // Chunks per thread: a parallel region only past kSerialElements elements (per-sample
  // segments of StyleGAN's (N, 1) logits are chunks of one element).
  const int64_t grain = std::max<int64_t>(1, kSerialElements / std::min(kChunk, len));
  at::parallel_for(0, segments * per_segment, grain, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t seg = c / per_segment, first = seg * len + (c % per_segment) * kChunk;
      const int64_t last = std::min(first + kChunk, (seg + 1) * len);
      double sum = 0.0;
      for (int64_t j = first; j < last; ++j)
        sum += double(adversarial_term<G>(A(x[j]), real, p.is_disc, y));
      chunk_sums[c] = sum;
    }
  });
  std::vector<double> sums(segments, 0.0);
  for (int64_t c = 0; c < segments * per_segment; ++c) sums[c / per_segment] += chunk_sums[c];
  return sums;
}

at::Tensor adversarial_loss_cpu(at::TensorList inputs, const c10::List<bool>& real,
                                c10::string_view gan_type, bool is_disc, double real_label,
                                double fake_label, at::ArrayRef<double> weights, bool per_sample) {
  AdversarialPlan p = plan_adversarial_loss(inputs, real, gan_type, is_disc, real_label,
                                            fake_label, weights, per_sample);
  std::vector<double> loss(p.per_sample ? p.batch : 1, 0.0);
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    std::vector<double> sums;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.inputs[i].scalar_type(),
                                    "adversarial_loss_cpu", [&] {
      dispatch_gan_type(p.gan_type, [&](auto g) { sums = segment_sums<g.value, scalar_t>(p, i); });
    });
    const double count = double(adversarial_count(p, i));
    for (size_t s = 0; s < sums.size(); ++s) loss[s] += p.weights[i] * (sums[s] / count);
  }
  AT_DISPATCH_FLOATING_TYPES(p.acc_dtype, "adversarial_loss_cpu_out", [&] {
    scalar_t* out = p.loss.data_ptr<scalar_t>();
    for (size_t s = 0; s < loss.size(); ++s) out[s] = scalar_t(loss[s]);
  });
  return p.loss;
}

template <GanType G, typename T>
void input_grad(const AdversarialPlan& p, size_t i, const at::Tensor& grad) {
  using A = at::opmath_type<T>;
  using Loss = std::conditional_t<std::is_same<T, double>::value, double, float>;  // acc_dtype
  const Loss* g = grad.data_ptr<Loss>();
  const T* x = p.inputs[i].data_ptr<T>();
  T* dx = p.grads[i].data_ptr<T>();
  const int64_t len = adversarial_count(p, i), numel = p.inputs[i].numel();
  const bool real = p.real[i];
  const A y = A(real ? p.real_label : p.fake_label);
  const double scale = p.weights[i] / double(len);
  at::parallel_for(0, numel, kSerialElements, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const A factor = A(double(g[p.per_sample ? j / len : 0]) * scale);
      dx[j] = T(factor * adversarial_grad<G>(A(x[j]), real, p.is_disc, y));
    }
  });
}

std::vector<at::Tensor> adversarial_loss_backward_cpu(
    const at::Tensor& grad, at::TensorList inputs, const c10::List<bool>& real,
    c10::string_view gan_type, bool is_disc, double real_label, double fake_label,
    at::ArrayRef<double> weights, bool per_sample) {
  AdversarialPlan p = plan_adversarial_loss_backward(grad, inputs, real, gan_type, is_disc,
                                                     real_label, fake_label, weights, per_sample);
  const at::Tensor g = grad.contiguous();  // in acc_dtype (the plan checks it)
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.inputs[i].scalar_type(),
                                    "adversarial_loss_backward_cpu", [&] {
      dispatch_gan_type(p.gan_type, [&](auto t) { input_grad<t.value, scalar_t>(p, i, g); });
    });
  }
  return p.grads;
}

}  // namespace

TORCH_LIBRARY_IMPL(ganloss, CPU, m) {
  m.impl("adversarial_loss", &adversarial_loss_cpu);
  m.impl("adversarial_loss_backward", &adversarial_loss_backward_cpu);
}

}  // namespace ganloss
