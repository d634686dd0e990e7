// Gated residual of the adaLN blocks (facm-spec.md §3.2 block): h [B,T,D] += gate_b ⊙ a, with gate_b read in place
// from the block's modulation tensor mod [B, K·D] (chunk gateOff/D of batch row b = row / tokens).
// The update is one fused multiply-add, rounded once, like the CPU reference (which rounds the float64 value of
// h + g·a, exact up to a rare double rounding), so the two agree bit for bit in practice. a may be h (each element
// is read before the same thread writes it), so neither pointer is __restrict__.
//
// Memory bound: rows are grid-strided over blocks, the threads of a block stride over one row's D elements, so no
// per-element 64-bit division is needed. Launchers: facm.backend.cuda.CudaNetworkOps.
#include "common.cuh"

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
