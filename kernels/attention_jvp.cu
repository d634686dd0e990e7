// Fused flash-style attention forward + tangent (facm-spec.md §6.4), fp32: per batch and head and query row i, with
// S_j = s·q·k_j, Ṡ_j = s·(q̇·k_j + q·k̇_j), P = softmax(S), μ = Σ_j P_j Ṡ_j:
//   out_i = Σ_j P_j v_j,   outDot_i = Σ_j P_j (v̇_j + Ṡ_j v_j) − μ·out_i,   lse_i = log Σ_j e^{S_j}
// in ONE pass over the keys and without a score matrix in memory: the online softmax of kernels/attention.cu carries
// two more accumulators, μ·l = Σ_j e^{S_j−m} Ṡ_j and ȯ·l = Σ_j e^{S_j−m}(v̇_j + Ṡ_j v_j), rescaled by 2^(m−m') with o
// and l whenever the running max m moves. q, k, v, their tangents [B, H, T, dh]; out, outDot [B, T, H·dh]
// (token-major like the forward); lse [B, H, T] (may be nullptr). Any tangent pointer may be nullptr (a zero tangent).
// Launcher: facm.backend.cuda.CudaAttentionJvp. CPU reference: facm.backend.cpu (attentionJvp).
//
// Layout follows the forward: a block takes ATTJ_ROWS = 64 query rows of one (b, h); SPLIT adjacent threads share a
// row, each holding PART = dh/SPLIT of q, q̇, o and ȯ as float4 registers. K, V, K̇ and V̇ tiles of BK keys stream
// through shared memory (four tiles instead of two, so BK is half the forward's). SPLIT = 2 for dh ≤ 80, 4 for
// dh = 128 (four arrays of 64 floats would not fit in registers). The online softmax updates every CHUNK keys: 16 as in
// the forward for dh ≤ 32, where every score is summed and every update made in exactly the forward's order, so out
// and lse equal attention_fwd_f32's bit for bit; 8 for dh ≥ 64 (16 scores and 16 score tangents would spill), where
// the rescaling steps differ and out agrees with the forward to fp32 rounding (a few ulp), not bitwise.
// Scores are in log2 units (q pre-scaled by s·log2 e, exp2f) as in the forward; Ṡ is formed in the same units and
// brought back to natural units with one multiply by ln 2 per key. A bf16 tensor-core variant can take the same
// launch contract.
#include "common.cuh"

#define ATTJ_ROWS 64   // query rows per block
#define ATTJ_FWD_CHUNK 16  // ATT_CHUNK of kernels/attention.cu

#define ATTJ_LOG2E 1.4426950408889634f
#define ATTJ_LN2 0.6931471805599453f

template <int DH>
struct AttentionJvpTiling {
    static constexpr int SPLIT = DH <= 80 ? 2 : 4;
    static constexpr int THREADS = ATTJ_ROWS * SPLIT;
    static_assert(DH % (4 * SPLIT) == 0, "each thread's part of dh must be whole float4s");
    static constexpr int PART = DH / SPLIT;
    static constexpr int PART4 = PART / 4;
    // Shared row stride: part p of a key row starts at p·(PART + 4), so the SPLIT addresses a warp reads at once fall
    // in different banks even when PART is a multiple of 32.
    static constexpr int PART_STRIDE = PART + 4;
    static constexpr int LD = SPLIT * PART_STRIDE;
    static constexpr int BK = DH <= 80 ? 32 : 16;
    // Keys per online-softmax update: the forward's 16 where the registers allow it (dh ≤ 32); 8 above, where
    // 16 scores and 16 score tangents beside q, q̇, o, ȯ would spill.
    static constexpr int CHUNK = DH <= 32 ? ATTJ_FWD_CHUNK : 8;
    static_assert(BK % CHUNK == 0, "tiles hold whole chunks");
    static_assert(4 * BK * LD * (int)sizeof(float) <= 48 * 1024, "K, V, K̇, V̇ tiles exceed static shared memory");
};

// Sum over the SPLIT threads of a row (adjacent lanes). For SPLIT = 2 this is the forward's single exchange.
template <int SPLIT>
__device__ __forceinline__ float attj_row_sum(float x) {
    x += __shfl_xor_sync(FULL_WARP_MASK, x, 1);
    if (SPLIT == 4) x += __shfl_xor_sync(FULL_WARP_MASK, x, 2);
    return x;
}

__device__ __forceinline__ void attj_fma4(float4& acc, float a, const float4& b) {
    acc.x = fmaf(a, b.x, acc.x);
    acc.y = fmaf(a, b.y, acc.y);
    acc.z = fmaf(a, b.z, acc.z);
    acc.w = fmaf(a, b.w, acc.w);
}

