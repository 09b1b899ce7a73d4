// Criteria and reductions shared by the loss families (feature, Gram/style): the per-element
// term and its derivative, in the accumulation type, for the CPU and CUDA kernels.
#pragma once

#include "hd.h"

namespace ganloss {

enum class Criterion : int32_t {
  L1 = 0,           // |d|
  MSE = 1,          // d^2
  Charbonnier = 2,  // sqrt(d^2 + eps)
  Fro = 3,          // ||d||_F over the reduction group (summed d^2, square root at the end)
};

enum class Reduction : int32_t {
  Mean = 0,       // sum over the layer / numel (masked: / sum of the expanded mask, BasicSR)
  Sum = 1,        // sum over the layer
  PerSample = 2,  // vector [N]: mean over each sample's elements (masked: / the sample's mask sum)
};

GANLOSS_HD float sqrt_(float v) { return sqrtf(v); }
GANLOSS_HD double sqrt_(double v) { return sqrt(v); }
GANLOSS_HD float abs_(float v) { return fabsf(v); }
GANLOSS_HD double abs_(double v) { return fabs(v); }

// The summed term of one element: |d|, d^2 or sqrt(d^2 + eps) (Fro sums d^2).
template <Criterion C, typename A>
GANLOSS_HD A criterion_value(A d, A eps) {
  if constexpr (C == Criterion::L1) return abs_(d);
  if constexpr (C == Criterion::MSE || C == Criterion::Fro) return d * d;
  if constexpr (C == Criterion::Charbonnier) return sqrt_(d * d + eps);
}

// d term / d d, up to the dynamic factor applied per segment (Fro: 1 / ||d||).
// L1 follows torch's sign(): 0 at d == 0 and at NaN.
template <Criterion C, typename A>
GANLOSS_HD A criterion_grad(A d, A eps) {
  if constexpr (C == Criterion::L1) return A(int(d > A(0)) - int(d < A(0)));  // setcc, no branch
  if constexpr (C == Criterion::MSE) return A(2) * d;
  if constexpr (C == Criterion::Fro) return d;
  if constexpr (C == Criterion::Charbonnier) return d / sqrt_(d * d + eps);
}

struct GroupTerm {
  double value;        // this group's contribution to the loss
  double grad_factor;  // multiplies the static gradient of every element in the group
};

// One reduction group: a whole layer (Mean, Sum) or one sample of it (PerSample).
// count = elements in the group; mask_sum = sum of the expanded mask over it. The weight is
// applied last, so a huge weight on a small mean stays finite.
GANLOSS_HD GroupTerm reduce_group(Criterion c, Reduction r, bool masked, double weight, double sum,
                                  double mask_sum, int64_t count) {
  if (count == 0) return {0.0, 0.0};  // empty layers contribute nothing
  if (c == Criterion::Fro) {          // d||d|| / dd = d / ||d||: 0 at d = 0 (torch), NaN stays NaN
    const double norm = sqrt(sum);
    return {weight * norm, norm == 0.0 ? 0.0 : weight / norm};
  }
  if (r == Reduction::Sum) return {weight * sum, weight};
  if (masked) return {weight * (sum / mask_sum), weight / mask_sum};  // BasicSR: no eps, 0/0 = NaN
  return {weight * (sum / double(count)), 1.0};
}

}  // namespace ganloss
