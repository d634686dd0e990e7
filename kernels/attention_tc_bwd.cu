// Softmax attention backward on tensor cores (bf16 operands, fp32 accumulation), the bf16 sibling of the fp32
// backward of kernels/attention.cu with the same contract and the same deterministic two-kernel scheme (no atomics,
// fixed summation orders). Per batch and head, with dO = gradOut and O = out (token-major [B, T, H·dh], each fp32 or
// bf16), s = scale, lse saved by the forward:
//   D_i = Σ_d dO_id·O_id (fp32, from the unrounded inputs),   P_ij = exp(s·q_i·k_j − lse_i),   dP_ij = dO_i·v_j,
//   dS_ij = P_ij·(dP_ij − D_i),   gradQ_i = s·Σ_j dS_ij k_j,   gradK_j = s·Σ_i dS_ij q_i,   gradV_j = Σ_i P_ij dO_i
// q, k, v bf16 [B, H, T, dh]; gradQ, gradK, gradV fp32 [B, H, T, dh] (overwritten). Launcher:
// facm.backend.cuda.CudaTensorCoreAttention; CPU reference: facm.backend.cpu.CpuAttentionBackward.
//   1. attention_bwd_dq_bf16_dh<dh> (query-stationary, 4 warps × 16 query rows): Q and dO rows as bf16 A fragments
//      in registers, D_i and dO rounded to bf16 head-major (stored to delta and dOBf16 for kernel 2), K/V tiles through shared memory (cp.async, double-buffered):
//      S = Q·Kᵀ and dP = dO·Vᵀ on tensor cores, P and dS on the accumulators, dQ += dS·K (ldmatrix.trans of K).
//   2. attention_bwd_dkdv_bf16_dh<dh> (key-stationary, 4 warps × 16 keys): the block's K and V rows in shared memory,
//      Q, dO (the bf16 copy), lse and D tiles streamed with cp.async (double-buffered for dh ≤ 80): Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, Pᵀ and dSᵀ on the accumulators,
//      dV += Pᵀ·dO and dK += dSᵀ·Q (ldmatrix.trans of the dO and Q tiles).
// P and dS enter the second products rounded to bf16 (as dO does), which is FlashAttention-2's precision; gradients
// agree with the fp32 reference to about 1e-2 of their largest magnitude.
#include "attention_tc_common.cuh"

template <int DH>
struct TcBwdTiling {
    // dq: keys per K/V tile; two stages of K and V in the static 48 KB. 32 rather than 64 keys for dh ≤ 80: the
    // S and dP accumulators of 64 keys took the kernel to 184 registers (two blocks per SM), and the short T = 256
    // rows of the DiT are latency-bound, so more resident blocks beat fewer synchronizations.
    static constexpr int BK = DH <= 80 ? 32 : 16;
    static constexpr int KV_TILE = BK * TcDims<DH>::LDS;
    static_assert(2 * 2 * KV_TILE * 2 <= 48 * 1024, "dq tiles exceed static shared memory");
    // dkdv: queries per Q/dO tile beside the block's 64 K and V rows; two stages where they fit (dh ≤ 80).
    static constexpr int BQ = DH <= 80 ? 32 : 16;
    static constexpr int ROWS_TILE = TC_ROWS * TcDims<DH>::LDS;
    static constexpr int Q_TILE = BQ * TcDims<DH>::LDS;
    static constexpr int STAGE_BYTES = 2 * Q_TILE * 2 + 2 * BQ * 4;  // Q, dO tiles, lse, D
    static constexpr int Q_STAGES = 2 * ROWS_TILE * 2 + 2 * STAGE_BYTES <= 48 * 1024 ? 2 : 1;
    static_assert(2 * ROWS_TILE * 2 + Q_STAGES * STAGE_BYTES <= 48 * 1024, "dkdv tiles exceed static shared memory");
};

