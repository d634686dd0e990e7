// Shared device helpers for every kernel file: grid-stride loops, warp and block reductions, bf16 conversion that
// matches facm.tensor.Bf16 bit for bit, the Philox generator of facm.tensor.Philox, and Java's float max/min.
//
// Conventions: every kernel is extern "C" and named <op>_<variant>; element counts are int64_t (tensors may exceed
// 2^31 elements); bf16 data is passed as raw uint16_t bit patterns so that no CUDA header decides the rounding.
#pragma once

#include <stdint.h>

// i runs over [0, n) with the whole grid striding, so any grid size is correct (launch1d caps the grid).
#define GRID_STRIDE_LOOP(i, n)                                                                   \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)(n);            \
         i += (int64_t)blockDim.x * gridDim.x)

#define FULL_WARP_MASK 0xffffffffu

// ------------------------------------------------------------------------------------------- Java float semantics

// Math.max(float, float): NaN if either is NaN, and +0 is larger than -0. fmaxf would drop the NaN instead.
__device__ __forceinline__ float java_max(float a, float b) {
    if (a != a) return a;
    if (b != b) return b;
    if (a == 0.0f && b == 0.0f) return signbit(a) ? b : a;
    return a >= b ? a : b;
}

// Math.min(float, float): NaN if either is NaN, and -0 is smaller than +0.
__device__ __forceinline__ float java_min(float a, float b) {
    if (a != a) return a;
    if (b != b) return b;
    if (a == 0.0f && b == 0.0f) return signbit(a) ? a : b;
    return a <= b ? a : b;
}

// ------------------------------------------------------------------------------------------- reductions
// The order of every reduction is fixed by the launch shape (a butterfly over the lanes, then over the warps), so
// the same input and launch always give the same bits.

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_WARP_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = java_max(v, __shfl_xor_sync(FULL_WARP_MASK, v, offset));
    return v;
}

// Reduction over the blockDim.x threads of one row group (threadIdx.y selects the group), blockDim.x a multiple of
// 32 and at most 1024. scratch holds 32 floats per group; every thread gets the result. All threads of the block
// must call it (it synchronizes the block).
template <bool IS_MAX>
__device__ __forceinline__ float row_reduce(float v, float* scratch) {
    v = IS_MAX ? warp_max(v) : warp_sum(v);
    if (blockDim.x == 32) return v;
    const int warps = blockDim.x / 32;
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    float* mine = scratch + threadIdx.y * 32;
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) mine[warp] = v;
    __syncthreads();
    float w = lane < warps ? mine[lane] : (IS_MAX ? -INFINITY : 0.0f);
    return IS_MAX ? warp_max(w) : warp_sum(w);
}

__device__ __forceinline__ float row_sum(float v, float* scratch) { return row_reduce<false>(v, scratch); }
__device__ __forceinline__ float row_max(float v, float* scratch) { return row_reduce<true>(v, scratch); }

// ------------------------------------------------------------------------------------------- bf16 (as facm.tensor.Bf16)

__device__ __forceinline__ float bf16_to_float(uint16_t b) { return __uint_as_float(((uint32_t)b) << 16); }

// Round to nearest even; a NaN stays a quiet NaN with its sign and high payload bits (not the canonical NaN that
// __float2bfloat16_rn would give), exactly as Bf16.fromFloat does.
__device__ __forceinline__ uint16_t bf16_from_float(float f) {
    uint32_t bits = __float_as_uint(f);
    if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu) != 0u) {
        return (uint16_t)((bits >> 16) | 0x0040u);
    }
    uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)((bits + rounding) >> 16);
}

// ------------------------------------------------------------------------------------------- Philox4x32-10
// Bit-identical to facm.tensor.Philox: counter (c0, c1) = (low, high) 32 bits of the 64-bit counter, c2 = c3 = 0,
// key = (low, high) of the seed, ten rounds with the Weyl key schedule.

struct PhiloxWords {
    uint32_t w0, w1, w2, w3;
};

__device__ __forceinline__ PhiloxWords philox4x32_10(uint64_t seed, uint64_t counter) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0u, c3 = 0u;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
    for (int round = 0; round < 10; round++) {
        uint32_t hi0 = __umulhi(M0, c0), lo0 = M0 * c0;
        uint32_t hi1 = __umulhi(M1, c2), lo1 = M1 * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += W0;
        k1 += W1;
    }
    return PhiloxWords{c0, c1, c2, c3};
}

// A word as a double in (0, 1): (w + 0.5) * 2^-32, exact in double (Philox.unit).
__device__ __forceinline__ double philox_unit(uint32_t w) { return ((double)w + 0.5) * (1.0 / 4294967296.0); }
