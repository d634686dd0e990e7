// SwiGLU of the MLP (facm-spec.md §3.2): gu [rows, 2F] holds g (first F) and u (last F) of each row;
// out [rows, F] = SiLU(g) ⊙ u with SiLU(g) = g·σ(g) = g / (1 + e^−g). fp32 with the accurate expf (no fast math);
// the CPU reference evaluates it in fp64 and rounds, so the two differ by a few ulp.
//
// Memory bound: rows grid-strided over blocks, threads striding over F. Launchers: facm.backend.cuda.CudaNetworkOps
// (forward), CudaLayerBackward (backward of SwiGLU and of the plain SiLU of the adaLN conditioning, at the end).
#include "common.cuh"
#include "bf16_pack.cuh"

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

// bf16 gu (the bf16 w12 GEMM's output) → bf16 out (the w3 GEMM's operand) or fp32 out: SiLU(g)·u in fp32 from the
// exactly widened inputs, rounded once on store. Bytes per output element: 4 read + 2 (or 4) written, a third of the
// fp32 kernel's 12 (XL/1 b256: F = 3072, 201 M outputs, 1.2 GB, ~0.38 ms at 3.2 TB/s).
__device__ __forceinline__ void swiglu_store8(uint16_t* out, int64_t c, const float* o) {
    reinterpret_cast<uint4*>(out)[c] = make_uint4(bf16_pack2(o[0], o[1]), bf16_pack2(o[2], o[3]),
                                                  bf16_pack2(o[4], o[5]), bf16_pack2(o[6], o[7]));
}
__device__ __forceinline__ void swiglu_store8(float* out, int64_t c, const float* o) {
    float4* o4 = reinterpret_cast<float4*>(out) + 2 * c;
    o4[0] = make_float4(o[0], o[1], o[2], o[3]);
    o4[1] = make_float4(o[4], o[5], o[6], o[7]);
}
__device__ __forceinline__ void swiglu_store1(uint16_t* out, int64_t i, float v) { out[i] = bf16_from_float(v); }
__device__ __forceinline__ void swiglu_store1(float* out, int64_t i, float v) { out[i] = v; }

// F % 8 == 0, gu and out 16-byte aligned (checked by the launcher): 8 bf16 (16 bytes) per load of g and of u.
template <typename OUT>
__device__ __forceinline__ void swiglu_fwd_bf16_vec8_body(const uint16_t* __restrict__ gu, OUT* __restrict__ out,
                                                          int64_t rows, int F) {
    const int F8 = F >> 3;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const uint4* g8 = reinterpret_cast<const uint4*>(gu + row * 2 * F);
        const uint4* u8 = g8 + F8;
        OUT* o = out + row * F;
        for (int c = threadIdx.x; c < F8; c += blockDim.x) {
            const uint4 gw = g8[c];
            const uint4 uw = u8[c];
            const uint32_t gs[4] = {gw.x, gw.y, gw.z, gw.w};
            const uint32_t us[4] = {uw.x, uw.y, uw.z, uw.w};
            float r[8];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float2 g = bf16_unpack2(gs[j]);
                const float2 u = bf16_unpack2(us[j]);
                r[2 * j] = swiglu_silu(g.x) * u.x;
                r[2 * j + 1] = swiglu_silu(g.y) * u.y;
            }
            swiglu_store8(o, c, r);
        }
    }
}

// Any F, any alignment.
template <typename OUT>
__device__ __forceinline__ void swiglu_fwd_bf16_body(const uint16_t* __restrict__ gu, OUT* __restrict__ out,
                                                     int64_t rows, int F) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const uint16_t* g = gu + row * 2 * F;
        const uint16_t* u = g + F;
        OUT* o = out + row * F;
        for (int f = threadIdx.x; f < F; f += blockDim.x) {
            swiglu_store1(o, f, swiglu_silu(bf16_to_float(g[f])) * bf16_to_float(u[f]));
        }
    }
}

#define SWIGLU_FWD_BF16(NAME, BODY, OUT)                                                                           \
    extern "C" __global__ void NAME(const uint16_t* __restrict__ gu, OUT* __restrict__ out, int64_t rows, int F) { \
        BODY<OUT>(gu, out, rows, F);                                                                               \
    }
SWIGLU_FWD_BF16(swiglu_fwd_bf16_vec8, swiglu_fwd_bf16_vec8_body, uint16_t)
SWIGLU_FWD_BF16(swiglu_fwd_bf16, swiglu_fwd_bf16_body, uint16_t)
SWIGLU_FWD_BF16(swiglu_fwd_bf16_f32out_vec8, swiglu_fwd_bf16_vec8_body, float)
SWIGLU_FWD_BF16(swiglu_fwd_bf16_f32out, swiglu_fwd_bf16_body, float)

