// Gated residual fused with the next RMSNorm-modulate (facm-spec.md §3.2 block): for each row of h [B, T, D] (f32,
// the residual stream)
//   h ← h + gate_b ⊙ a                                   (gate = chunk gateOff/D of mod [B, K·D], as adaln.cu)
//   out = h·ρ ⊙ w ⊙ (1 + scale_b) + shift_b,  ρ = (mean_D(h²) + eps)^(−½)   (shift/scale from mod2, as rmsnorm.cu)
// in one pass: the row is read once (h, a), h written once, out written once, instead of gated_residual_fwd (read h
// and a, write h) followed by rmsnorm_fwd (read h again, write out). XL/1 b256 with a and out bf16: 12 bytes per
// element instead of 18 (75.5 M elements: 0.91 GB instead of 1.36 GB per fused pair, 56 pairs per forward).
//
// Same per-element operations in the same order as gated_residual_fwd*_vec4 then rmsnorm_fwd_vec4*: the update is
// one fma, Σh² runs over the same lanes and float4 order, the same butterfly, the same ρ formula and the same
// (h·ρ)·w·(1 + scale) + shift — so the fused result is bit-identical to the two GPU kernels in sequence (the gpu test
// checks it). One warp per row, the row kept in registers (RESNORM_CACHE float4 per lane, D ≤ 2048); rows
// grid-strided over the warps. mod2 == nullptr: plain RMSNorm of the updated h. Launcher:
// facm.backend.cuda.CudaResidualNorm (D % 4 == 0, D ≤ 2048, h, mod, mod2, w 16-byte aligned, a and out 16 (fp32) or 8
// (bf16) bytes aligned, out apart from h and a; otherwise it runs the two ops).
#include "rmsnorm_common.cuh"

#define RESNORM_CACHE 16
#define RESNORM_CACHE_SMALL 9
// Blocks per SM the _c9 kernels are compiled for: 4 (64 registers, no spills) measured 9 % faster than 3 on an H200
// at XL/1 b256 (tools/perf-harness: 294 vs 324 µs, same bits); the harness can build other values.
#ifndef RESNORM_C9_MIN_BLOCKS
#define RESNORM_C9_MIN_BLOCKS 4
#endif