__device__ __forceinline__ float attj_dot4(const float4& a, const float4& b, float s) {
    s = fmaf(a.x, b.x, s);
    s = fmaf(a.y, b.y, s);
    s = fmaf(a.z, b.z, s);
    return fmaf(a.w, b.w, s);
}

template <int DH>
__device__ __forceinline__ void attention_jvp_f32_body(const float* __restrict__ q, const float* __restrict__ k,
                                                       const float* __restrict__ v, const float* __restrict__ qDot,
                                                       const float* __restrict__ kDot, const float* __restrict__ vDot,
                                                       float* __restrict__ out, float* __restrict__ outDot,
                                                       float* __restrict__ lse, int H, int T, float scale) {
    using Tile = AttentionJvpTiling<DH>;
    constexpr int SPLIT = Tile::SPLIT;
    constexpr int PART = Tile::PART;
    constexpr int PART4 = Tile::PART4;
    constexpr int BK = Tile::BK;
    constexpr int LD = Tile::LD;
    constexpr int CHUNK = Tile::CHUNK;
    __shared__ __align__(16) float Ks[BK * LD];
    __shared__ __align__(16) float Vs[BK * LD];
    __shared__ __align__(16) float Kd[BK * LD];
    __shared__ __align__(16) float Vd[BK * LD];

    const int tilesQ = (T + ATTJ_ROWS - 1) / ATTJ_ROWS;
    const int bh = blockIdx.x / tilesQ;
    const int row = (blockIdx.x % tilesQ) * ATTJ_ROWS + (int)(threadIdx.x / SPLIT);
    const int part = threadIdx.x % SPLIT;
    const bool rowValid = row < T;
    const int64_t headBase = (int64_t)bh * T * DH;
    const int smemPart = part * Tile::PART_STRIDE;

    // q and q̇ (this thread's part), both pre-scaled into log2 units; q exactly as the forward scales it.
    const float qs = scale * ATTJ_LOG2E;
    float4 qr[PART4];
    float4 qd[PART4];
    const int64_t qOff = headBase + (int64_t)row * DH + part * PART;
#pragma unroll
    for (int i = 0; i < PART4; i++) {
        const float4 x = rowValid ? reinterpret_cast<const float4*>(q + qOff)[i] : make_float4(0.f, 0.f, 0.f, 0.f);
        const float4 y = rowValid && qDot != nullptr ? reinterpret_cast<const float4*>(qDot + qOff)[i]
                                                     : make_float4(0.f, 0.f, 0.f, 0.f);
        qr[i] = make_float4(x.x * qs, x.y * qs, x.z * qs, x.w * qs);
        qd[i] = make_float4(y.x * qs, y.y * qs, y.z * qs, y.w * qs);
    }
    float4 acc[PART4];
    float4 accDot[PART4];
#pragma unroll
    for (int i = 0; i < PART4; i++) {
        acc[i] = make_float4(0.f, 0.f, 0.f, 0.f);
        accDot[i] = acc[i];
    }
    float m = -INFINITY;
    float l = 0.0f;
    float mu = 0.0f;  // Σ_j e^{S_j − m} Ṡ_j (natural units)

    const float4* kHead = reinterpret_cast<const float4*>(k + headBase);
    const float4* vHead = reinterpret_cast<const float4*>(v + headBase);
    const float4* kdHead = kDot != nullptr ? reinterpret_cast<const float4*>(kDot + headBase) : nullptr;
    const float4* vdHead = vDot != nullptr ? reinterpret_cast<const float4*>(vDot + headBase) : nullptr;
    for (int kb = 0; kb < T; kb += BK) {
        __syncthreads();  // every thread is done with the previous tiles
        for (int g = threadIdx.x; g < BK * (DH / 4); g += Tile::THREADS) {
            const int r = g / (DH / 4);
            const int d = (g % (DH / 4)) * 4;
            const int so = r * LD + (d / PART) * Tile::PART_STRIDE + d % PART;
            const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
            float4 kv = zero, vv = zero, kdv = zero, vdv = zero;
            if (kb + r < T) {
                const int64_t gi = (int64_t)kb * (DH / 4) + g;  // the tile is contiguous in [T, dh]
                kv = kHead[gi];
                vv = vHead[gi];
                if (kdHead != nullptr) kdv = kdHead[gi];
                if (vdHead != nullptr) vdv = vdHead[gi];
            }
            *reinterpret_cast<float4*>(&Ks[so]) = kv;
            *reinterpret_cast<float4*>(&Vs[so]) = vv;
            *reinterpret_cast<float4*>(&Kd[so]) = kdv;
            *reinterpret_cast<float4*>(&Vd[so]) = vdv;
        }
        __syncthreads();

        const int keysHere = min(BK, T - kb);
        for (int c0 = 0; c0 < keysHere; c0 += CHUNK) {
            float s[CHUNK];
            float sd[CHUNK];
#pragma unroll
            for (int j = 0; j < CHUNK; j++) {
                s[j] = 0.0f;
                sd[j] = 0.0f;
            }
#pragma unroll
            for (int i = 0; i < PART4; i++) {
#pragma unroll
                for (int j = 0; j < CHUNK; j++) {
                    const int at = (c0 + j) * LD + smemPart + 4 * i;
                    const float4 kk = *reinterpret_cast<const float4*>(&Ks[at]);
                    const float4 kd = *reinterpret_cast<const float4*>(&Kd[at]);
                    s[j] = attj_dot4(qr[i], kk, s[j]);  // the forward's chain, element by element
                    sd[j] = attj_dot4(qd[i], kk, sd[j]);
                    sd[j] = attj_dot4(qr[i], kd, sd[j]);
                }
            }
            float chunkMax = -INFINITY;
#pragma unroll
            for (int j = 0; j < CHUNK; j++) {
                s[j] = attj_row_sum<SPLIT>(s[j]);
                sd[j] = attj_row_sum<SPLIT>(sd[j]) * ATTJ_LN2;  // Ṡ_j in natural units
                if (c0 + j >= keysHere) {
                    s[j] = -INFINITY;
                    sd[j] = 0.0f;
                }
                chunkMax = fmaxf(chunkMax, s[j]);
            }
            const float mNew = fmaxf(m, chunkMax);
            const float alpha = exp2f(m - mNew);
            m = mNew;
            l *= alpha;
            mu *= alpha;
#pragma unroll
            for (int i = 0; i < PART4; i++) {
                acc[i].x *= alpha;
                acc[i].y *= alpha;
                acc[i].z *= alpha;
                acc[i].w *= alpha;
                accDot[i].x *= alpha;
                accDot[i].y *= alpha;
                accDot[i].z *= alpha;
                accDot[i].w *= alpha;
            }
#pragma unroll
            for (int j = 0; j < CHUNK; j++) {
                const float p = exp2f(s[j] - mNew);
                const float ps = p * sd[j];
                l += p;
                mu += ps;
#pragma unroll
                for (int i = 0; i < PART4; i++) {
                    const int at = (c0 + j) * LD + smemPart + 4 * i;
                    const float4 vv = *reinterpret_cast<const float4*>(&Vs[at]);
                    const float4 vd = *reinterpret_cast<const float4*>(&Vd[at]);
                    attj_fma4(acc[i], p, vv);
                    attj_fma4(accDot[i], p, vd);
                    attj_fma4(accDot[i], ps, vv);
                }
            }
        }
    }

    if (rowValid) {
        const int b = bh / H;
        const int h = bh % H;
        const float inv = 1.0f / l;
        const float muN = mu * inv;
        const int64_t oOff = (((int64_t)b * T + row) * H + h) * DH + part * PART;
        float4* oRow = reinterpret_cast<float4*>(out + oOff);
        float4* odRow = reinterpret_cast<float4*>(outDot + oOff);
#pragma unroll
        for (int i = 0; i < PART4; i++) {
            const float4 o = make_float4(acc[i].x * inv, acc[i].y * inv, acc[i].z * inv, acc[i].w * inv);
            oRow[i] = o;
            odRow[i] = make_float4(fmaf(-muN, o.x, accDot[i].x * inv), fmaf(-muN, o.y, accDot[i].y * inv),
                                   fmaf(-muN, o.z, accDot[i].z * inv), fmaf(-muN, o.w, accDot[i].w * inv));
        }
        if (lse != nullptr && part == 0) lse[(int64_t)bh * T + row] = m * ATTJ_LN2 + logf(l);
    }
}

// Grid: ceil(T / 64) · B·H blocks of 64·SPLIT threads (128 for dh ≤ 80, 256 for dh = 128), no dynamic shared memory.
// q, k, v, the tangents, out and outDot 16-byte aligned (checked by the launcher).
#define ATTENTION_JVP_F32(DH)                                                                                     \
    extern "C" __global__ void __launch_bounds__(AttentionJvpTiling<DH>::THREADS) attention_jvp_f32_dh##DH(        \
            const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,                 \
            const float* __restrict__ qDot, const float* __restrict__ kDot, const float* __restrict__ vDot,        \
            float* __restrict__ out, float* __restrict__ outDot, float* __restrict__ lse, int H, int T,            \
            float scale) {                                                                                         \
        attention_jvp_f32_body<DH>(q, k, v, qDot, kDot, vDot, out, outDot, lse, H, T, scale);                     \
    }

// The head dimensions of kernels/attention.cu (CudaAttention.SUPPORTED_HEAD_DIMS).
ATTENTION_JVP_F32(16)
ATTENTION_JVP_F32(32)
ATTENTION_JVP_F32(64)
ATTENTION_JVP_F32(72)
ATTENTION_JVP_F32(128)
