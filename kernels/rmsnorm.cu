// RMSNorm with optional adaLN modulation (facm-spec.md §3.2 block and final layer):
//   out = x·ρ ⊙ w ⊙ (1 + scale_b) + shift_b,   ρ = (mean_D(x²) + eps)^(−½) per row,
// with shift/scale read in place from the block's modulation tensor mod [B, K·D] (chunks shiftOff/D and scaleOff/D
// of batch row b = row / tokens). mod == nullptr gives plain RMSNorm: out = x·ρ ⊙ w. rstd (may be nullptr) receives
// ρ per row for the backward pass. Statistics in fp32 (the CPU reference accumulates in fp64; a row of 1152 squares
// summed in fp32 by 32 lanes and a butterfly is within a few 1e-7 of it).
//
// One warp per row, rows grid-strided over the warps of the grid; out may alias x (each row is read before it is
// written, by the same warp). Launchers: facm.backend.cuda.CudaNetworkOps.
#include "common.cuh"

// Largest D the register-cached kernel takes: each lane keeps RMSNORM_CACHE float4 of the row, so the row is read from
// memory once. 16 float4 per lane = 64 registers, D up to 2048 (XL: 1152, 1p6B: 1792).
#define RMSNORM_CACHE 16

// Modulated value for one element: (x·ρ)·w·(1 + scale) + shift, or (x·ρ)·w without modulation.
__device__ __forceinline__ float rmsnorm_modulate(float x, float rho, float w, const float* shift, const float* scale,
                                                  int d) {
    const float y = x * rho * w;
    return shift == nullptr ? y : y * (1.0f + scale[d]) + shift[d];
}

// D % 4 == 0, D ≤ 128·RMSNORM_CACHE, and x, w, out, mod 16-byte aligned (the launcher checks all of these and falls
// back to rmsnorm_fwd otherwise).
extern "C" __global__ void __launch_bounds__(256) rmsnorm_fwd_vec4(
        const float* x, const float* __restrict__ w, const float* __restrict__ mod,
        float* out, float* __restrict__ rstd, int64_t rows, int D, int tokens, int64_t modStride,
        int shiftOff, int scaleOff, float eps) {
    const int lane = threadIdx.x & 31;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    const int D4 = D >> 2;
    const float4* w4 = reinterpret_cast<const float4*>(w);
    for (int64_t row = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); row < rows; row += warpsInGrid) {
        const float4* xr = reinterpret_cast<const float4*>(x + row * D);
        float4 v[RMSNORM_CACHE];
        float ss = 0.0f;
#pragma unroll
        for (int i = 0; i < RMSNORM_CACHE; i++) {
            const int c = lane + 32 * i;
            v[i] = c < D4 ? xr[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            ss = fmaf(v[i].x, v[i].x, ss);
            ss = fmaf(v[i].y, v[i].y, ss);
            ss = fmaf(v[i].z, v[i].z, ss);
            ss = fmaf(v[i].w, v[i].w, ss);
        }
        ss = warp_sum(ss);
        const float rho = 1.0f / sqrtf(ss / (float)D + eps);
        if (rstd != nullptr && lane == 0) rstd[row] = rho;
        const float* shift = nullptr;
        const float* scale = nullptr;
        if (mod != nullptr) {
            const float* mb = mod + (row / tokens) * modStride;
            shift = mb + shiftOff;
            scale = mb + scaleOff;
        }
        float4* orow = reinterpret_cast<float4*>(out + row * D);
#pragma unroll
        for (int i = 0; i < RMSNORM_CACHE; i++) {
            const int c = lane + 32 * i;
            if (c < D4) {
                const float4 wv = w4[c];
                const int d = 4 * c;
                float4 o;
                o.x = rmsnorm_modulate(v[i].x, rho, wv.x, shift, scale, d);
                o.y = rmsnorm_modulate(v[i].y, rho, wv.y, shift, scale, d + 1);
                o.z = rmsnorm_modulate(v[i].z, rho, wv.z, shift, scale, d + 2);
                o.w = rmsnorm_modulate(v[i].w, rho, wv.w, shift, scale, d + 3);
                orow[c] = o;
            }
        }
    }
}

// Any D and any alignment: the same per-row formula with scalar loads, reading the row twice (the second pass hits
// L1/L2).
extern "C" __global__ void __launch_bounds__(256) rmsnorm_fwd(
        const float* x, const float* __restrict__ w, const float* __restrict__ mod,
        float* out, float* __restrict__ rstd, int64_t rows, int D, int tokens, int64_t modStride,
        int shiftOff, int scaleOff, float eps) {
    const int lane = threadIdx.x & 31;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    for (int64_t row = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); row < rows; row += warpsInGrid) {
        const float* xr = x + row * D;
        float ss = 0.0f;
        for (int d = lane; d < D; d += 32) ss = fmaf(xr[d], xr[d], ss);
        ss = warp_sum(ss);
        const float rho = 1.0f / sqrtf(ss / (float)D + eps);
        if (rstd != nullptr && lane == 0) rstd[row] = rho;
        const float* shift = nullptr;
        const float* scale = nullptr;
        if (mod != nullptr) {
            const float* mb = mod + (row / tokens) * modStride;
            shift = mb + shiftOff;
            scale = mb + scaleOff;
        }
        float* orow = out + row * D;
        for (int d = lane; d < D; d += 32) orow[d] = rmsnorm_modulate(xr[d], rho, w[d], shift, scale, d);
    }
}