template <int DH>
__device__ __forceinline__ void attention_bwd_dq_bf16_body(const uint16_t* __restrict__ q,
                                                           const uint16_t* __restrict__ k,
                                                           const uint16_t* __restrict__ v, const void* out,
                                                           const float* __restrict__ lse, const void* gradOut,
                                                           float* __restrict__ gradQ, float* __restrict__ delta,
                                                           uint16_t* __restrict__ dOBf16, int H, int T, float scale,
                                                           bool outBf16,
                                                           bool gradOutBf16) {
    using D = TcDims<DH>;
    using Tile = TcBwdTiling<DH>;
    constexpr int BK = Tile::BK;
    constexpr int NS = BK / 8;
    __shared__ __align__(128) uint16_t smem[4 * Tile::KV_TILE];
    uint16_t* Ks = smem;                      // stage st at Ks + st·KV_TILE
    uint16_t* Vs = smem + 2 * Tile::KV_TILE;

    const int tilesQ = (T + TC_ROWS - 1) / TC_ROWS;
    const int bh = blockIdx.x / tilesQ;
    const int b = bh / H, h = bh % H;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int row0 = (blockIdx.x % tilesQ) * TC_ROWS + warp * 16;
    const int rowA = row0 + g, rowB = row0 + g + 8;
    const int64_t headBase = (int64_t)bh * T * DH;
    const int64_t tokenHead = (int64_t)b * T * H * DH + (int64_t)h * DH;  // row r at tokenHead + r·H·DH
    const int64_t rowStride = (int64_t)H * DH;

    // D_i over the lane's columns (the same columns as its fragments), completed across the quad. dO enters rounded
    // to bf16, the values dP = dO·Vᵀ multiplies on the tensor cores: then D = Σ_j P_ij dP_ij holds up to fp32
    // rounding and dS = P ⊙ (dP − D) cancels where it must (one key: dS = 0 exactly in the math; an fp32 D against
    // a bf16 dP left 1e-3 there).
    float dA = 0.0f, dB = 0.0f;
#pragma unroll
    for (int n = 0; n < D::DTILES; n++) {
        const int d = n * 8 + 2 * t;
        if (rowA < T) {
            const float2 go = tc_round_pair_bf16(tc_load_pair(gradOut, tokenHead + (int64_t)rowA * rowStride + d,
                                                              gradOutBf16));
            const float2 ov = tc_load_pair(out, tokenHead + (int64_t)rowA * rowStride + d, outBf16);
            dA = fmaf(go.x, ov.x, fmaf(go.y, ov.y, dA));
        }
        if (rowB < T) {
            const float2 go = tc_round_pair_bf16(tc_load_pair(gradOut, tokenHead + (int64_t)rowB * rowStride + d,
                                                              gradOutBf16));
            const float2 ov = tc_load_pair(out, tokenHead + (int64_t)rowB * rowStride + d, outBf16);
            dB = fmaf(go.x, ov.x, fmaf(go.y, ov.y, dB));
        }
    }
    dA = tc_quad_sum(dA);
    dB = tc_quad_sum(dB);
    if (t == 0) {
        if (rowA < T) delta[(int64_t)bh * T + rowA] = dA;
        if (rowB < T) delta[(int64_t)bh * T + rowB] = dB;
    }
    // dO rounded to bf16 as A fragments, and the same values stored head-major for the dkdv kernel's cp.async tiles.
    uint32_t doa[D::KSTEPS][4];
    tc_load_a_rows_token<DH>(doa, gradOut, gradOutBf16, tokenHead, rowStride, row0, T);
#pragma unroll
    for (int kk = 0; kk < D::KSTEPS; kk++) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = row0 + g + 8 * (i & 1);
            const int d = kk * 16 + 2 * t + 8 * (i >> 1);
            if (r < T && d < DH) *reinterpret_cast<uint32_t*>(dOBf16 + headBase + (int64_t)r * DH + d) = doa[kk][i];
        }
    }
    if (gradQ == nullptr) return;  // only D and dO wanted (uniform over the grid: no barrier is left waiting)

    const uint16_t* kHead = k + headBase;
    const uint16_t* vHead = v + headBase;
    const int nTiles = (T + BK - 1) / BK;
    tc_zero_padding<DH>(smem, 4 * BK);
    tc_load_tile_async<DH, BK>(Ks, kHead, 0, T);
    tc_load_tile_async<DH, BK>(Vs, vHead, 0, T);
    tc_cp_async_commit();

    uint32_t qa[D::KSTEPS][4];
    tc_load_a_rows<DH>(qa, q + headBase, row0, T);
    const float lseA = rowA < T ? lse[(int64_t)bh * T + rowA] * TC_LOG2E : 0.0f;
    const float lseB = rowB < T ? lse[(int64_t)bh * T + rowB] * TC_LOG2E : 0.0f;
    const float sl2 = scale * TC_LOG2E;

    float dq[D::DTILES][4];
