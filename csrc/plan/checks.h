// Argument checks shared by the plans of every loss family (plan/<family>_plan.cpp). Every
// message names the argument and, for list arguments, the index ("targets[3] has shape
// (2, 64, 32, 31) but inputs[3] has ...").
// The messages and exception types are those of ganloss_cuda/reference/<family>.py: a wrong
// dtype raises TypeError (TORCH_CHECK_TYPE), any other bad argument ValueError (TORCH_CHECK_VALUE).
#pragma once

#include <ATen/ATen.h>

#include <sstream>
#include <string>

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
