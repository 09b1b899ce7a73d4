// Placeholder until the nvcuda::wmma emulation lands: no tensor-core self-tests yet.
#include "selftest.h"

namespace simt_selftest {

cudaError_t run_wmma(const std::string&, float*, int64_t, int64_t) { return cudaErrorInvalidValue; }
std::vector<std::string> wmma_names() { return {}; }

}  // namespace simt_selftest
