// Paired bf16 loads and stores for the bf16-activation forms of the forward kernels (rmsnorm.cu, adaln.cu,
// swiglu.cu, rope.cu): two bf16 values in one 32-bit word, the first at the lower address (little-endian), rounded
// by bf16_from_float of common.cuh (round to nearest even, as facm.tensor.Bf16).
#pragma once

#include "common.cuh"

__device__ __forceinline__ uint32_t bf16_pack2(float a, float b) {
    return (uint32_t)bf16_from_float(a) | ((uint32_t)bf16_from_float(b) << 16);
}

// The two values of a packed word as floats, low half first (widening is exact).
__device__ __forceinline__ float2 bf16_unpack2(uint32_t w) {
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xFFFF0000u));
}
