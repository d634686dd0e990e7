// Softmax attention backward on tensor cores (bf16 operands, fp32 accumulation), the bf16 sibling of the fp32
// backward of kernels/attention.cu with the same contract and the same deterministic two-kernel scheme (no atomics,
// fixed summation orders). Per batch and head, with dO = gradOut and O = out (token-major [B, T, H·dh], each fp32 or
// bf16), s = scale, lse saved by the forward:
//   D_i = Σ_d dO_id·O_id (fp32, from the unrounded inputs),   P_ij = exp(s·q_i·k_j − lse_i),   dP_ij = dO_i·v_j,
//   dS_ij = P_ij·(dP_ij − D_i),   gradQ_i = s·Σ_j dS_ij k_j,   gradK_j = s·Σ_i dS_ij q_i,   gradV_j = Σ_i P_ij dO_i
// q, k, v bf16 [B, H, T, dh]; gradQ, gradK, gradV fp32 [B, H, T, dh] (overwritten). Launcher:
// facm.backend.cuda.CudaTensorCoreAttention; CPU reference: facm.backend.cpu.CpuAttentionBackward.
//   1. attention_bwd_dq_bf16_dh<dh> (query-stationary, 4 warps × 16 query rows): Q and dO rows as bf16 A fragments
//      in registers, D_i (stored to delta for kernel 2), K/V tiles through shared memory (cp.async, double-buffered):
//      S = Q·Kᵀ and dP = dO·Vᵀ on tensor cores, P and dS on the accumulators, dQ += dS·K (ldmatrix.trans of K).
//   2. attention_bwd_dkdv_bf16_dh<dh> (key-stationary, 4 warps × 16 keys): the block's K and V rows in shared memory,
//      Q, dO (rounded to bf16), lse and D tiles streamed: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, Pᵀ and dSᵀ on the accumulators,
//      dV += Pᵀ·dO and dK += dSᵀ·Q (ldmatrix.trans of the dO and Q tiles).
// P and dS enter the second products rounded to bf16 (as dO does), which is FlashAttention-2's precision; gradients
// agree with the fp32 reference to about 1e-2 of their largest magnitude.
#include "attention_tc_common.cuh"

template <int DH>
struct TcBwdTiling {
    // dq: keys per K/V tile; two stages of K and V in the static 48 KB.
    static constexpr int BK = DH <= 80 ? 64 : 32;
    static constexpr int KV_TILE = BK * TcDims<DH>::LDS;
    static_assert(2 * 2 * KV_TILE * 2 <= 48 * 1024, "dq tiles exceed static shared memory");
    // dkdv: queries per Q/dO tile beside the block's 64 K and V rows (one stage).
    static constexpr int BQ = DH <= 80 ? 32 : 16;
    static constexpr int ROWS_TILE = TC_ROWS * TcDims<DH>::LDS;
    static constexpr int Q_TILE = BQ * TcDims<DH>::LDS;
    static_assert((2 * ROWS_TILE + 2 * Q_TILE) * 2 + 2 * BQ * 4 <= 48 * 1024, "dkdv tiles exceed static shared memory");
};

