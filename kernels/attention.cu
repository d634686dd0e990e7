// Softmax attention (facm-spec.md §3.2 Attention): per batch and head O = softmax(q kᵀ·scale) v, no mask,
// q, k, v [B, H, T, dh] -> out [B, T, H·dh] (token-major, head-major within a token) and lse [B, H, T] (natural-log
// sum-exp of the scaled scores of each query row, for a backward pass that recomputes the probabilities).
// Launchers: facm.backend.cuda.CudaAttention (forward), CudaAttentionBackward (backward, second half of this file).
// CPU reference: facm.backend.cpu.CpuNetworkOps.
//
// Fused flash-style forward (fp32 in, fp32 math, fp32 out): the T×T score matrix never touches global memory.
//   - A block takes ATT_ROWS = 64 query rows of one (b, h); two threads share a row, each holding HALF = dh/2 of the
//     query vector and of the output accumulator in registers (dh = 128 in one thread would need 256+ registers).
//   - Keys and values stream through shared memory in tiles of BK rows (a tile of K or V is one contiguous piece of
//     [T, dh], so the copy is fully coalesced float4). Every thread of a warp reads the same key row (its half), so
//     shared-memory reads are broadcasts: one LDS.128 feeds 4 FFMA in each of the 32 lanes.
//   - Online softmax (running max m, normalizer l, accumulator o) updated once per chunk of ATT_CHUNK keys:
//     m' = max(m, max_j s_j), o ← o·2^(m−m') + Σ_j 2^(s_j−m') v_j, l likewise. Scores are kept in log2 units
//     (q is pre-multiplied by scale·log2 e) so the exponentials are exp2f; lse = m·ln 2 + ln l at the end.
//   - Tails: keys past T are zero-filled in shared memory and masked to −inf; query rows past T compute harmless
//     zeros (q = 0) and are not written.
// The template parameter is dh (72 is not a power of two: nothing here assumes one; dh % 8 == 0 so each half is
// whole float4s). A bf16 tensor-core variant (wmma/wgmma, bf16 q/k/v in shared memory) can sit beside it as
// attention_fwd_bf16_dh<dh> with the same launch contract, reusing the tiling constants below.
#include "common.cuh"

#define ATT_ROWS 64      // query rows per block
#define ATT_THREADS 128  // two threads per query row
#define ATT_CHUNK 16     // keys per online-softmax update (the s[] registers)

#define ATT_LOG2E 1.4426950408889634f
#define ATT_LN2 0.6931471805599453f

template <int DH>
struct AttentionF32Tiling {
    static_assert(DH % 8 == 0, "each thread's half of dh must be whole float4s");
    static constexpr int HALF = DH / 2;
    static constexpr int HALF4 = HALF / 4;
    // Keys per shared-memory tile: K and V tiles together stay under the 48 KB of static shared memory.
    static constexpr int BK = DH <= 80 ? 64 : 32;
    // Shared row stride in floats. The second half of a row starts 4 floats late, so the two addresses a warp reads
    // at once (half 0 and half 1 of the same key) fall in different banks even when HALF is a multiple of 32.
    static constexpr int LD = DH + 4;
    static constexpr int SECOND_HALF = HALF + 4;
    static_assert(BK % ATT_CHUNK == 0, "tiles hold whole chunks");
    static_assert(2 * BK * LD * (int)sizeof(float) <= 48 * 1024, "K and V tiles exceed static shared memory");
};

