// The feature-loss CUDA kernels and launchers, unmodified, compiled by g++ for the SIMT emulator.
#include "simt.h"

#include "../../csrc/cuda/feature.cu"