#pragma unroll
    for (int n = 0; n < D::DTILES; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;

    for (int it = 0; it < nTiles; it++) {
        const int st = it & 1;
        if (it + 1 < nTiles) {
            tc_load_tile_async<DH, BK>(Ks + (st ^ 1) * Tile::KV_TILE, kHead, (it + 1) * BK, T);
            tc_load_tile_async<DH, BK>(Vs + (st ^ 1) * Tile::KV_TILE, vHead, (it + 1) * BK, T);
            tc_cp_async_commit();
            tc_cp_async_wait<1>();
        } else {
            tc_cp_async_wait<0>();
        }
        __syncthreads();
        const uint16_t* Kt = Ks + st * Tile::KV_TILE;
        const uint16_t* Vt = Vs + st * Tile::KV_TILE;
        const int kb = it * BK;

        float s[NS][4], dp[NS][4];
#pragma unroll
        for (int n = 0; n < NS; n++) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
            dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
        }
#pragma unroll
        for (int kk = 0; kk < D::KSTEPS; kk++) {
            tc_mma_a_times_tile_t<DH, BK>(s, qa[kk], Kt, kk);
            tc_mma_a_times_tile_t<DH, BK>(dp, doa[kk], Vt, kk);
        }
#pragma unroll
        for (int n = 0; n < NS; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = kb + n * 8 + 2 * t + (e & 1);
                const float p = key < T ? tc_exp2(s[n][e] * sl2 - (e < 2 ? lseA : lseB)) : 0.0f;
                s[n][e] = p * (dp[n][e] - (e < 2 ? dA : dB));  // dS_ij
            }
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t dsa[4];
            tc_pack_a(dsa, s[2 * kk], s[2 * kk + 1]);
            tc_mma_a_times_tile_rows<DH>(dq, dsa, Kt, kk * 16);
        }
        __syncthreads();  // every warp is done with this stage before it is refilled
    }

#pragma unroll
    for (int n = 0; n < D::DTILES; n++) {
        const int d = n * 8 + 2 * t;
        if (rowA < T) {
            *reinterpret_cast<float2*>(gradQ + headBase + (int64_t)rowA * DH + d) =
                    make_float2(dq[n][0] * scale, dq[n][1] * scale);
        }
        if (rowB < T) {
            *reinterpret_cast<float2*>(gradQ + headBase + (int64_t)rowB * DH + d) =
                    make_float2(dq[n][2] * scale, dq[n][3] * scale);
        }
    }
}

template <int DH>
__device__ __forceinline__ void attention_bwd_dkdv_load_stage(uint16_t* Qs, uint16_t* dOs, float* lseS,
                                                              float* deltaS, const uint16_t* qHead,
                                                              const uint16_t* dOHead, const float* lseHead,
                                                              const float* deltaHead, int qb, int T) {
    constexpr int BQ = TcBwdTiling<DH>::BQ;
    tc_load_tile_async<DH, BQ>(Qs, qHead, qb, T);
    tc_load_tile_async<DH, BQ>(dOs, dOHead, qb, T);
    for (int r = threadIdx.x; r < 2 * BQ; r += TC_THREADS) {
        const int row = r % BQ;
        const bool in = qb + row < T;
        const float* src = r < BQ ? lseHead : deltaHead;
        float* dst = r < BQ ? lseS : deltaS;
        tc_cp_async4(tc_smem_addr(dst + row), in ? src + qb + row : src, in);
    }
    tc_cp_async_commit();
}

