// Adversarial losses over discriminator outputs: the per-element term and its derivative,
// torch-free, shared by the CPU and CUDA kernels.
//
//   loss = sum_i w_i * reduce_i( term(x_i) )      reduce: mean over the tensor, or per sample
//
// term(x) by GanType, for an element of a tensor whose target is real (else fake), y = the label:
//   LSGAN     (x - y)^2                                   d: 2 (x - y)
//   Vanilla   y softplus(-x) + (1 - y) softplus(x)        d: sigmoid(x) - y   (BCE with logits;
//             a term whose coefficient is exactly 0 is skipped, so x = +-inf gives 0, not NaN)
//   BCE       -(y max(log p, -100) + (1 - y) max(log(1 - p), -100))   (torch's BCELoss)
//             d: (p - y) / max(p (1 - p), 1e-12)
//   WGAN      real: -x, fake: x                          d: -1 / 1
//   Softplus  real: softplus(-x), fake: softplus(x)      d: -sigmoid(-x) / sigmoid(x)
//   Hinge     discriminator: real relu(1 - x), fake relu(1 + x)   d: -[1 - x > 0] / [1 + x > 0]
//             generator (is_disc false): -x whatever the target   d: -1
// Terms are computed in the accumulation type (fp32, fp64 for fp64 inputs); NaN propagates.
#pragma once

#include "hd.h"

namespace ganloss {

enum class GanType : int32_t { LSGAN = 0, Vanilla = 1, BCE = 2, WGAN = 3, Softplus = 4, Hinge = 5 };

GANLOSS_HD float exp_(float v) { return expf(v); }
GANLOSS_HD double exp_(double v) { return exp(v); }
GANLOSS_HD float log_(float v) { return logf(v); }
GANLOSS_HD double log_(double v) { return log(v); }
GANLOSS_HD float log1p_(float v) { return log1pf(v); }
GANLOSS_HD double log1p_(double v) { return log1p(v); }

// log(1 + exp(z)) without overflow: max(z, 0) + log1p(exp(-|z|)).
template <typename A>
GANLOSS_HD A softplus(A z) {
  const A a = z < A(0) ? -z : z;
  return (z > A(0) ? z : A(0)) + log1p_(exp_(-a));
}

// 1 / (1 + exp(-z)) without overflow.
template <typename A>
GANLOSS_HD A sigmoid(A z) {
  if (z >= A(0)) return A(1) / (A(1) + exp_(-z));
  const A e = exp_(z);
  return e / (A(1) + e);
}

// One element's term. real: the tensor's target is real; y: its label.
template <GanType G, typename A>
GANLOSS_HD A adversarial_term(A x, bool real, bool is_disc, A y) {
  if constexpr (G == GanType::LSGAN) return (x - y) * (x - y);
  if constexpr (G == GanType::Vanilla) {
    A t = A(0);
    if (y != A(0)) t += y * softplus(-x);
    if (y != A(1)) t += (A(1) - y) * softplus(x);
    return t;
  }
  if constexpr (G == GanType::BCE) {
    const A lp = log_(x), lq = log1p_(-x);
    const A floor = A(-100);
    return -(y * (lp > floor ? lp : floor) + (A(1) - y) * (lq > floor ? lq : floor));
  }
  if constexpr (G == GanType::WGAN) return real ? -x : x;
  if constexpr (G == GanType::Softplus) return softplus(real ? -x : x);
  if constexpr (G == GanType::Hinge) {
    if (!is_disc) return -x;
    const A h = real ? A(1) - x : A(1) + x;
    return h > A(0) ? h : (h == h ? A(0) : h);  // relu, NaN stays NaN
  }
}

// d term / dx of one element.
template <GanType G, typename A>
GANLOSS_HD A adversarial_grad(A x, bool real, bool is_disc, A y) {
  if constexpr (G == GanType::LSGAN) return A(2) * (x - y);
  if constexpr (G == GanType::Vanilla) return sigmoid(x) - y;
  if constexpr (G == GanType::BCE) {
    const A d = x * (A(1) - x);
    return (x - y) / (d > A(1e-12) ? d : A(1e-12));
  }
  if constexpr (G == GanType::WGAN) return real ? A(-1) : A(1);
  if constexpr (G == GanType::Softplus) return real ? -sigmoid(-x) : sigmoid(x);
  if constexpr (G == GanType::Hinge) {
    if (!is_disc) return A(-1);
    return real ? -A(A(1) - x > A(0)) : A(A(1) + x > A(0));
  }
}

}  // namespace ganloss
