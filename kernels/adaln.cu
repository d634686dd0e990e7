// Gated residual of the adaLN blocks (facm-spec.md §3.2 block): h [B,T,D] += gate_b ⊙ a, with gate_b read in place
// from the block's modulation tensor mod [B, K·D] (chunk gateOff/D of batch row b = row / tokens).
// The update is one fused multiply-add, rounded once, like the CPU reference (which rounds the float64 value of
// h + g·a, exact up to a rare double rounding), so the two agree bit for bit in practice. a may be h (each element
// is read before the same thread writes it), so neither pointer is __restrict__.
//
// Memory bound: rows are grid-strided over blocks, the threads of a block stride over one row's D elements, so no
// per-element 64-bit division is needed. Launchers: facm.backend.cuda.CudaNetworkOps (forward), CudaNormBackward
// (backward).
#include "common.cuh"
#include "bf16_pack.cuh"

__device__ __forceinline__ float gated_add(float h, float g, float a) { return __fmaf_rn(g, a, h); }

// D % 4 == 0 and h, a, mod 16-byte aligned (checked by the launcher, else gated_residual_fwd).
extern "C" __global__ void gated_residual_fwd_vec4(float* h, const float* a,
                                                   const float* __restrict__ mod, int64_t rows, int D, int tokens,
                                                   int64_t modStride, int gateOff) {
    const int D4 = D >> 2;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        float4* hr = reinterpret_cast<float4*>(h + row * D);
        const float4* ar = reinterpret_cast<const float4*>(a + row * D);
        const float4* gr = reinterpret_cast<const float4*>(mod + (row / tokens) * modStride + gateOff);
        for (int c = threadIdx.x; c < D4; c += blockDim.x) {
            float4 hv = hr[c];
            const float4 av = ar[c];
            const float4 gv = gr[c];
            hv.x = gated_add(hv.x, gv.x, av.x);
            hv.y = gated_add(hv.y, gv.y, av.y);
            hv.z = gated_add(hv.z, gv.z, av.z);
            hv.w = gated_add(hv.w, gv.w, av.w);
            hr[c] = hv;
        }
    }
}

// Any D, any alignment.
extern "C" __global__ void gated_residual_fwd(float* h, const float* a,
                                              const float* __restrict__ mod, int64_t rows, int D, int tokens,
                                              int64_t modStride, int gateOff) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        float* hr = h + row * D;
        const float* ar = a + row * D;
        const float* gr = mod + (row / tokens) * modStride + gateOff;
        for (int d = threadIdx.x; d < D; d += blockDim.x) hr[d] = gated_add(hr[d], gr[d], ar[d]);
    }
}

// The same update with a bf16 branch output a (the bf16 GEMM's result, widened exactly): h stays fp32. Bytes per
// element: h read and written (8) + a (2) + the gate row (cached) = 10 instead of 12 (XL/1 b256: 755 MB, ~0.24 ms at
// 3.2 TB/s). _vec4: D % 4 == 0, h and mod 16-byte aligned, a 8-byte aligned (checked by the launcher).
extern "C" __global__ void gated_residual_fwd_bf16a_vec4(float* __restrict__ h, const uint16_t* __restrict__ a,
                                                        const float* __restrict__ mod, int64_t rows, int D,
                                                        int tokens, int64_t modStride, int gateOff) {
    const int D4 = D >> 2;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        float4* hr = reinterpret_cast<float4*>(h + row * D);
        const uint2* ar = reinterpret_cast<const uint2*>(a + row * D);
        const float4* gr = reinterpret_cast<const float4*>(mod + (row / tokens) * modStride + gateOff);
        for (int c = threadIdx.x; c < D4; c += blockDim.x) {
            float4 hv = hr[c];
            const uint2 packed = ar[c];
            const float2 a01 = bf16_unpack2(packed.x);
            const float2 a23 = bf16_unpack2(packed.y);
            const float4 gv = gr[c];
            hv.x = gated_add(hv.x, gv.x, a01.x);
            hv.y = gated_add(hv.y, gv.y, a01.y);
            hv.z = gated_add(hv.z, gv.z, a23.x);
            hv.w = gated_add(hv.w, gv.w, a23.y);
            hr[c] = hv;
        }
    }
}

// Any D, any alignment (bf16 a).
extern "C" __global__ void gated_residual_fwd_bf16a(float* __restrict__ h, const uint16_t* __restrict__ a,
                                                   const float* __restrict__ mod, int64_t rows, int D, int tokens,
                                                   int64_t modStride, int gateOff) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        float* hr = h + row * D;
        const uint16_t* ar = a + row * D;
        const float* gr = mod + (row / tokens) * modStride + gateOff;
        for (int d = threadIdx.x; d < D; d += blockDim.x) hr[d] = gated_add(hr[d], gr[d], bf16_to_float(ar[d]));
    }
}