// fp32 gu (an fp32 w12 output that a backward still reads) → bf16 out (the w3 GEMM's operand in a bf16 training
// pass): the fp32 kernels' values, each rounded once, so the result equals swiglu_fwd followed by a cast, to the bit.
// _vec4: F % 4 == 0, gu 16-byte and out 8-byte aligned (checked by the launcher); 4 fp32 of g and of u per step.
extern "C" __global__ void swiglu_fwd_vec4_bf16out(const float* __restrict__ gu, uint16_t* __restrict__ out,
                                                   int64_t rows, int F) {
    const int F4 = F >> 2;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float4* g4 = reinterpret_cast<const float4*>(gu + row * 2 * F);
        const float4* u4 = g4 + F4;
        uint2* o4 = reinterpret_cast<uint2*>(out + row * F);
        for (int c = threadIdx.x; c < F4; c += blockDim.x) {
            const float4 g = g4[c];
            const float4 u = u4[c];
            o4[c] = make_uint2(bf16_pack2(swiglu_silu(g.x) * u.x, swiglu_silu(g.y) * u.y),
                               bf16_pack2(swiglu_silu(g.z) * u.z, swiglu_silu(g.w) * u.w));
        }
    }
}

// Any F, any alignment.
extern "C" __global__ void swiglu_fwd_bf16out(const float* __restrict__ gu, uint16_t* __restrict__ out, int64_t rows,
                                              int F) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* g = gu + row * 2 * F;
        const float* u = g + F;
        uint16_t* o = out + row * F;
        for (int f = threadIdx.x; f < F; f += blockDim.x) o[f] = bf16_from_float(swiglu_silu(g[f]) * u[f]);
    }
}

// ------------------------------------------------------------------------------------------- backward
// SiLU'(g) = σ(g)·(1 + g·(1 − σ(g))). gradGu = [gradOut·u·SiLU'(g), gradOut·SiLU(g)] (overwritten).

// σ(g) without overflow in either direction: for g < 0 it is e^g / (1 + e^g), which keeps the tiny values that
// 1 / (1 + inf) would flush to zero (the same formula as sigmoid in kernels/elementwise.cu).
__device__ __forceinline__ float silu_sigmoid(float g) {
    if (g >= 0.0f) return 1.0f / (1.0f + expf(-g));
    const float e = expf(g);
    return e / (1.0f + e);
}

__device__ __forceinline__ float silu_derivative(float g) {
    const float sg = silu_sigmoid(g);
    return sg * fmaf(g, 1.0f - sg, 1.0f);
}

// One element pair: writes d/dg and d/du of SiLU(g)·u times go.
__device__ __forceinline__ void swiglu_pair_bwd(float g, float u, float go, float* dg, float* du) {
    *dg = go * u * silu_derivative(g);
    *du = go * swiglu_silu(g);
}

// F % 4 == 0 and gu, gradOut, gradGu 16-byte aligned (checked by the launcher, else swiglu_bwd). Launch like the
// forward: rows over blocks, threads over F.
extern "C" __global__ void swiglu_bwd_vec4(const float* __restrict__ gu, const float* __restrict__ gradOut,
                                           float* __restrict__ gradGu, int64_t rows, int F) {
    const int F4 = F >> 2;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float4* g4 = reinterpret_cast<const float4*>(gu + row * 2 * F);
        const float4* u4 = g4 + F4;
        const float4* o4 = reinterpret_cast<const float4*>(gradOut + row * F);
        float4* dg4 = reinterpret_cast<float4*>(gradGu + row * 2 * F);
        float4* du4 = dg4 + F4;
        for (int c = threadIdx.x; c < F4; c += blockDim.x) {
            const float4 g = g4[c];
            const float4 u = u4[c];
            const float4 go = o4[c];
            float4 dg, du;
            swiglu_pair_bwd(g.x, u.x, go.x, &dg.x, &du.x);
            swiglu_pair_bwd(g.y, u.y, go.y, &dg.y, &du.y);
            swiglu_pair_bwd(g.z, u.z, go.z, &dg.z, &du.z);
            swiglu_pair_bwd(g.w, u.w, go.w, &dg.w, &du.w);
            dg4[c] = dg;
            du4[c] = du;
        }
    }
}

// Any F, any alignment.
extern "C" __global__ void swiglu_bwd(const float* __restrict__ gu, const float* __restrict__ gradOut,
                                      float* __restrict__ gradGu, int64_t rows, int F) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* g = gu + row * 2 * F;
        const float* u = g + F;
        const float* go = gradOut + row * F;
        float* dg = gradGu + row * 2 * F;
        float* du = dg + F;
        for (int f = threadIdx.x; f < F; f += blockDim.x) swiglu_pair_bwd(g[f], u[f], go[f], &dg[f], &du[f]);
    }
}

// gradIn = gradOut·SiLU'(x) over n elements, grid-stride. gradIn may alias gradOut or x (each element is read before
// the same thread writes it), so no pointer is __restrict__.
extern "C" __global__ void silu_bwd(const float* x, const float* gradOut, float* gradIn, int64_t n) {
    GRID_STRIDE_LOOP(i, n) { gradIn[i] = gradOut[i] * silu_derivative(x[i]); }
}

