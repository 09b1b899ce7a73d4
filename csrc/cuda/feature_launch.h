// Torch-free interface between cuda/feature_driver.cpp and the feature-loss kernels in
// cuda/feature.cu: one launcher per op, named after it.
#pragma once

#include <cuda_runtime_api.h>

#include "../common/feature.h"

namespace ganloss {

// One launch covers up to kMaxLayersPerLaunch layers and is passed by value (__grid_constant__),
// so a whole perceptual or feature-matching loss is one kernel launch.
struct FeatureLaunch {
  FeatureLayer layers[kMaxLayersPerLaunch];
  int num_layers;          // layers in this launch
  int64_t total_layers;    // layers over all launches of the op
  int64_t batch;           // N shared by all layers (reduction PerSample)
  int64_t chunk_offset;    // global index of this launch's first chunk (= layers[0].chunk_begin)
  int64_t num_chunks;      // chunks in this launch (one block each)
  Criterion criterion;
  Reduction reduction;
  double eps;              // Charbonnier epsilon
  // Forward only.
  double* chunk_sums;      // [all chunks, 2] partial sums of terms and mask
  double* stats;           // [segments, kStatCols] output
  double* terms;           // [segments] loss terms (one per layer for Mean, Sum)
  unsigned int* counter;   // blocks of this launch that finished; zeroed by the host
  bool last_launch;        // this launch's last block also writes the loss
  void* loss;              // [] or [N], double if loss_is_f64 else float
  // Backward and gradient scaling.
  const double* grad_factors;  // stats as written by the forward (column 2 is read)
  const void* grad;        // upstream gradient [] or [N], double if loss_is_f64 else float
  bool loss_is_f64;
};

// Loss, stats and (when layers[l].dx/dy are set) gradients for an upstream gradient of 1.
cudaError_t launch_feature_loss(const FeatureLaunch& p, DType dtype, cudaStream_t stream);
// dx = g * factor * criterion'(x - y) [* m], dy = -dx, recomputed from x and y.
cudaError_t launch_feature_loss_backward(const FeatureLaunch& p, DType dtype, cudaStream_t stream);
// layers[l].dx *= g * factor in place, skipping chunks whose factor is exactly 1.
cudaError_t launch_feature_loss_scale_grads(const FeatureLaunch& p, DType dtype,
                                            cudaStream_t stream);

}  // namespace ganloss