// ------------------------------------------------------------------------------------------- backward
// h += gate ⊙ a:  gradA = gate_b ⊙ gradH (overwritten; gated_residual_bwd), gradMod[gate] += Σ_tokens a ⊙ gradH
// (gated_residual_bwd_partials, then partials_sum_accumulate of kernels/rmsnorm.cu adds the segments in order).
// gradH itself passes through unchanged, so there is no kernel for it.

// gradA may alias gradH (each element is read before the same thread writes it). _vec4: D % 4 == 0 and gradH, mod,
// gradA 16-byte aligned (checked by the launcher). Launch like the forward: rows over blocks, threads over D.
extern "C" __global__ void gated_residual_bwd_vec4(const float* gradH, const float* __restrict__ mod, float* gradA,
                                                   int64_t rows, int D, int tokens, int64_t modStride, int gateOff) {
    const int D4 = D >> 2;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float4* gh = reinterpret_cast<const float4*>(gradH + row * D);
        const float4* gr = reinterpret_cast<const float4*>(mod + (row / tokens) * modStride + gateOff);
        float4* ga = reinterpret_cast<float4*>(gradA + row * D);
        for (int c = threadIdx.x; c < D4; c += blockDim.x) {
            const float4 g = gr[c];
            const float4 v = gh[c];
            ga[c] = make_float4(g.x * v.x, g.y * v.y, g.z * v.z, g.w * v.w);
        }
    }
}

extern "C" __global__ void gated_residual_bwd(const float* gradH, const float* __restrict__ mod, float* gradA,
                                              int64_t rows, int D, int tokens, int64_t modStride, int gateOff) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* gh = gradH + row * D;
        const float* gr = mod + (row / tokens) * modStride + gateOff;
        float* ga = gradA + row * D;
        for (int d = threadIdx.x; d < D; d += blockDim.x) ga[d] = gr[d] * gh[d];
    }
}

#define GATED_PART_ROWS 8

// part[seg, d] = Σ_{rows r of segment seg} a[r, d]·gradH[r, d]. Segments as in rmsnorm_bwd_partials: runs of segLen
// rows inside one batch element, segsPerBatch per element. Grid (ceil(D / 32), min(segments, 65535)), block
// (32, GATED_PART_ROWS); thread row ty adds rows ty, ty + 8, ... in order, then thread row 0 adds the 8 in order.
extern "C" __global__ void __launch_bounds__(32 * GATED_PART_ROWS) gated_residual_bwd_partials(
        const float* __restrict__ a, const float* __restrict__ gradH, float* __restrict__ part, int64_t rows, int D,
        int tokens, int segLen, int segsPerBatch, int segments) {
    __shared__ float sums[GATED_PART_ROWS][33];
    const int d = blockIdx.x * 32 + threadIdx.x;
    for (int seg = blockIdx.y; seg < segments; seg += gridDim.y) {
        const int64_t b = seg / segsPerBatch;
        const int64_t first = b * tokens + (int64_t)(seg % segsPerBatch) * segLen;
        const int64_t end = min(first + segLen, min((b + 1) * tokens, rows));
        float s = 0.0f;
        if (d < D) {
            for (int64_t r = first + threadIdx.y; r < end; r += GATED_PART_ROWS) {
                s = fmaf(a[r * D + d], gradH[r * D + d], s);
            }
        }
        sums[threadIdx.y][threadIdx.x] = s;
        __syncthreads();
        if (threadIdx.y == 0 && d < D) {
            s = sums[0][threadIdx.x];
            for (int t = 1; t < GATED_PART_ROWS; t++) s += sums[t][threadIdx.x];
            part[(int64_t)seg * D + d] = s;
        }
        __syncthreads();
    }
}

// ------------------------------------------------------------------------------------------- forward mode (JVP)
// h += gate ⊙ a exactly as gated_residual_fwd (one fma), and hDot += gateDot ⊙ a + gate ⊙ aDot, gate/gateDot read in
// place from mod/modDot (modDot or aDot nullptr = zero tangent). a may be h and aDot may be hDot (each element is read
// before the same thread writes it). Any D and alignment; launch like gated_residual_fwd.
extern "C" __global__ void gated_residual_jvp(float* h, float* hDot, const float* a, const float* aDot,
                                              const float* __restrict__ mod, const float* __restrict__ modDot,
                                              int64_t rows, int D, int tokens, int64_t modStride, int gateOff) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        float* hr = h + row * D;
        float* hd = hDot + row * D;
        const float* ar = a + row * D;
        const float* ad = aDot != nullptr ? aDot + row * D : nullptr;
        const int64_t modRow = (row / tokens) * modStride + gateOff;
        const float* gr = mod + modRow;
        const float* gd = modDot != nullptr ? modDot + modRow : nullptr;
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
            const float av = ar[d];
            const float g = gr[d];
            float t = hd[d];
            if (gd != nullptr) t = fmaf(gd[d], av, t);
            if (ad != nullptr) t = fmaf(g, ad[d], t);
            hd[d] = t;
            hr[d] = gated_add(hr[d], g, av);
        }
    }
}
