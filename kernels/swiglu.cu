// SwiGLU of the MLP (facm-spec.md §3.2): gu [rows, 2F] holds g (first F) and u (last F) of each row;
// out [rows, F] = SiLU(g) ⊙ u with SiLU(g) = g·σ(g) = g / (1 + e^−g). fp32 with the accurate expf (no fast math);
// the CPU reference evaluates it in fp64 and rounds, so the two differ by a few ulp.
//
// Memory bound: rows grid-strided over blocks, threads striding over F. Launchers: facm.backend.cuda.CudaNetworkOps.
#include "common.cuh"

// g / (1 + e^−g): for g → −∞ e^−g overflows to inf and the quotient is −0, the correctly rounded limit of a value
// below the smallest denormal; for g → +∞ it is g. No branch needed.
__device__ __forceinline__ float swiglu_silu(float g) { return g / (1.0f + expf(-g)); }

// F % 4 == 0 and gu, out 16-byte aligned (checked by the launcher, else swiglu_fwd).
extern "C" __global__ void swiglu_fwd_vec4(const float* __restrict__ gu, float* __restrict__ out, int64_t rows,
                                           int F) {
    const int F4 = F >> 2;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float4* g4 = reinterpret_cast<const float4*>(gu + row * 2 * F);
        const float4* u4 = g4 + F4;
        float4* o4 = reinterpret_cast<float4*>(out + row * F);
        for (int c = threadIdx.x; c < F4; c += blockDim.x) {
            const float4 g = g4[c];
            const float4 u = u4[c];
            o4[c] = make_float4(swiglu_silu(g.x) * u.x, swiglu_silu(g.y) * u.y, swiglu_silu(g.z) * u.z,
                                swiglu_silu(g.w) * u.w);
        }
    }
}

// Any F, any alignment.
extern "C" __global__ void swiglu_fwd(const float* __restrict__ gu, float* __restrict__ out, int64_t rows, int F) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* g = gu + row * 2 * F;
        const float* u = g + F;
        float* o = out + row * F;
        for (int f = threadIdx.x; f < F; f += blockDim.x) o[f] = swiglu_silu(g[f]) * u[f];
    }
}