// ------------------------------------------------------------------------------------------- forward mode (JVP)
// out = SiLU(g) ⊙ u exactly as swiglu_fwd; outDot = SiLU'(g)·ġ·u + SiLU(g)·u̇ (guDot [rows, 2F], nullptr = zero).
// Any F and alignment; launch like swiglu_fwd (rows over blocks, threads over F). OUT = float, or uint16_t (bf16,
// swiglu_jvp_bf16out): out and outDot are the fp32 values rounded once, the operands of the w3 GEMM and its tangent.
template <typename OUT>
__device__ __forceinline__ void swiglu_jvp_body(const float* __restrict__ gu, const float* __restrict__ guDot,
                                                OUT* __restrict__ out, OUT* __restrict__ outDot, int64_t rows, int F) {
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* g = gu + row * 2 * F;
        const float* u = g + F;
        const float* gd = guDot != nullptr ? guDot + row * 2 * F : nullptr;
        OUT* o = out + row * F;
        OUT* od = outDot + row * F;
        for (int f = threadIdx.x; f < F; f += blockDim.x) {
            const float gv = g[f];
            const float uv = u[f];
            const float silu = swiglu_silu(gv);
            swiglu_store1(o, f, silu * uv);
            if (gd == nullptr) {
                swiglu_store1(od, f, 0.0f);
            } else {
                const float sg = silu_sigmoid(gv);
                const float dsilu = sg * (1.0f + gv * (1.0f - sg));
                swiglu_store1(od, f, fmaf(dsilu * gd[f], uv, silu * gd[F + f]));
            }
        }
    }
}

#define SWIGLU_JVP(NAME, OUT)                                                                                     \
    extern "C" __global__ void NAME(const float* __restrict__ gu, const float* __restrict__ guDot,                \
                                    OUT* __restrict__ out, OUT* __restrict__ outDot, int64_t rows, int F) {       \
        swiglu_jvp_body<OUT>(gu, guDot, out, outDot, rows, F);                                                    \
    }
SWIGLU_JVP(swiglu_jvp, float)
SWIGLU_JVP(swiglu_jvp_bf16out, uint16_t)

// _vec4: F % 4 == 0, gu and guDot 16-byte aligned, out and outDot 16 (fp32) or 8 (bf16) bytes aligned (checked by the
// launcher): 4 fp32 of g, u, ġ, u̇ per load, the same per-element formulas (so the same bits as swiglu_jvp). Why: the
// scalar kernel ran at ~62 % of its memory floor at XL/1 b32 (193 µs for 503 MB).
__device__ __forceinline__ void swiglu_store4(float* out, int64_t c, const float* o) {
    reinterpret_cast<float4*>(out)[c] = make_float4(o[0], o[1], o[2], o[3]);
}
__device__ __forceinline__ void swiglu_store4(uint16_t* out, int64_t c, const float* o) {
    reinterpret_cast<uint2*>(out)[c] = make_uint2(bf16_pack2(o[0], o[1]), bf16_pack2(o[2], o[3]));
}
template <typename OUT>
__device__ __forceinline__ void swiglu_jvp_vec4_body(const float* __restrict__ gu, const float* __restrict__ guDot,
                                                     OUT* __restrict__ out, OUT* __restrict__ outDot, int64_t rows,
                                                     int F) {
    const int F4 = F >> 2;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float4* g4 = reinterpret_cast<const float4*>(gu + row * 2 * F);
        const float4* gd4 = guDot != nullptr ? reinterpret_cast<const float4*>(guDot + row * 2 * F) : nullptr;
        OUT* o = out + row * F;
        OUT* od = outDot + row * F;
        for (int c = threadIdx.x; c < F4; c += blockDim.x) {
            const float4 gq = g4[c];
            const float4 uq = g4[F4 + c];
            const float4 gdq = gd4 != nullptr ? gd4[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            const float4 udq = gd4 != nullptr ? gd4[F4 + c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            const float gs[4] = {gq.x, gq.y, gq.z, gq.w}, us[4] = {uq.x, uq.y, uq.z, uq.w};
            const float gds[4] = {gdq.x, gdq.y, gdq.z, gdq.w}, uds[4] = {udq.x, udq.y, udq.z, udq.w};
            float r[4], rd[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float silu = swiglu_silu(gs[j]);
                r[j] = silu * us[j];
                if (gd4 == nullptr) {
                    rd[j] = 0.0f;
                } else {
                    const float sg = silu_sigmoid(gs[j]);
                    const float dsilu = sg * (1.0f + gs[j] * (1.0f - sg));
                    rd[j] = fmaf(dsilu * gds[j], us[j], silu * uds[j]);
                }
            }
            swiglu_store4(o, c, r);
            swiglu_store4(od, c, rd);
        }
    }
}
#define SWIGLU_JVP_VEC4(NAME, OUT)                                                                                \
    extern "C" __global__ void NAME(const float* __restrict__ gu, const float* __restrict__ guDot,                \
                                    OUT* __restrict__ out, OUT* __restrict__ outDot, int64_t rows, int F) {       \
        swiglu_jvp_vec4_body<OUT>(gu, guDot, out, outDot, rows, F);                                               \
    }
SWIGLU_JVP_VEC4(swiglu_jvp_vec4, float)
SWIGLU_JVP_VEC4(swiglu_jvp_vec4_bf16out, uint16_t)
