// The self-test kernels, compiled by g++ for the SIMT emulator.
#include "simt.h"

#include "selftest_kernels.cu"
