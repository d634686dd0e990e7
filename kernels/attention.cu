// Softmax attention (facm-spec.md §3.2 Attention): per batch and head O = softmax(q kᵀ·scale) v, no mask,
// q, k, v [B, H, T, dh] -> out [B, T, H·dh] (token-major, head-major within a token) and lse [B, H, T] (natural-log
// sum-exp of the scaled scores of each query row, for a backward pass that recomputes the probabilities).
// Launchers: facm.backend.cuda.CudaNetworkOps. CPU reference: facm.backend.cpu.CpuNetworkOps.
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
