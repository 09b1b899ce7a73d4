// Torch-free interface between cuda/adversarial_driver.cpp and the adversarial kernels in
// cuda/adversarial.cu, with the work decomposition of one call: one launcher per op.
//
// Every input i is viewed as rows_i rows of row_len_i elements (rows = N per sample, else 1),
// and each row is split into chunks of `chunk` elements (one CUDA block each; chunk_elements() of
// common/chunks.h, from the call's element count and dtype alone). A segment is one row: the
// elements one loss term averages. Chunk and segment indices run over all inputs of the call.
#pragma once

#include <cuda_runtime_api.h>

#include "../common/adversarial.h"
#include "../common/chunks.h"
#include "../common/fast_divider.h"

namespace ganloss {

constexpr int kAdvMaxTensorsPerLaunch = 32;  // inputs per by-value parameter block (< 4 KB)

struct AdvTensor {
  const void* x;              // discriminator output, dense
  void* dx;                   // its gradient, same layout (backward)
  int64_t row_len;            // elements per row: numel / rows
  int64_t rows;               // N (per_sample) or 1
  int64_t chunks_per_row;     // ceil(row_len / chunk)
  int64_t chunk_begin;        // global index of the input's first chunk
  int64_t seg_begin;          // global index of its first segment (row)
  double weight;              // weights[i]
  double scale;               // weights[i] / row_len: d loss_n / d term
  FastDivider row_of_chunk;   // by chunks_per_row (an input has fewer than 2^31 chunks)
  bool real;                  // target real (label real_label) or fake
};

struct AdversarialLaunch {
  AdvTensor tensors[kAdvMaxTensorsPerLaunch];
  int num_tensors;         // inputs in this launch
  int64_t total_tensors;   // inputs over all launches of the call
  int64_t batch;           // loss entries: N (per_sample) or 1
  int64_t chunk;           // elements per chunk
  int64_t chunk_offset;    // global index of this launch's first chunk
  int64_t num_chunks;      // chunks in this launch (one block each)
  GanType gan_type;
  bool is_disc;
  double real_label, fake_label;
  // Forward.
  double* chunk_sums;      // [all chunks] sum of the terms of each chunk
  double* terms;           // [all segments] weight * segment mean: input i, sample n at i * batch + n
  unsigned int* counter;   // blocks of this launch that finished; zeroed by the driver
  bool last_launch;        // this launch's last block also writes the loss
  void* loss;              // [] or [N]: double if acc_is_f64 else float
  // Backward.
  const void* grad;        // upstream gradient [] or [N]: double if acc_is_f64 else float
  bool acc_is_f64;
};

struct AdvChunk {
  int tensor;     // index into tensors
  int64_t row;    // segment within the input
  int64_t begin;  // first element within the row
  int64_t end;    // one past the last
};

// The input owning a chunk is the last one that starts at or before it (none is empty).
GANLOSS_HD AdvChunk locate_adv_chunk(const AdversarialLaunch& p, int64_t chunk) {
  int t = 0;
  while (t + 1 < p.num_tensors && p.tensors[t + 1].chunk_begin <= chunk) ++t;
  const AdvTensor& X = p.tensors[t];
  const uint32_t local = uint32_t(chunk - X.chunk_begin);
  const uint32_t row = X.row_of_chunk.div(local);
  const int64_t begin = int64_t(local - row * X.row_of_chunk.divisor) * p.chunk;
  const int64_t end = begin + p.chunk < X.row_len ? begin + p.chunk : X.row_len;
  return {t, row, begin, end};
}

// Calls f(std::integral_constant<GanType, g>{}) (host code only).
template <typename F>
void dispatch_gan_type(GanType g, F&& f) {
  using G = GanType;
  switch (g) {
    case G::LSGAN: f(std::integral_constant<G, G::LSGAN>{}); break;
    case G::Vanilla: f(std::integral_constant<G, G::Vanilla>{}); break;
    case G::BCE: f(std::integral_constant<G, G::BCE>{}); break;
    case G::WGAN: f(std::integral_constant<G, G::WGAN>{}); break;
    case G::Softplus: f(std::integral_constant<G, G::Softplus>{}); break;
    case G::Hinge: f(std::integral_constant<G, G::Hinge>{}); break;
  }
}

// Loss (sum over inputs of scale_i * segment sums) in one launch per kAdvMaxTensorsPerLaunch
// inputs.
cudaError_t launch_adversarial_loss(const AdversarialLaunch& p, DType dtype, cudaStream_t stream);
// dx_i = round(g_n * scale_i * term'(x_i)).
cudaError_t launch_adversarial_loss_backward(const AdversarialLaunch& p, DType dtype,
                                             cudaStream_t stream);

}  // namespace ganloss