template <int DH>
__device__ __forceinline__ void attention_bwd_dq_bf16_body(const uint16_t* __restrict__ q,
                                                           const uint16_t* __restrict__ k,
                                                           const uint16_t* __restrict__ v, const void* out,
                                                           const float* __restrict__ lse, const void* gradOut,
                                                           float* __restrict__ gradQ, float* __restrict__ delta,
                                                           int H, int T, float scale, bool outBf16,
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

    // D_i over the lane's columns (the same columns as its fragments), completed across the quad.
    float dA = 0.0f, dB = 0.0f;
#pragma unroll
    for (int n = 0; n < D::DTILES; n++) {
        const int d = n * 8 + 2 * t;
        if (rowA < T) {
            const float2 go = tc_load_pair(gradOut, tokenHead + (int64_t)rowA * rowStride + d, gradOutBf16);
            const float2 ov = tc_load_pair(out, tokenHead + (int64_t)rowA * rowStride + d, outBf16);
            dA = fmaf(go.x, ov.x, fmaf(go.y, ov.y, dA));
        }
        if (rowB < T) {
            const float2 go = tc_load_pair(gradOut, tokenHead + (int64_t)rowB * rowStride + d, gradOutBf16);
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
    if (gradQ == nullptr) return;  // only D wanted (uniform over the grid: no barrier is left waiting)

    const uint16_t* kHead = k + headBase;
    const uint16_t* vHead = v + headBase;
    const int nTiles = (T + BK - 1) / BK;
    tc_zero_padding<DH>(smem, 4 * BK);
    tc_load_tile_async<DH, BK>(Ks, kHead, 0, T);
    tc_load_tile_async<DH, BK>(Vs, vHead, 0, T);
    tc_cp_async_commit();

    uint32_t qa[D::KSTEPS][4], doa[D::KSTEPS][4];
    tc_load_a_rows<DH>(qa, q + headBase, row0, T);
    tc_load_a_rows_token<DH>(doa, gradOut, gradOutBf16, tokenHead, rowStride, row0, T);
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
                const float p = key < T ? exp2f(s[n][e] * sl2 - (e < 2 ? lseA : lseB)) : 0.0f;
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

// Rows [first, first + R) of a token-major fp32 or bf16 matrix (row r at headOffset + r·rowStride), rounded to bf16,
// into a shared tile; rows at or past T become zeros. Synchronous (plain loads and stores).
template <int DH, int R>
__device__ __forceinline__ void tc_load_tile_token(uint16_t* tile, const void* src, bool isBf16, int64_t headOffset,
                                                   int64_t rowStride, int first, int T) {
    using D = TcDims<DH>;
    for (int c = threadIdx.x; c < R * (DH / 2); c += TC_THREADS) {
        const int r = c / (DH / 2);
        const int d = (c % (DH / 2)) * 2;
        uint32_t x = 0u;
        if (first + r < T) {
            const float2 f = tc_load_pair(src, headOffset + (int64_t)(first + r) * rowStride + d, isBf16);
            x = tc_pack_bf16(f.x, f.y);
        }
        *reinterpret_cast<uint32_t*>(tile + r * D::LDS + d) = x;
    }
}

template <int DH>
__device__ __forceinline__ void attention_bwd_dkdv_bf16_body(const uint16_t* __restrict__ q,
                                                             const uint16_t* __restrict__ k,
                                                             const uint16_t* __restrict__ v,
                                                             const float* __restrict__ lse, const void* gradOut,
                                                             const float* __restrict__ delta,
                                                             float* __restrict__ gradK, float* __restrict__ gradV,
                                                             int H, int T, float scale, bool gradOutBf16) {
    using D = TcDims<DH>;
    using Tile = TcBwdTiling<DH>;
    constexpr int BQ = Tile::BQ;
    constexpr int NS = BQ / 8;
    __shared__ __align__(128) uint16_t smem[2 * Tile::ROWS_TILE + 2 * Tile::Q_TILE];
    __shared__ float lseS[BQ];    // lse of the tile's queries in log2 units (+inf past T: P = 0)
    __shared__ float deltaS[BQ];
    uint16_t* Ks = smem;
    uint16_t* Vs = smem + Tile::ROWS_TILE;
    uint16_t* Qs = smem + 2 * Tile::ROWS_TILE;
    uint16_t* dOs = Qs + Tile::Q_TILE;

    const int tilesK = (T + TC_ROWS - 1) / TC_ROWS;
    const int bh = blockIdx.x / tilesK;
    const int b = bh / H, h = bh % H;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int keyBlock = (blockIdx.x % tilesK) * TC_ROWS;
    const int wrow = warp * 16;  // the warp's rows within the block's K and V tiles
    const int keyA = keyBlock + wrow + g, keyB = keyA + 8;
    const int64_t headBase = (int64_t)bh * T * DH;
    const int64_t tokenHead = (int64_t)b * T * H * DH + (int64_t)h * DH;
    const int64_t rowStride = (int64_t)H * DH;
    const float sl2 = scale * TC_LOG2E;

    tc_zero_padding<DH>(smem, 2 * TC_ROWS + 2 * BQ);
    tc_load_tile_async<DH, TC_ROWS>(Ks, k + headBase, keyBlock, T);
    tc_load_tile_async<DH, TC_ROWS>(Vs, v + headBase, keyBlock, T);
    tc_cp_async_commit();

    float dk[D::DTILES][4], dv[D::DTILES][4];
#pragma unroll
    for (int n = 0; n < D::DTILES; n++) {
        dk[n][0] = dk[n][1] = dk[n][2] = dk[n][3] = 0.0f;
        dv[n][0] = dv[n][1] = dv[n][2] = dv[n][3] = 0.0f;
    }

    for (int qb = 0; qb < T; qb += BQ) {
        tc_load_tile_async<DH, BQ>(Qs, q + headBase, qb, T);
        tc_cp_async_commit();
        tc_load_tile_token<DH, BQ>(dOs, gradOut, gradOutBf16, tokenHead, rowStride, qb, T);
        for (int r = threadIdx.x; r < BQ; r += TC_THREADS) {
            const bool in = qb + r < T;
            lseS[r] = in ? lse[(int64_t)bh * T + qb + r] * TC_LOG2E : INFINITY;
            deltaS[r] = in ? delta[(int64_t)bh * T + qb + r] : 0.0f;
        }
        tc_cp_async_wait<0>();
        __syncthreads();

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
                const bool keyOk = (e < 2 ? keyA : keyB) < T;
                const float p = keyOk ? exp2f(s[n][e] * sl2 - lseS[col]) : 0.0f;
                s[n][e] = p;                              // Pᵀ_ji
                dp[n][e] = p * (dp[n][e] - deltaS[col]);  // dSᵀ_ji
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
        __syncthreads();  // the tiles are refilled next
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
// [B, H, T] fp32 (D_i), which dkdv reads. gradQ nullptr: dq only writes delta; gradK or gradV nullptr: not written.
// q, k, v 16-byte aligned; out, gradOut, the gradients 8-byte aligned (the launcher checks 16).
#define ATTENTION_BWD_BF16(DH)                                                                                    \
    extern "C" __global__ void __launch_bounds__(TC_THREADS) attention_bwd_dq_bf16_dh##DH(                         \
            const uint16_t* __restrict__ q, const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,        \
            const void* out, const float* __restrict__ lse, const void* gradOut, float* __restrict__ gradQ,        \
            float* __restrict__ delta, int H, int T, float scale, int outBf16, int gradOutBf16) {                  \
        attention_bwd_dq_bf16_body<DH>(q, k, v, out, lse, gradOut, gradQ, delta, H, T, scale, outBf16 != 0,        \
                                       gradOutBf16 != 0);                                                          \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(TC_THREADS) attention_bwd_dkdv_bf16_dh##DH(                       \
            const uint16_t* __restrict__ q, const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,        \
            const float* __restrict__ lse, const void* gradOut, const float* __restrict__ delta,                   \
            float* __restrict__ gradK, float* __restrict__ gradV, int H, int T, float scale, int gradOutBf16) {    \
        attention_bwd_dkdv_bf16_body<DH>(q, k, v, lse, gradOut, delta, gradK, gradV, H, T, scale,                  \
                                         gradOutBf16 != 0);                                                        \
    }

ATTENTION_BWD_BF16(16)
ATTENTION_BWD_BF16(32)
ATTENTION_BWD_BF16(64)
ATTENTION_BWD_BF16(72)
ATTENTION_BWD_BF16(128)
