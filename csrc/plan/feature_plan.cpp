#include "feature_plan.h"

#include <algorithm>
#include <cmath>

#include "checks.h"

namespace ganloss {
namespace {

Criterion parse_criterion(c10::string_view s) {
  if (s == "l1") return Criterion::L1;
  if (s == "mse") return Criterion::MSE;
  if (s == "charbonnier") return Criterion::Charbonnier;
  if (s == "fro") return Criterion::Fro;
  TORCH_CHECK_VALUE(false, "criterion must be 'l1', 'mse', 'charbonnier' or 'fro', got '", s, "'");
}

int64_t batch_of(const at::Tensor& t) { return t.dim() > 0 ? t.size(0) : 1; }

// x and y are read in place when both are dense in one format (contiguous, or both channels_last),
// otherwise as contiguous copies. The gradients take the layout that was read.
bool read_as_is(const at::Tensor& x, const at::Tensor& y) {
  if (x.is_contiguous() && y.is_contiguous()) return true;
  return x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
         y.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// How the kernels see a layer: [rows, row_len] with the reduction groups over rows (see
// FeatureLayer), and the mask indexing. One row per sample only where the sample index is needed
// (per_sample, or a one-channel mask broadcast over channels); else the whole layer is one row, so
// a (10^7,) tensor costs what a (1, 10^7) one does. A one-channel mask over samples of 2^31
// elements or more is read as a full mask (expanded by the caller), so that the kernels' mask
// index math stays in 32 bits. Chunks are assigned later (assign_chunks).
FeatureLayer layer_view(const at::Tensor& x, const std::optional<at::Tensor>& mask,
                        Reduction reduction, bool channels_last) {
  FeatureLayer L{};
  const int64_t numel = x.numel(), n = batch_of(x);
  const bool per_sample = reduction == Reduction::PerSample;
  const bool channel_mask = mask && mask->sizes() != x.sizes();
  L.segments = per_sample ? n : 1;
  L.rows = numel == 0 ? 0 : (per_sample || channel_mask ? n : 1);
  L.row_len = L.rows > 0 ? numel / L.rows : 0;
  L.rows_per_segment = per_sample || L.rows == 0 ? 1 : L.rows;
  L.mask_kind = MaskKind::Full;  // element j of row r is r * row_len + j
  L.mask_mod = L.row_len > 0 ? L.row_len : 1;
  L.mask_divider = make_fast_divider(1);
  if (channel_mask && numel > 0 && L.row_len < (int64_t(1) << 31)) {  // (N, 1, ...) over (N, C, ...)
    const int64_t channels = x.size(1);
    L.mask_mod = L.row_len / channels;  // pixels per sample
    const bool nhwc = channels_last || L.mask_mod == 1;  // channels per mask value
    L.mask_kind = nhwc ? MaskKind::ChannelNHWC : MaskKind::ChannelNCHW;
    L.mask_divider = make_fast_divider(uint32_t(nhwc ? channels : L.mask_mod));
  }
  return L;
}

// The chunk size from the op's element count and dtype (chunk_elements, the same rule for the CPU
// and CUDA kernels), then every layer's chunks, in layer order.
void assign_chunks(FeaturePlan& p, int64_t itemsize) {
  int64_t total = 0;
  for (const FeatureLayer& L : p.layers) total += L.rows * L.row_len;
  const int64_t chunk = chunk_elements(total, itemsize);
  for (FeatureLayer& L : p.layers) {
    L.chunk = chunk;
    L.chunks_per_row = chunks_per_row(L.row_len, chunk);
    TORCH_CHECK_VALUE(L.rows * L.chunks_per_row < (int64_t(1) << 31), "a layer of ",
                      L.rows * L.row_len, " elements is too large");
    L.row_of_chunk = make_fast_divider(uint32_t(std::max<int64_t>(L.chunks_per_row, 1)));
    L.chunk_begin = p.total_chunks;
    p.total_chunks += L.rows * L.chunks_per_row;
  }
}

// A mask has the shape of its input, or that shape with 1 channel (dim 1) broadcast over channels.
void check_mask(const at::Tensor& m, int64_t i, const at::Tensor& x, Criterion criterion) {
  const std::string name = arg_name("masks", i), xname = arg_name("inputs", i);
  TORCH_CHECK_VALUE(criterion != Criterion::Fro, name,
                    " is set, but criterion 'fro' takes no masks");
  check_floating(m, name);
  check_same_device(m, name, x, xname);
  bool channel_broadcast = x.dim() >= 2 && m.dim() == x.dim() && m.size(1) == 1;
  for (int64_t d = 0; channel_broadcast && d < x.dim(); ++d)
    channel_broadcast = d == 1 || m.size(d) == x.size(d);
  if (m.sizes() == x.sizes() || channel_broadcast) return;
  std::vector<int64_t> one_channel = x.sizes().vec();
  if (one_channel.size() >= 2) one_channel[1] = 1;
  TORCH_CHECK_VALUE(false, name, " has shape ", shape_str(m.sizes()), " but must be ",
                    shape_str(x.sizes()), " or ", shape_str(one_channel), " to match ", xname);
}

void check_lists(at::TensorList inputs, at::TensorList targets,
                 const c10::List<std::optional<at::Tensor>>& masks, at::ArrayRef<double> weights) {
  check_layer_lists(inputs, targets, weights);
  TORCH_CHECK_VALUE(masks.empty() || masks.size() == inputs.size(), "masks has ", masks.size(),
                    " entries but inputs has ", inputs.size(),
                    " (pass an empty list for no masks)");
}

}  // namespace

FeaturePlan plan_feature_loss(at::TensorList inputs, at::TensorList targets,
                              const c10::List<std::optional<at::Tensor>>& masks,
                              at::ArrayRef<double> weights, c10::string_view criterion,
                              c10::string_view reduction, double eps, bool input_grad,
                              bool target_grad, bool outputs) {
  check_lists(inputs, targets, masks, weights);
  FeaturePlan p;
  p.criterion = parse_criterion(criterion);
  p.reduction = parse_reduction(reduction);
  TORCH_CHECK_VALUE(p.criterion != Criterion::Charbonnier || (eps > 0.0 && std::isfinite(eps)),
                    "eps must be a positive number for criterion 'charbonnier', got ", eps);
  p.eps = eps;
  const at::Tensor& x0 = inputs[0];
  check_floating(x0, "inputs[0]");
  p.dtype = dtype_of(x0.scalar_type());
  p.batch = batch_of(x0);

  for (size_t i = 0; i < inputs.size(); ++i) {
    const at::Tensor &x = inputs[i], &y = targets[i];
    const std::string xname = arg_name("inputs", i), yname = arg_name("targets", i);
    check_same_dtype(x, xname, x0, "inputs[0]");
    check_same_device(x, xname, x0, "inputs[0]");
    check_same_dtype(y, yname, x, xname);
    check_same_device(y, yname, x, xname);
    TORCH_CHECK_VALUE(x.sizes() == y.sizes(), yname, " has shape ", shape_str(y.sizes()), " but ",
                      xname, " has ", shape_str(x.sizes()));
    const int64_t n = batch_of(x);
    if (p.reduction == Reduction::PerSample) {
      TORCH_CHECK_VALUE(x.dim() >= 1, xname,
                        " is a 0-dim tensor; reduction 'per_sample' needs a batch dim");
      TORCH_CHECK_VALUE(n == p.batch, xname, " has batch size ", n, " but inputs[0] has ", p.batch,
                        "; reduction 'per_sample' needs one batch size");
    }

    const bool as_is = read_as_is(x, y);
    const bool channels_last = as_is && !x.is_contiguous();
    const at::Tensor xd = as_is ? x : x.contiguous(), yd = as_is ? y : y.contiguous();
    p.keep.push_back(xd);
    p.keep.push_back(yd);

    const std::optional<at::Tensor> mask = masks.empty() ? std::nullopt : masks.get(i);
    if (mask) check_mask(*mask, i, x, p.criterion);
    FeatureLayer L = layer_view(x, mask, p.reduction, channels_last);
    L.x = xd.data_ptr();
    L.y = yd.data_ptr();
    if (mask && x.numel() > 0) {  // a full mask in x's layout; read in x's dtype or in fp32/fp64
      const bool full = L.mask_kind == MaskKind::Full;
      const auto format = full && channels_last ? at::MemoryFormat::ChannelsLast
                                                : at::MemoryFormat::Contiguous;
      const auto acc = acc_of(x);
      const bool native = mask->scalar_type() == x.scalar_type() || mask->scalar_type() == acc;
      const at::Tensor m = full ? mask->expand_as(x) : *mask;
      const at::Tensor md = (native ? m : m.to(acc)).contiguous(format);
      p.keep.push_back(md);
      L.mask = md.data_ptr();
      L.mask_is_acc = md.scalar_type() == acc;
    }
    L.weight = weights.empty() ? 1.0 : weights[i];
    L.grad_scale = static_grad_scale(p.criterion, p.reduction, L.mask != nullptr, L.weight,
                                     L.rows_per_segment * L.row_len);
    L.seg_begin = p.total_segments;
    p.total_segments += L.segments;
    if (input_grad) {
      p.input_grads.push_back(at::empty_like(xd));
      L.dx = p.input_grads.back().data_ptr();
    }
    if (target_grad) {
      p.target_grads.push_back(at::empty_like(yd));
      L.dy = p.target_grads.back().data_ptr();
    }
    p.layers.push_back(L);
  }
  assign_chunks(p, x0.element_size());

  if (outputs) {
    const auto out_dtype = acc_of(x0);
    p.loss = p.reduction == Reduction::PerSample ? at::empty({p.batch}, x0.options().dtype(out_dtype))
                                                 : at::empty({}, x0.options().dtype(out_dtype));
    p.stats = at::empty({p.total_segments, kStatCols}, x0.options().dtype(at::kDouble));
  }
  return p;
}

namespace {

void check_grad_and_stats(const at::Tensor& grad, const at::Tensor& stats, Reduction reduction,
                          int64_t batch, int64_t segments, const at::Tensor& ref,
                          const std::string& ref_name) {
  const auto loss_dtype = acc_of(ref);
  TORCH_CHECK_TYPE(grad.scalar_type() == loss_dtype, "grad has dtype ",
                   dtype_str(grad.scalar_type()), " but the loss of ", ref_name, " is ",
                   dtype_str(loss_dtype));
  check_same_device(grad, "grad", ref, ref_name);
  if (reduction == Reduction::PerSample) {
    TORCH_CHECK_VALUE(grad.dim() == 1 && grad.size(0) == batch, "grad has shape ",
                      shape_str(grad.sizes()),
                      " but reduction 'per_sample' gives a loss of shape (", batch, ",)");
  } else {
    TORCH_CHECK_VALUE(grad.dim() == 0, "grad has shape ", shape_str(grad.sizes()),
                      " but the loss is a 0-dim tensor");
  }
  check_same_device(stats, "stats", ref, ref_name);
  TORCH_CHECK_VALUE(stats.scalar_type() == at::kDouble && stats.dim() == 2 &&
                        stats.size(0) == segments && stats.size(1) == kStatCols &&
                        stats.is_contiguous(),
                    "stats must be the contiguous float64 (", segments, ", ", kStatCols,
                    ") tensor returned by feature_loss, got ", dtype_str(stats.scalar_type()), " ",
                    shape_str(stats.sizes()));
}

}  // namespace

void check_feature_loss_backward_args(const FeaturePlan& plan, const at::Tensor& grad,
                                      const at::Tensor& stats) {
  const at::Tensor& x0 = plan.keep[0];
  check_grad_and_stats(grad, stats, plan.reduction, plan.batch, plan.total_segments, x0, "inputs[0]");
}

FeaturePlan plan_feature_loss_scale_grads(const at::Tensor& grad, const at::Tensor& stats,
                                          c10::string_view reduction, at::TensorList grads) {
  TORCH_CHECK_VALUE(!grads.empty(), "grads must hold at least one tensor");
  FeaturePlan p;
  p.reduction = parse_reduction(reduction);
  p.criterion = Criterion::L1;
  p.eps = 0.0;
  const at::Tensor& g0 = grads[0];
  check_floating(g0, "grads[0]");
  p.dtype = dtype_of(g0.scalar_type());
  p.batch = batch_of(g0);
  for (size_t i = 0; i < grads.size(); ++i) {
    const at::Tensor& g = grads[i];
    const std::string name = arg_name("grads", i);
    check_same_dtype(g, name, g0, "grads[0]");
    check_same_device(g, name, g0, "grads[0]");
    TORCH_CHECK_VALUE(
        g.is_contiguous() || (g.dim() == 4 && g.is_contiguous(at::MemoryFormat::ChannelsLast)),
        name, " must be contiguous or channels_last");
    FeatureLayer L = layer_view(g, std::nullopt, p.reduction, /*channels_last=*/false);
    L.dx = g.data_ptr();
    L.seg_begin = p.total_segments;
    p.total_segments += L.segments;
    p.layers.push_back(L);
  }
  assign_chunks(p, g0.element_size());
  check_grad_and_stats(grad, stats, p.reduction, p.batch, p.total_segments, g0, "grads[0]");
  return p;
}

}  // namespace ganloss
