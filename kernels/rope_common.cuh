// Shared by kernels/rope.cu (forward) and kernels/rope_grad.cu (backward, JVP): the channel-pair and 8-channel
// accessors and the one order of the qk-norm Σx² (rope_sumsq_chunked) every kernel uses.
#pragma once
#include "common.cuh"
#include "bf16_pack.cuh"

// Pairs per lane kept in registers: dh ≤ 64·ROPE_MAX_PAIRS_PER_LANE (= 256; LightningDiT uses 64, 72 and 128).
#define ROPE_MAX_PAIRS_PER_LANE 4

// One head vector of q or k: load, normalize, rotate, store. Called by all 32 lanes of the warp (warp_sum).
// Channel pairs of a head row as float2: fp32 rows hold them as float2 (8 bytes), bf16 rows as one packed 32-bit
// word. Every row starts at an even element, so both are aligned.
__device__ __forceinline__ float2 rope_load_pair(const float* row, int p) {
    return reinterpret_cast<const float2*>(row)[p];
}
__device__ __forceinline__ float2 rope_load_pair(const uint16_t* row, int p) {
    return bf16_unpack2(reinterpret_cast<const uint32_t*>(row)[p]);
}
__device__ __forceinline__ void rope_store_pair(float* row, int p, float2 v) {
    reinterpret_cast<float2*>(row)[p] = v;
}
__device__ __forceinline__ void rope_store_pair(uint16_t* row, int p, float2 v) {
    reinterpret_cast<uint32_t*>(row)[p] = bf16_pack2(v.x, v.y);
}

// Σx² of a head vector in chunk order, the one order every qk-norm kernel here uses (the token-block forward, the
// warp-per-head forward and the JVP's primal), so that they give ρ, and hence q and k, with the same bits (the tests
// compare the JVP's primal with the forward at 0 ulp): chunk c = elements 8c .. 8c+7 (the last one may be shorter),
// its partial an fma chain from 0 over its elements in order, Σ = partial_0 + partial_1 + … added in chunk order.
// Called by all 32 lanes of a warp (dh ≤ 256: at most 32 chunks, lane c computes chunk c); every lane gets Σ.
#define ROPE_CHUNK 8
__device__ __forceinline__ float rope_load1(const float* row, int d) { return row[d]; }
__device__ __forceinline__ float rope_load1(const uint16_t* row, int d) {
    return __uint_as_float((uint32_t)row[d] << 16);
}
template <typename IN>
__device__ __forceinline__ float rope_sumsq_chunked(const IN* __restrict__ src, int dh, int lane) {
    const int chunks = (dh + ROPE_CHUNK - 1) / ROPE_CHUNK;
    float part = 0.0f;
    if (lane < chunks) {
        const int end = min(dh, (lane + 1) * ROPE_CHUNK);
        for (int d = lane * ROPE_CHUNK; d < end; d++) {
            const float x = rope_load1(src, d);
            part = fmaf(x, x, part);
        }
    }
    float ss = 0.0f;
    for (int j = 0; j < chunks; j++) ss += __shfl_sync(FULL_WARP_MASK, part, j);
    return ss;
}

__device__ __forceinline__ void rope_load8(const float* p, float* x) {
    const float4 a = reinterpret_cast<const float4*>(p)[0];
    const float4 b = reinterpret_cast<const float4*>(p)[1];
    x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
    x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
}
__device__ __forceinline__ void rope_load8(const uint16_t* p, float* x) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const float2 a = bf16_unpack2(u.x), b = bf16_unpack2(u.y), c = bf16_unpack2(u.z), d = bf16_unpack2(u.w);
    x[0] = a.x; x[1] = a.y; x[2] = b.x; x[3] = b.y;
    x[4] = c.x; x[5] = c.y; x[6] = d.x; x[7] = d.y;
}
__device__ __forceinline__ void rope_store8(float* p, const float* x) {
    reinterpret_cast<float4*>(p)[0] = make_float4(x[0], x[1], x[2], x[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(x[4], x[5], x[6], x[7]);
}
__device__ __forceinline__ void rope_store8(uint16_t* p, const float* x) {
    *reinterpret_cast<uint4*>(p) = make_uint4(bf16_pack2(x[0], x[1]), bf16_pack2(x[2], x[3]), bf16_pack2(x[4], x[5]),
                                              bf16_pack2(x[6], x[7]));
}

// The cos and sin of the 4 channel pairs of chunk c at token t: pair p = channels (2p, 2p+1) uses the table entry at
// 2p, i.e. .x and .z of each float4.
__device__ __forceinline__ void rope_table4(const float* __restrict__ cosT, const float* __restrict__ sinT, int t,
                                            int dh, int c, float* cs, float* sn) {
    const float* cosRow = cosT + t * dh + c * ROPE_CHUNK;
    const float* sinRow = sinT + t * dh + c * ROPE_CHUNK;
    const float4 c0 = reinterpret_cast<const float4*>(cosRow)[0];
    const float4 c1 = reinterpret_cast<const float4*>(cosRow)[1];
    const float4 s0 = reinterpret_cast<const float4*>(sinRow)[0];
    const float4 s1 = reinterpret_cast<const float4*>(sinRow)[1];
    cs[0] = c0.x; cs[1] = c0.z; cs[2] = c1.x; cs[3] = c1.z;
    sn[0] = s0.x; sn[1] = s0.z; sn[2] = s1.x; sn[3] = s1.z;
}
