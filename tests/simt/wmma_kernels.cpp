// The tensor-core self-tests, compiled by g++ for the SIMT emulator.
#include "simt.h"

#include "wmma_selftest.cu"