template <int DH>
__device__ __forceinline__ void attention_bwd_dkdv_bf16_body(const uint16_t* __restrict__ q,
                                                             const uint16_t* __restrict__ k,
                                                             const uint16_t* __restrict__ v,
                                                             const float* __restrict__ lse,
                                                             const uint16_t* __restrict__ dOBf16,
                                                             const float* __restrict__ delta,
                                                             float* __restrict__ gradK, float* __restrict__ gradV,
                                                             int H, int T, float scale) {
    using D = TcDims<DH>;
    using Tile = TcBwdTiling<DH>;
    constexpr int BQ = Tile::BQ;
    constexpr int NS = BQ / 8;
    constexpr int STAGES = Tile::Q_STAGES;
    __shared__ __align__(128) uint16_t smem[2 * Tile::ROWS_TILE + STAGES * 2 * Tile::Q_TILE];
    __shared__ float lseS[STAGES][BQ];  // lse of the tile's queries (natural log; zero past T, masked below)
    __shared__ float deltaS[STAGES][BQ];
    uint16_t* Ks = smem;
    uint16_t* Vs = smem + Tile::ROWS_TILE;
    uint16_t* Qbase = smem + 2 * Tile::ROWS_TILE;  // stage st: Q at Qbase + 2·st·Q_TILE, dO right after

    const int tilesK = (T + TC_ROWS - 1) / TC_ROWS;
    const int bh = blockIdx.x / tilesK;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int t = lane & 3;
    const int keyBlock = (blockIdx.x % tilesK) * TC_ROWS;
    const int wrow = warp * 16;  // the warp's rows within the block's K and V tiles
    const int keyA = keyBlock + wrow + (lane >> 2), keyB = keyA + 8;
    const int64_t headBase = (int64_t)bh * T * DH;
    const float sl2 = scale * TC_LOG2E;
    const uint16_t* qHead = q + headBase;
    const uint16_t* dOHead = dOBf16 + headBase;
    const float* lseHead = lse + (int64_t)bh * T;
    const float* deltaHead = delta + (int64_t)bh * T;
    const int nTiles = (T + BQ - 1) / BQ;

    tc_zero_padding<DH>(smem, 2 * TC_ROWS + STAGES * 2 * BQ);
    tc_load_tile_async<DH, TC_ROWS>(Ks, k + headBase, keyBlock, T);
    tc_load_tile_async<DH, TC_ROWS>(Vs, v + headBase, keyBlock, T);
    attention_bwd_dkdv_load_stage<DH>(Qbase, Qbase + Tile::Q_TILE, lseS[0], deltaS[0], qHead, dOHead, lseHead,
                                      deltaHead, 0, T);

    float dk[D::DTILES][4], dv[D::DTILES][4];
#pragma unroll
    for (int n = 0; n < D::DTILES; n++) {
        dk[n][0] = dk[n][1] = dk[n][2] = dk[n][3] = 0.0f;
        dv[n][0] = dv[n][1] = dv[n][2] = dv[n][3] = 0.0f;
    }

    for (int it = 0; it < nTiles; it++) {
        const int st = STAGES == 2 ? (it & 1) : 0;
        if (STAGES == 2 && it + 1 < nTiles) {
            uint16_t* next = Qbase + 2 * (st ^ 1) * Tile::Q_TILE;
            attention_bwd_dkdv_load_stage<DH>(next, next + Tile::Q_TILE, lseS[st ^ 1], deltaS[st ^ 1], qHead, dOHead,
                                              lseHead, deltaHead, (it + 1) * BQ, T);
            tc_cp_async_wait<1>();
        } else {
            tc_cp_async_wait<0>();
        }
        __syncthreads();
        const uint16_t* Qs = Qbase + 2 * st * Tile::Q_TILE;
        const uint16_t* dOs = Qs + Tile::Q_TILE;
        const float* lseT = lseS[st];
        const float* deltaT = deltaS[st];
        const int qb = it * BQ;

        float s[NS][4], dp[NS][4];
#pragma unroll
        for (int n = 0; n < NS; n++) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
            dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
        }
#pragma unroll
        for (int kk = 0; kk < D::KSTEPS; kk++) {
            uint32_t a[4];
            tc_load_a_smem<DH>(a, Ks, wrow, kk);
            tc_mma_a_times_tile_t<DH, BQ>(s, a, Qs, kk);
            tc_load_a_smem<DH>(a, Vs, wrow, kk);
            tc_mma_a_times_tile_t<DH, BQ>(dp, a, dOs, kk);
        }
#pragma unroll
        for (int n = 0; n < NS; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int col = n * 8 + 2 * t + (e & 1);  // query within the tile
                const bool ok = (e < 2 ? keyA : keyB) < T && qb + col < T;
                const float p = ok ? tc_exp2(s[n][e] * sl2 - lseT[col] * TC_LOG2E) : 0.0f;
                s[n][e] = p;                              // Pᵀ_ji
                dp[n][e] = p * (dp[n][e] - deltaT[col]);  // dSᵀ_ji
            }
        }
