// Argument checks shared by the plans of every loss family (plan/<family>_plan.cpp). Every
// message names the argument and, for list arguments, the index ("targets[3] has shape
// (2, 64, 32, 31) but inputs[3] has ...").
// The messages and exception types are those of ganloss_cuda/reference/<family>.py: a wrong
// dtype raises TypeError (TORCH_CHECK_TYPE), any other bad argument ValueError (TORCH_CHECK_VALUE).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>
#include <string>

#include "../common/criterion.h"
#include "../common/hd.h"

namespace ganloss {

// "inputs[3]" for list elements, the plain name otherwise.
inline std::string arg_name(const char* name, int64_t index) {
  return std::string(name) + "[" + std::to_string(index) + "]";
}

inline std::string shape_str(at::IntArrayRef sizes) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
  s << (sizes.size() == 1 ? ",)" : ")");
  return s.str();
}

// "torch.float32", as Python prints a dtype.
inline std::string dtype_str(at::ScalarType st) {
  return "torch." + std::string(c10::getDtypeNames(st).first);
}

// The dtype losses, Grams and their sums are computed and returned in: fp64 for fp64 inputs,
// else fp32.
inline at::ScalarType acc_of(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_floating(const at::Tensor& t, const std::string& name) {
  const auto st = t.scalar_type();
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                   name, " must be float16, bfloat16, float32 or float64, got ", dtype_str(st));
}

inline void check_same_device(const at::Tensor& t, const std::string& name, const at::Tensor& ref,
                              const std::string& ref_name) {
  TORCH_CHECK_VALUE(t.device() == ref.device(), name, " is on ", t.device(), " but ", ref_name,
                    " is on ", ref.device());
}

inline void check_same_dtype(const at::Tensor& t, const std::string& name, const at::Tensor& ref,
                             const std::string& ref_name) {
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), name, " has dtype ",
                   dtype_str(t.scalar_type()), " but ", ref_name, " has ",
                   dtype_str(ref.scalar_type()));
}

// At least one input, one target per input, no weights or one finite non-negative weight per
// input (ganloss_cuda._args.check_layer_lists, same messages).
inline void check_layer_lists(at::TensorList inputs, at::TensorList targets,
                              at::ArrayRef<double> weights) {
  TORCH_CHECK_VALUE(!inputs.empty(), "inputs must hold at least one tensor");
  TORCH_CHECK_VALUE(targets.size() == inputs.size(), "targets has ", targets.size(),
                    " tensors but inputs has ", inputs.size());
  TORCH_CHECK_VALUE(weights.empty() || weights.size() == inputs.size(), "weights has ",
                    weights.size(), " entries but inputs has ", inputs.size(),
                    " (pass an empty list for weights of 1)");
  for (size_t i = 0; i < weights.size(); ++i)
    TORCH_CHECK_VALUE(weights[i] >= 0.0 && std::isfinite(weights[i]), arg_name("weights", i),
                      " must be a finite non-negative number, got ", weights[i]);
}

inline Reduction parse_reduction(c10::string_view s) {
  if (s == "mean") return Reduction::Mean;
  if (s == "sum") return Reduction::Sum;
  if (s == "per_sample") return Reduction::PerSample;
  TORCH_CHECK_VALUE(false, "reduction must be 'mean', 'sum' or 'per_sample', got '", s, "'");
}

inline DType dtype_of(at::ScalarType st) {
  switch (st) {
    case at::kFloat: return DType::F32;
    case at::kDouble: return DType::F64;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    default: TORCH_CHECK_TYPE(false, "unsupported dtype ", dtype_str(st));
  }
}

}  // namespace ganloss