__device__ __forceinline__ float4 resnorm_load4(const float* a, int c) { return reinterpret_cast<const float4*>(a)[c]; }
__device__ __forceinline__ float4 resnorm_load4(const uint16_t* a, int c) {
    const uint2 packed = reinterpret_cast<const uint2*>(a)[c];
    const float2 lo = bf16_unpack2(packed.x), hi = bf16_unpack2(packed.y);
    return make_float4(lo.x, lo.y, hi.x, hi.y);
}
// A = float or uint16_t (bf16 branch output, widened exactly); OUT = float or uint16_t (bf16, rounded once).
// a may be h (each element is read before the same lane writes it), so h and a are not __restrict__.
template <int CACHE, typename A, typename OUT>
__device__ __forceinline__ void resnorm_fwd_body(
        float* h, const A* a, const float* __restrict__ mod, const float* __restrict__ w,
        const float* __restrict__ mod2, OUT* __restrict__ out, float* __restrict__ rstd, int64_t rows, int D,
        int tokens, int64_t modStride, int gateOff, int64_t mod2Stride, int shiftOff, int scaleOff, float eps) {
    const int lane = threadIdx.x & 31;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    const int D4 = D >> 2;
    const float4* w4 = reinterpret_cast<const float4*>(w);
    for (int64_t row = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); row < rows; row += warpsInGrid) {
        const int64_t b = row / tokens;
        float4* hr = reinterpret_cast<float4*>(h + row * D);
        const A* ar = a + row * D;
        const float4* gr = reinterpret_cast<const float4*>(mod + b * modStride + gateOff);
        // Three passes over the row's registers so that every load is issued before the first store: a may be h,
        // so the compiler may not move a load of a past a store to h; with the stores last, the lane has all its
        // loads of h, a and the gate in flight at once (the per-element operations and the Σh² order are unchanged).
        float4 v[CACHE];
#pragma unroll
        for (int i = 0; i < CACHE; i++) {
            const int c = lane + 32 * i;
            v[i] = c < D4 ? hr[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int i = 0; i < CACHE; i++) {
            const int c = lane + 32 * i;
            if (c < D4) {
                const float4 av = resnorm_load4(ar, c);
                const float4 gv = gr[c];
                v[i].x = __fmaf_rn(gv.x, av.x, v[i].x);
                v[i].y = __fmaf_rn(gv.y, av.y, v[i].y);
                v[i].z = __fmaf_rn(gv.z, av.z, v[i].z);
                v[i].w = __fmaf_rn(gv.w, av.w, v[i].w);
            }
        }
        float ss = 0.0f;
#pragma unroll
        for (int i = 0; i < CACHE; i++) {
            const int c = lane + 32 * i;
            if (c < D4) hr[c] = v[i];
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
        if (mod2 != nullptr) {
            const float* mb = mod2 + b * mod2Stride;
            shift = mb + shiftOff;
            scale = mb + scaleOff;
        }
        OUT* orow = out + row * D;
#pragma unroll
        for (int i = 0; i < CACHE; i++) {
            const int c = lane + 32 * i;
            if (c < D4) {
                rmsnorm_store4(orow, c, rmsnorm_modulate4(v[i], rho, w4[c], shift, scale, c));
            }
        }
    }
}

// gated_residual_rmsnorm_fwd_<a dtype>_<out dtype>: blocks of 256 threads (8 rows at a time). ptxas (nvcc 13.0,
// -Xptxas -v, sm_90): up to 228 registers, no spills (the row cache is 64 of them). The _c9 forms keep 9
// float4 per lane (D ≤ 1152, LightningDiT-XL's width: 9 × 32 × 4 exactly) in 64 registers, 4 blocks per SM; the
// results are the same bits (the larger cache only adds fma(0, 0, Σ) = Σ for the lanes' missing chunks).
#define RESNORM_FWD(NAME, CACHE, MIN_BLOCKS, A, OUT)                                                               \
    extern "C" __global__ void __launch_bounds__(256, MIN_BLOCKS) NAME(                                            \
            float* h, const A* a, const float* __restrict__ mod, const float* __restrict__ w,                      \
            const float* __restrict__ mod2, OUT* __restrict__ out, float* __restrict__ rstd, int64_t rows, int D,  \
            int tokens, int64_t modStride, int gateOff, int64_t mod2Stride, int shiftOff, int scaleOff,            \
            float eps) {                                                                                           \
        resnorm_fwd_body<CACHE, A, OUT>(h, a, mod, w, mod2, out, rstd, rows, D, tokens, modStride, gateOff,        \
                                        mod2Stride, shiftOff, scaleOff, eps);                                      \
    }
RESNORM_FWD(gated_residual_rmsnorm_fwd_f32_f32, RESNORM_CACHE, 1, float, float)
RESNORM_FWD(gated_residual_rmsnorm_fwd_f32_bf16, RESNORM_CACHE, 1, float, uint16_t)
RESNORM_FWD(gated_residual_rmsnorm_fwd_bf16_f32, RESNORM_CACHE, 1, uint16_t, float)
RESNORM_FWD(gated_residual_rmsnorm_fwd_bf16_bf16, RESNORM_CACHE, 1, uint16_t, uint16_t)
RESNORM_FWD(gated_residual_rmsnorm_fwd_f32_f32_c9, RESNORM_CACHE_SMALL, RESNORM_C9_MIN_BLOCKS, float, float)
RESNORM_FWD(gated_residual_rmsnorm_fwd_f32_bf16_c9, RESNORM_CACHE_SMALL, RESNORM_C9_MIN_BLOCKS, float, uint16_t)
RESNORM_FWD(gated_residual_rmsnorm_fwd_bf16_f32_c9, RESNORM_CACHE_SMALL, RESNORM_C9_MIN_BLOCKS, uint16_t, float)
RESNORM_FWD(gated_residual_rmsnorm_fwd_bf16_bf16_c9, RESNORM_CACHE_SMALL, RESNORM_C9_MIN_BLOCKS, uint16_t, uint16_t)