#pragma unroll
        for (int kk = 0; kk < BQ / 16; kk++) {
            uint32_t pa[4], dsa[4];
            tc_pack_a(pa, s[2 * kk], s[2 * kk + 1]);
            tc_pack_a(dsa, dp[2 * kk], dp[2 * kk + 1]);
            tc_mma_a_times_tile_rows<DH>(dv, pa, dOs, kk * 16);
            tc_mma_a_times_tile_rows<DH>(dk, dsa, Qs, kk * 16);
        }
        __syncthreads();  // every warp is done with this stage before it is refilled
        if (STAGES == 1 && it + 1 < nTiles) {
            attention_bwd_dkdv_load_stage<DH>(Qbase, Qbase + Tile::Q_TILE, lseS[0], deltaS[0], qHead, dOHead,
                                              lseHead, deltaHead, (it + 1) * BQ, T);
        }
    }

#pragma unroll
    for (int n = 0; n < D::DTILES; n++) {
        const int d = n * 8 + 2 * t;
        if (keyA < T) {
            const int64_t at = headBase + (int64_t)keyA * DH + d;
            if (gradK != nullptr) *reinterpret_cast<float2*>(gradK + at) = make_float2(dk[n][0] * scale, dk[n][1] * scale);
            if (gradV != nullptr) *reinterpret_cast<float2*>(gradV + at) = make_float2(dv[n][0], dv[n][1]);
        }
        if (keyB < T) {
            const int64_t at = headBase + (int64_t)keyB * DH + d;
            if (gradK != nullptr) *reinterpret_cast<float2*>(gradK + at) = make_float2(dk[n][2] * scale, dk[n][3] * scale);
            if (gradV != nullptr) *reinterpret_cast<float2*>(gradV + at) = make_float2(dv[n][2], dv[n][3]);
        }
    }
}

// Grid of both: ceil(T / 64) · B·H blocks of 128 threads, no dynamic shared memory. Launch dq first: it writes delta
// [B, H, T] fp32 (D_i) and dOBf16 [B, H, T, dh] (gradOut rounded to bf16, head-major), which dkdv reads.
// gradQ nullptr: dq only writes delta and dOBf16; gradK or gradV nullptr: not written. q, k, v, dOBf16 16-byte
// aligned; out, gradOut, the gradients 8-byte aligned (the launcher checks 16).
#define ATTENTION_BWD_BF16(DH)                                                                                    \
    extern "C" __global__ void __launch_bounds__(TC_THREADS) attention_bwd_dq_bf16_dh##DH(                         \
            const uint16_t* __restrict__ q, const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,        \
            const void* out, const float* __restrict__ lse, const void* gradOut, float* __restrict__ gradQ,        \
            float* __restrict__ delta, uint16_t* __restrict__ dOBf16, int H, int T, float scale, int outBf16,      \
            int gradOutBf16) {                                                                                     \
        attention_bwd_dq_bf16_body<DH>(q, k, v, out, lse, gradOut, gradQ, delta, dOBf16, H, T, scale, outBf16 != 0, \
                                       gradOutBf16 != 0);                                                          \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(TC_THREADS) attention_bwd_dkdv_bf16_dh##DH(                       \
            const uint16_t* __restrict__ q, const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,        \
            const float* __restrict__ lse, const uint16_t* __restrict__ dOBf16, const float* __restrict__ delta,   \
            float* __restrict__ gradK, float* __restrict__ gradV, int H, int T, float scale) {                     \
        attention_bwd_dkdv_bf16_body<DH>(q, k, v, lse, dOBf16, delta, gradK, gradV, H, T, scale);                  \
    }

ATTENTION_BWD_BF16(16)
ATTENTION_BWD_BF16(32)
ATTENTION_BWD_BF16(64)
ATTENTION_BWD_BF16(72)
ATTENTION_BWD_BF16(128)
