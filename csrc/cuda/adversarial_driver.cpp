// See adversarial_driver.h.
#include "adversarial_driver.h"

#include <algorithm>

#include "../plan/adversarial_plan.h"
#include "adversarial_launch.h"
#include "driver_helpers.h"

namespace ganloss {
namespace {

// The call's work decomposition: one AdvTensor per input (x and dx set), and the chunk count.
struct AdvWork {
  std::vector<AdvTensor> tensors;
  int64_t total_chunks;
  int64_t chunk;
};

AdvWork plan_work(const AdversarialPlan& plan) {
  AdvWork w{};
  int64_t total = 0;
  for (const at::Tensor& x : plan.inputs) total += x.numel();
  w.chunk = chunk_elements(total, plan.inputs[0].element_size());
  const bool backward = !plan.grads.empty();
  for (size_t i = 0; i < plan.inputs.size(); ++i) {
    AdvTensor t{};
    t.x = plan.inputs[i].data_ptr();
    t.dx = backward ? plan.grads[i].data_ptr() : nullptr;
    t.rows = plan.batch;
    t.row_len = adversarial_count(plan, i);
    t.chunks_per_row = chunks_per_row(t.row_len, w.chunk);
    t.chunk_begin = w.total_chunks;
    t.seg_begin = int64_t(i) * plan.batch;
    t.weight = plan.weights[i];
    t.scale = plan.weights[i] / double(t.row_len);
    t.row_of_chunk = make_fast_divider(uint32_t(t.chunks_per_row));
    t.real = plan.real[i];
    TORCH_CHECK(t.rows * t.chunks_per_row < (int64_t(1) << 31), "inputs[", i, "] is too large");
    w.total_chunks += t.rows * t.chunks_per_row;
    w.tensors.push_back(t);
  }
  return w;
}

// Calls launch(params, index) once per group of at most kAdvMaxTensorsPerLaunch inputs.
template <typename F>
void for_each_launch(const AdvWork& w, const AdversarialLaunch& base, F&& launch) {
  for_each_launch_group(int64_t(w.tensors.size()), kAdvMaxTensorsPerLaunch,
                        [&](int64_t first, int64_t count, int64_t index, bool last) {
    AdversarialLaunch p = base;
    p.num_tensors = int(count);
    std::copy_n(w.tensors.begin() + first, count, p.tensors);
    p.chunk_offset = w.tensors[first].chunk_begin;
    p.num_chunks = (last ? w.total_chunks : w.tensors[first + count].chunk_begin) - p.chunk_offset;
    p.last_launch = last;
    launch(p, index);
  });
}

AdversarialLaunch launch_base(const AdversarialPlan& plan, const AdvWork& w) {
  AdversarialLaunch p{};
  p.total_tensors = int64_t(w.tensors.size());
  p.batch = plan.batch;
  p.chunk = w.chunk;
  p.gan_type = plan.gan_type;
  p.is_disc = plan.is_disc;
  p.real_label = plan.real_label;
  p.fake_label = plan.fake_label;
  p.acc_is_f64 = plan.acc_dtype == at::kDouble;
  return p;
}

}  // namespace

at::Tensor run_adversarial_loss(at::TensorList inputs, const c10::List<bool>& real,
                                c10::string_view gan_type, bool is_disc, double real_label,
                                double fake_label, at::ArrayRef<double> weights, bool per_sample,
                                cudaStream_t stream) {
  const AdversarialPlan plan = plan_adversarial_loss(inputs, real, gan_type, is_disc, real_label,
                                                     fake_label, weights, per_sample);
  const AdvWork w = plan_work(plan);
  // Workspace: chunk partials, segment terms, one block counter per launch (32 bits each).
  const int64_t segments = int64_t(w.tensors.size()) * plan.batch;
  const int64_t launches = launch_groups(int64_t(w.tensors.size()), kAdvMaxTensorsPerLaunch);
  at::Tensor workspace = at::empty({w.total_chunks + segments + (launches + 1) / 2},
                                   plan.inputs[0].options().dtype(at::kDouble));
  double* ws = workspace.data_ptr<double>();
  auto* counters = reinterpret_cast<unsigned int*>(ws + w.total_chunks + segments);
  check_cuda(cudaMemsetAsync(counters, 0, sizeof(unsigned int) * launches, stream));

  AdversarialLaunch base = launch_base(plan, w);
  base.chunk_sums = ws;
  base.terms = ws + w.total_chunks;
  base.loss = plan.loss.data_ptr();
  for_each_launch(w, base, [&](AdversarialLaunch& p, int64_t index) {
    p.counter = counters + index;
    check_cuda(launch_adversarial_loss(p, plan.dtype, stream));
  });
  return plan.loss;
}

std::vector<at::Tensor> run_adversarial_loss_backward(
    const at::Tensor& grad, at::TensorList inputs, const c10::List<bool>& real,
    c10::string_view gan_type, bool is_disc, double real_label, double fake_label,
    at::ArrayRef<double> weights, bool per_sample, cudaStream_t stream) {
  const AdversarialPlan plan = plan_adversarial_loss_backward(
      grad, inputs, real, gan_type, is_disc, real_label, fake_label, weights, per_sample);
  const AdvWork w = plan_work(plan);
  const at::Tensor g = grad.contiguous();
  AdversarialLaunch base = launch_base(plan, w);
  base.grad = g.data_ptr();
  for_each_launch(w, base, [&](AdversarialLaunch& p, int64_t) {
    check_cuda(launch_adversarial_loss_backward(p, plan.dtype, stream));
  });
  return plan.grads;
}

}  // namespace ganloss