template <int DH>
__device__ __forceinline__ void attention_fwd_f32_body(const float* __restrict__ q, const float* __restrict__ k,
                                                       const float* __restrict__ v, float* __restrict__ out,
                                                       float* __restrict__ lse, int H, int T, float scale) {
    using Tile = AttentionF32Tiling<DH>;
    constexpr int HALF = Tile::HALF;
    constexpr int HALF4 = Tile::HALF4;
    constexpr int BK = Tile::BK;
    constexpr int LD = Tile::LD;
    __shared__ __align__(16) float Ks[BK * LD];
    __shared__ __align__(16) float Vs[BK * LD];

    const int tilesQ = (T + ATT_ROWS - 1) / ATT_ROWS;
    const int bh = blockIdx.x / tilesQ;  // consecutive blocks share (b, h): its K and V stay in L2
    const int row = (blockIdx.x % tilesQ) * ATT_ROWS + (threadIdx.x >> 1);
    const int half = threadIdx.x & 1;
    const bool rowValid = row < T;
    const int64_t headBase = (int64_t)bh * T * DH;
    const int smemHalf = half * Tile::SECOND_HALF;

    // This thread's half of the query row, pre-scaled into log2 units.
    const float qs = scale * ATT_LOG2E;
    float4 qr[HALF4];
    const float4* qRow = reinterpret_cast<const float4*>(q + headBase + (int64_t)row * DH + half * HALF);
#pragma unroll
    for (int i = 0; i < HALF4; i++) {
        float4 x = rowValid ? qRow[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        qr[i] = make_float4(x.x * qs, x.y * qs, x.z * qs, x.w * qs);
    }
    float4 acc[HALF4];
#pragma unroll
    for (int i = 0; i < HALF4; i++) acc[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float m = -INFINITY;
    float l = 0.0f;

    const float4* kHead = reinterpret_cast<const float4*>(k + headBase);
    const float4* vHead = reinterpret_cast<const float4*>(v + headBase);
    for (int kb = 0; kb < T; kb += BK) {
        __syncthreads();  // every thread is done with the previous tile
        for (int g = threadIdx.x; g < BK * (DH / 4); g += ATT_THREADS) {
            const int r = g / (DH / 4);
            const int d = (g % (DH / 4)) * 4;
            const int so = r * LD + (d < HALF ? d : d + 4);
            float4 kv = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            float4 vv = kv;
            if (kb + r < T) {
                const int64_t gi = (int64_t)kb * (DH / 4) + g;  // the tile is contiguous in [T, dh]
                kv = kHead[gi];
                vv = vHead[gi];
            }
            *reinterpret_cast<float4*>(&Ks[so]) = kv;
            *reinterpret_cast<float4*>(&Vs[so]) = vv;
        }
        __syncthreads();

        const int keysHere = min(BK, T - kb);  // the same in every thread: the loop below has no divergence
        for (int c0 = 0; c0 < keysHere; c0 += ATT_CHUNK) {
            // Partial scores over this thread's half, one independent FMA chain per key.
            float s[ATT_CHUNK];
#pragma unroll
            for (int j = 0; j < ATT_CHUNK; j++) s[j] = 0.0f;
#pragma unroll
            for (int i = 0; i < HALF4; i++) {
#pragma unroll
                for (int j = 0; j < ATT_CHUNK; j++) {
                    const float4 kk = *reinterpret_cast<const float4*>(&Ks[(c0 + j) * LD + smemHalf + 4 * i]);
                    s[j] = fmaf(qr[i].x, kk.x, s[j]);
                    s[j] = fmaf(qr[i].y, kk.y, s[j]);
                    s[j] = fmaf(qr[i].z, kk.z, s[j]);
                    s[j] = fmaf(qr[i].w, kk.w, s[j]);
                }
            }
            // Whole scores: add the partner's half (a + b == b + a, so both threads hold identical scores and run
            // identical softmax updates). Keys past T become −inf.
            float chunkMax = -INFINITY;
#pragma unroll
            for (int j = 0; j < ATT_CHUNK; j++) {
                s[j] += __shfl_xor_sync(FULL_WARP_MASK, s[j], 1);
                if (c0 + j >= keysHere) s[j] = -INFINITY;
                chunkMax = fmaxf(chunkMax, s[j]);
            }
            // Key c0 is valid, so chunkMax and mNew are finite (m is −inf only before the first chunk, where the
            // rescale factor 2^(−inf) = 0 multiplies the zero-initialized l and acc).
            const float mNew = fmaxf(m, chunkMax);
            const float alpha = exp2f(m - mNew);
            m = mNew;
            l *= alpha;
#pragma unroll
            for (int i = 0; i < HALF4; i++) {
                acc[i].x *= alpha;
                acc[i].y *= alpha;
                acc[i].z *= alpha;
                acc[i].w *= alpha;
            }
#pragma unroll
            for (int j = 0; j < ATT_CHUNK; j++) {
                const float p = exp2f(s[j] - mNew);
                l += p;
#pragma unroll
                for (int i = 0; i < HALF4; i++) {
                    const float4 vv = *reinterpret_cast<const float4*>(&Vs[(c0 + j) * LD + smemHalf + 4 * i]);
                    acc[i].x = fmaf(p, vv.x, acc[i].x);
                    acc[i].y = fmaf(p, vv.y, acc[i].y);
                    acc[i].z = fmaf(p, vv.z, acc[i].z);
                    acc[i].w = fmaf(p, vv.w, acc[i].w);
                }
            }
        }
    }

    if (rowValid) {
        const int b = bh / H;
        const int h = bh % H;
        const float inv = 1.0f / l;
        float4* oRow = reinterpret_cast<float4*>(out + (((int64_t)b * T + row) * H + h) * DH + half * HALF);
#pragma unroll
        for (int i = 0; i < HALF4; i++) {
            oRow[i] = make_float4(acc[i].x * inv, acc[i].y * inv, acc[i].z * inv, acc[i].w * inv);
        }
        if (lse != nullptr && half == 0) lse[(int64_t)bh * T + row] = m * ATT_LN2 + logf(l);
    }
}

// Grid: ceil(T / 64) · B·H blocks of 128 threads, no dynamic shared memory. q, k, v, out 16-byte aligned (checked by
// the launcher). lse may be nullptr.
#define ATTENTION_FWD_F32(DH)                                                                                    \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_fwd_f32_dh##DH(                           \
            const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,                \
            float* __restrict__ out, float* __restrict__ lse, int H, int T, float scale) {                        \
        attention_fwd_f32_body<DH>(q, k, v, out, lse, H, T, scale);                                               \
    }

// LightningDiT uses dh = 64 (B, L, 1p0B, 1p6B) and 72 (XL); 128 is the common size elsewhere; 16 and 32 serve small
// test models. Each instantiation adds ~150 KB of SASS per architecture (with -lineinfo), so only these are built;
// any other multiple of 8 up to 128 works by adding a line here and in CudaAttention.SUPPORTED_HEAD_DIMS.
ATTENTION_FWD_F32(16)
ATTENTION_FWD_F32(32)
ATTENTION_FWD_F32(64)
ATTENTION_FWD_F32(72)
ATTENTION_FWD_F32(128)

// ============================================================================================ backward
// Flash-style backward (fp32), recomputing the probabilities from the saved lse instead of storing P. Per (b, h),
// with dO = gradOut and O = out (both token-major [B, T, H·dh]), s = scale:
//   D_i = Σ_d dO_id·O_id,   P_ij = exp(s·q_i·k_j − lse_i),   dP_ij = dO_i·v_j,   dS_ij = P_ij·(dP_ij − D_i)
//   gradQ_i = s·Σ_j dS_ij k_j,   gradK_j = s·Σ_i dS_ij q_i,   gradV_j = Σ_i P_ij dO_i         (all overwritten)
// Two kernels, no atomics, so the result is deterministic:
//   1. attention_bwd_dq_f32_dh<dh> (query-stationary): a thread group owns one query row (q_i, dO_i and the gradQ_i
//      accumulator in registers), computes D_i (and stores it for kernel 2), and streams K and V tiles through
//      shared memory like the forward.
//   2. attention_bwd_dkdv_f32_dh<dh> (key-stationary): a thread group owns one key row (k_j, v_j and the gradK_j,
//      gradV_j accumulators in registers) and streams tiles of q, dO, lse and D through shared memory.
// Costs 7 T²·dh multiply-adds per head (S twice, dP twice, dQ, dK, dV) against 5 with an atomic dQ, in exchange for
// fixed summation orders. Scores are in log2 units as in the forward (exp2f); keys or queries past T are masked
// with P = 0, so the zero-filled tile tails never contribute.
// Thread layout: SPLIT threads (adjacent lanes) share a row, each holding PART = dh/SPLIT of its vectors as float4s;
// dot products are completed by a shuffle butterfly, whose result is the same in every lane of the group (a + b is
// commutative), so the group's threads take identical decisions. Every thread of a warp reads the same shared row
// at once (broadcast); parts of a row are PART + 4 floats apart, which puts the groups' addresses in different banks.
// A bf16 tensor-core version can sit beside these as attention_bwd_*_bf16_dh<dh> with the same launch contract.

#define ATT_BWD_THREADS 128
#define ATT_BWD_CHUNK 4  // rows (keys or queries) per batch of independent dot products (8 spills at dh 72)

template <int DH>
struct AttentionBwdF32Tiling {
    static constexpr int SPLIT = DH > 80 ? 4 : 2;  // threads per row: keeps 4·dh/SPLIT accumulator floats in registers
    static_assert(DH % (4 * SPLIT) == 0, "each thread's part of dh must be whole float4s");
    static constexpr int PART = DH / SPLIT;
    static constexpr int PART4 = PART / 4;
    static constexpr int ROWS = ATT_BWD_THREADS / SPLIT;  // rows owned by one block
    static constexpr int TILE = DH <= 80 ? 64 : 32;       // rows per shared-memory tile
    static constexpr int PART_LD = PART + 4;
    static constexpr int LD = SPLIT * PART_LD;            // shared row stride in floats
    static_assert(TILE % ATT_BWD_CHUNK == 0, "tiles hold whole chunks");
    static_assert((2 * TILE * LD + 2 * TILE) * (int)sizeof(float) <= 48 * 1024, "tiles exceed static shared memory");
};

// Rows [first, first + TILE) of a matrix with dh columns whose rows start rowStride floats apart, into a shared tile
// in the split layout (part p of a row at p·PART_LD); rows past T become zeros.
template <int DH>
__device__ __forceinline__ void att_bwd_load_tile(float* tile, const float* __restrict__ src, int64_t rowStride,
                                                  int first, int T) {
    using Tile = AttentionBwdF32Tiling<DH>;
    for (int g = threadIdx.x; g < Tile::TILE * (DH / 4); g += ATT_BWD_THREADS) {
        const int r = g / (DH / 4);
        const int d = (g % (DH / 4)) * 4;
        float4 val = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (first + r < T) val = *reinterpret_cast<const float4*>(src + (int64_t)(first + r) * rowStride + d);
        *reinterpret_cast<float4*>(&tile[r * Tile::LD + (d / Tile::PART) * Tile::PART_LD + d % Tile::PART]) = val;
    }
}

// Sum over the SPLIT adjacent lanes of a row group; every lane of the group gets the same value.
template <int SPLIT>
__device__ __forceinline__ float att_bwd_group_sum(float x) {
    x += __shfl_xor_sync(FULL_WARP_MASK, x, 1);
    if (SPLIT == 4) x += __shfl_xor_sync(FULL_WARP_MASK, x, 2);
    return x;
}

// Between the two phases of a chunk: without a memory-ordering point ptxas merges the update phase's shared loads
// with the identical loads of the dot-product phase and keeps 2·CHUNK·PART floats alive across the shuffles, which
// spills heavily (an empty asm with a memory clobber does not help: it vanishes before ptxas). __syncwarp orders
// shared memory for the warp, so the values are read again (cheap broadcast reads) and nothing spills.
__device__ __forceinline__ void att_bwd_reload_barrier() { __syncwarp(); }

__device__ __forceinline__ float att_dot4(float4 a, float4 b, float acc) {
    acc = fmaf(a.x, b.x, acc);
    acc = fmaf(a.y, b.y, acc);
    acc = fmaf(a.z, b.z, acc);
    return fmaf(a.w, b.w, acc);
}

__device__ __forceinline__ void att_axpy4(float a, float4 x, float4& y) {
    y.x = fmaf(a, x.x, y.x);
    y.y = fmaf(a, x.y, y.y);
    y.z = fmaf(a, x.z, y.z);
    y.w = fmaf(a, x.w, y.w);
}

template <int DH>
__device__ __forceinline__ void attention_bwd_dq_body(const float* __restrict__ q, const float* __restrict__ k,
                                                      const float* __restrict__ v, const float* __restrict__ out,
                                                      const float* __restrict__ lse,
                                                      const float* __restrict__ gradOut, float* __restrict__ gradQ,
                                                      float* __restrict__ delta, int H, int T, float scale) {
    using Tile = AttentionBwdF32Tiling<DH>;
    constexpr int SPLIT = Tile::SPLIT, PART = Tile::PART, PART4 = Tile::PART4, LD = Tile::LD;
    __shared__ __align__(16) float Ks[Tile::TILE * LD];
    __shared__ __align__(16) float Vs[Tile::TILE * LD];

    const int tilesQ = (T + Tile::ROWS - 1) / Tile::ROWS;
    const int bh = blockIdx.x / tilesQ;
    const int row = (blockIdx.x % tilesQ) * Tile::ROWS + threadIdx.x / SPLIT;
    const int part = threadIdx.x % SPLIT;
    const bool rowValid = row < T;
    const int b = bh / H;
    const int h = bh % H;
    const int64_t headBase = (int64_t)bh * T * DH;
    // This thread's part of row `row` of the head in [B,H,T,dh] (q, gradQ) and in token-major [B,T,H·dh] (out, dO).
    const int64_t mineHead = headBase + (int64_t)row * DH + part * PART;
    const int64_t mineToken = (((int64_t)b * T + row) * H + h) * DH + part * PART;
    const int smemPart = part * Tile::PART_LD;

    const float qs = scale * ATT_LOG2E;
    float4 qr[PART4], dOr[PART4], dq[PART4];
    float dsum = 0.0f;
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
    for (int i = 0; i < PART4; i++) {
        const float4 qv = rowValid ? *reinterpret_cast<const float4*>(q + mineHead + 4 * i) : zero;
        const float4 gv = rowValid ? *reinterpret_cast<const float4*>(gradOut + mineToken + 4 * i) : zero;
        const float4 ov = rowValid ? *reinterpret_cast<const float4*>(out + mineToken + 4 * i) : zero;
        qr[i] = make_float4(qv.x * qs, qv.y * qs, qv.z * qs, qv.w * qs);
        dOr[i] = gv;
        dsum = att_dot4(gv, ov, dsum);
        dq[i] = zero;
    }
    const float Di = att_bwd_group_sum<SPLIT>(dsum);
    if (rowValid && part == 0) delta[(int64_t)bh * T + row] = Di;
    if (gradQ == nullptr) return;  // only D wanted (the same in every thread: no barrier is left waiting)
    const float lseL2 = rowValid ? lse[(int64_t)bh * T + row] * ATT_LOG2E : 0.0f;

    for (int kb = 0; kb < T; kb += Tile::TILE) {
        __syncthreads();  // every thread is done with the previous tile
        att_bwd_load_tile<DH>(Ks, k + headBase, DH, kb, T);
        att_bwd_load_tile<DH>(Vs, v + headBase, DH, kb, T);
        __syncthreads();
        const int keysHere = min(Tile::TILE, T - kb);  // uniform: no divergence below
        for (int c0 = 0; c0 < keysHere; c0 += ATT_BWD_CHUNK) {
            float s[ATT_BWD_CHUNK], dp[ATT_BWD_CHUNK];
#pragma unroll
            for (int j = 0; j < ATT_BWD_CHUNK; j++) s[j] = dp[j] = 0.0f;
#pragma unroll
            for (int i = 0; i < PART4; i++) {
#pragma unroll
                for (int j = 0; j < ATT_BWD_CHUNK; j++) {
                    const int so = (c0 + j) * LD + smemPart + 4 * i;
                    s[j] = att_dot4(qr[i], *reinterpret_cast<const float4*>(&Ks[so]), s[j]);
                    dp[j] = att_dot4(dOr[i], *reinterpret_cast<const float4*>(&Vs[so]), dp[j]);
                }
            }
#pragma unroll
            for (int j = 0; j < ATT_BWD_CHUNK; j++) {
                const float sj = att_bwd_group_sum<SPLIT>(s[j]);
                const float dpj = att_bwd_group_sum<SPLIT>(dp[j]);
                const float pj = c0 + j < keysHere ? exp2f(sj - lseL2) : 0.0f;
                s[j] = pj * (dpj - Di);  // dS_ij, reusing the register
            }
            att_bwd_reload_barrier();
#pragma unroll
            for (int i = 0; i < PART4; i++) {
#pragma unroll
                for (int j = 0; j < ATT_BWD_CHUNK; j++) {
                    att_axpy4(s[j], *reinterpret_cast<const float4*>(&Ks[(c0 + j) * LD + smemPart + 4 * i]), dq[i]);
                }
            }
        }
    }
    if (rowValid) {
        float4* g = reinterpret_cast<float4*>(gradQ + mineHead);
#pragma unroll
        for (int i = 0; i < PART4; i++) {
            g[i] = make_float4(dq[i].x * scale, dq[i].y * scale, dq[i].z * scale, dq[i].w * scale);
        }
    }
}

template <int DH>
__device__ __forceinline__ void attention_bwd_dkdv_body(const float* __restrict__ q, const float* __restrict__ k,
                                                        const float* __restrict__ v, const float* __restrict__ lse,
                                                        const float* __restrict__ gradOut,
                                                        const float* __restrict__ delta, float* __restrict__ gradK,
                                                        float* __restrict__ gradV, int H, int T, float scale) {
    using Tile = AttentionBwdF32Tiling<DH>;
    constexpr int SPLIT = Tile::SPLIT, PART = Tile::PART, PART4 = Tile::PART4, LD = Tile::LD;
    __shared__ __align__(16) float Qs[Tile::TILE * LD];
    __shared__ __align__(16) float dOs[Tile::TILE * LD];
    __shared__ float lseS[Tile::TILE];  // lse in log2 units
    __shared__ float deltaS[Tile::TILE];

    const int tilesK = (T + Tile::ROWS - 1) / Tile::ROWS;
    const int bh = blockIdx.x / tilesK;
    const int key = (blockIdx.x % tilesK) * Tile::ROWS + threadIdx.x / SPLIT;
    const int part = threadIdx.x % SPLIT;
    const bool keyValid = key < T;
    const int b = bh / H;
    const int h = bh % H;
    const int64_t headBase = (int64_t)bh * T * DH;
    const int64_t mine = headBase + (int64_t)key * DH + part * PART;
    const int smemPart = part * Tile::PART_LD;

    const float qs = scale * ATT_LOG2E;
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float4 kr[PART4], vr[PART4], dk[PART4], dv[PART4];
#pragma unroll
    for (int i = 0; i < PART4; i++) {
        const float4 kv = keyValid ? *reinterpret_cast<const float4*>(k + mine + 4 * i) : zero;
        kr[i] = make_float4(kv.x * qs, kv.y * qs, kv.z * qs, kv.w * qs);
        vr[i] = keyValid ? *reinterpret_cast<const float4*>(v + mine + 4 * i) : zero;
        dk[i] = dv[i] = zero;
    }

    for (int qb = 0; qb < T; qb += Tile::TILE) {
        __syncthreads();
        att_bwd_load_tile<DH>(Qs, q + headBase, DH, qb, T);
        att_bwd_load_tile<DH>(dOs, gradOut + ((int64_t)b * T * H + h) * DH, (int64_t)H * DH, qb, T);
        for (int r = threadIdx.x; r < Tile::TILE; r += ATT_BWD_THREADS) {
            const bool in = qb + r < T;
            lseS[r] = in ? lse[(int64_t)bh * T + qb + r] * ATT_LOG2E : 0.0f;
            deltaS[r] = in ? delta[(int64_t)bh * T + qb + r] : 0.0f;
        }
        __syncthreads();
        const int rowsHere = min(Tile::TILE, T - qb);
        for (int c0 = 0; c0 < rowsHere; c0 += ATT_BWD_CHUNK) {
            float s[ATT_BWD_CHUNK], dp[ATT_BWD_CHUNK];
#pragma unroll
            for (int j = 0; j < ATT_BWD_CHUNK; j++) s[j] = dp[j] = 0.0f;
#pragma unroll
            for (int i = 0; i < PART4; i++) {
#pragma unroll
                for (int j = 0; j < ATT_BWD_CHUNK; j++) {
                    const int so = (c0 + j) * LD + smemPart + 4 * i;
                    s[j] = att_dot4(*reinterpret_cast<const float4*>(&Qs[so]), kr[i], s[j]);
                    dp[j] = att_dot4(*reinterpret_cast<const float4*>(&dOs[so]), vr[i], dp[j]);
                }
            }
#pragma unroll
            for (int j = 0; j < ATT_BWD_CHUNK; j++) {
                const float sj = att_bwd_group_sum<SPLIT>(s[j]);
                const float dpj = att_bwd_group_sum<SPLIT>(dp[j]);
                // P of a key past T is masked too: its zero k gives s = 0, and 2^(0 − lse) may overflow.
                const float pj = (c0 + j < rowsHere && keyValid) ? exp2f(sj - lseS[c0 + j]) : 0.0f;
                s[j] = pj;                              // P_ij
                dp[j] = pj * (dpj - deltaS[c0 + j]);    // dS_ij
            }
            att_bwd_reload_barrier();
#pragma unroll
            for (int i = 0; i < PART4; i++) {
#pragma unroll
                for (int j = 0; j < ATT_BWD_CHUNK; j++) {
                    const int so = (c0 + j) * LD + smemPart + 4 * i;
                    att_axpy4(s[j], *reinterpret_cast<const float4*>(&dOs[so]), dv[i]);
                    att_axpy4(dp[j], *reinterpret_cast<const float4*>(&Qs[so]), dk[i]);
                }
            }
        }
    }
    if (keyValid && gradK != nullptr) {
        float4* gk = reinterpret_cast<float4*>(gradK + mine);
#pragma unroll
        for (int i = 0; i < PART4; i++) {
            gk[i] = make_float4(dk[i].x * scale, dk[i].y * scale, dk[i].z * scale, dk[i].w * scale);
        }
    }
    if (keyValid && gradV != nullptr) {
        float4* gv = reinterpret_cast<float4*>(gradV + mine);
#pragma unroll
        for (int i = 0; i < PART4; i++) gv[i] = dv[i];
    }
}

// Grid of both: ceil(T / ROWS) · B·H blocks of ATT_BWD_THREADS threads, ROWS = 128 / SPLIT (64 rows for dh ≤ 80, 32
// above), no dynamic shared memory; all pointers 16-byte aligned (checked by the launcher). Launch dq first: it
// writes delta [B, H, T] (D_i), which dkdv reads. gradQ nullptr: dq only writes delta; gradK or gradV nullptr: not
// written (the launcher skips dkdv when both are). Two blocks per SM: with a free register budget ptxas capped dq at
// 168 registers (3 blocks) and spilled a few bytes; dkdv needs ~250 registers (k, v, dK, dV: 4·dh/SPLIT floats).
#define ATTENTION_BWD_F32(DH)                                                                                    \
    extern "C" __global__ void __launch_bounds__(ATT_BWD_THREADS, 2) attention_bwd_dq_f32_dh##DH(                 \
            const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,                \
            const float* __restrict__ out, const float* __restrict__ lse, const float* __restrict__ gradOut,      \
            float* __restrict__ gradQ, float* __restrict__ delta, int H, int T, float scale) {                    \
        attention_bwd_dq_body<DH>(q, k, v, out, lse, gradOut, gradQ, delta, H, T, scale);                         \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(ATT_BWD_THREADS, 2) attention_bwd_dkdv_f32_dh##DH(               \
            const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,                \
            const float* __restrict__ lse, const float* __restrict__ gradOut, const float* __restrict__ delta,    \
            float* __restrict__ gradK, float* __restrict__ gradV, int H, int T, float scale) {                    \
        attention_bwd_dkdv_body<DH>(q, k, v, lse, gradOut, delta, gradK, gradV, H, T, scale);                     \
    }

ATTENTION_BWD_F32(16)
ATTENTION_BWD_F32(32)
ATTENTION_BWD_F32(64)
ATTENTION_BWD_F32(72)
ATTENTION_BWD_F32(128)
