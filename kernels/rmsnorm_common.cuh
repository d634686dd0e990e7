// Shared by kernels/rmsnorm.cu and kernels/residual_norm.cu: the per-element RMSNorm-modulate formula and the output
// stores, defined once so that the fused residual norm stays bit-identical to rmsnorm_fwd (its tests check it).
#pragma once
#include "common.cuh"
#include "bf16_pack.cuh"

// Modulated value for one element: (x·ρ)·w·(1 + scale) + shift, or (x·ρ)·w without modulation.
__device__ __forceinline__ float rmsnorm_modulate(float x, float rho, float w, const float* shift, const float* scale,
                                                  int d) {
    const float y = x * rho * w;
    return shift == nullptr ? y : y * (1.0f + scale[d]) + shift[d];
}

// rmsnorm_modulate of the 4 consecutive elements 4·c .. 4·c+3 (v and w their values).
__device__ __forceinline__ float4 rmsnorm_modulate4(float4 v, float rho, float4 w, const float* shift,
                                                    const float* scale, int c) {
    const int d = 4 * c;
    return make_float4(rmsnorm_modulate(v.x, rho, w.x, shift, scale, d),
                       rmsnorm_modulate(v.y, rho, w.y, shift, scale, d + 1),
                       rmsnorm_modulate(v.z, rho, w.z, shift, scale, d + 2),
                       rmsnorm_modulate(v.w, rho, w.w, shift, scale, d + 3));
}

// The output element type: fp32, or bf16 (the fp32 value rounded once, for a bf16 GEMM operand). store4 writes 4
// consecutive outputs at element 4·c: one float4 (16 bytes) or 4 bf16 (8 bytes, uint2).
__device__ __forceinline__ void rmsnorm_store4(float* out, int64_t c, float4 o) {
    reinterpret_cast<float4*>(out)[c] = o;
}
__device__ __forceinline__ void rmsnorm_store4(uint16_t* out, int64_t c, float4 o) {
    reinterpret_cast<uint2*>(out)[c] = make_uint2(bf16_pack2(o.x, o.y), bf16_pack2(o.z, o.w));
}
__device__ __forceinline__ void rmsnorm_store1(float* out, int64_t i, float v) { out[i] = v; }
__device__ __forceinline__ void rmsnorm_store1(uint16_t* out, int64_t i, float v) { out[i] = bf16_from_float(v); }
