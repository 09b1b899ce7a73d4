// Self-test kernels of the SIMT emulation tier (selftest_kernels.cu): small kernels, correct or
// with one deliberate bug each, that show what the tier computes and what it reports.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

namespace simt_selftest {

// Runs the named self-test on out[0..n) (host memory, as every "device" pointer here).
cudaError_t run(const std::string& name, float* out, int64_t n, int64_t arg);
std::vector<std::string> names();

// The tensor-core (nvcuda::wmma) self-tests, in wmma_selftest.cu; run() falls through to them.
cudaError_t run_wmma(const std::string& name, float* out, int64_t n, int64_t arg);
std::vector<std::string> wmma_names();

}  // namespace simt_selftest
