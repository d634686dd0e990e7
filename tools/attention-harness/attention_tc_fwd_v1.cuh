// The tensor-core attention forward as it was before the 32-rows-per-warp rewrite (kernels/attention_tc.cu at commit
// 86c3d0a: 16 query rows per warp, 64 per block), kept for the harness only: it checks and times old beside new on
// the same inputs. Same contract and grid as then (ceil(T / 64)·B·H blocks of 128 threads). Not built into the jar.
#pragma once
#include "../../kernels/attention_tc_common.cuh"

// Keys per K/V tile for 64 < dh ≤ 80 (64 otherwise). With T = 256 a block runs only a few tiles, so its start
// (Q fragments, first tile) is a large part of its life and four resident blocks per SM (≤ 128 registers) hide it
// best: dh 64 fits that with 64-key tiles (128 registers: 175 TFLOP/s on an H200 against 158 at 149 registers),
// dh 72 only with 32-key tiles (64 spill at 128 registers). With the m16n8k8 tail both dh 72 variants measured 156
// TFLOP/s (B256·H16·T256, H200); 32 stays, for its smaller shared memory. The harness times both.
#ifndef TC_FWD_V1_BK_SMALL_DH
#define TC_FWD_V1_BK_SMALL_DH 32
#endif
// ptxas for sm_80 spills a few bytes under the 128-register cap that sm_90 meets: three blocks per SM there.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define TC_FWD_V1_MIN_BLOCKS_SMALL_DH 3
#else
#define TC_FWD_V1_MIN_BLOCKS_SMALL_DH 4
#endif

template <int DH>
struct TcFwdTilingV1 {
    static constexpr int BK = DH > 64 && DH <= 80 ? TC_FWD_V1_BK_SMALL_DH : 64;  // keys per tile
    static constexpr int MIN_BLOCKS = DH <= 80 ? TC_FWD_V1_MIN_BLOCKS_SMALL_DH : 1;  // per SM, for __launch_bounds__
    static constexpr int TILE_ELEMS = BK * TcDims<DH>::LDS;
    // K and V of two tiles in flight where they fit the static 48 KB (dh ≤ 80), else one.
    static constexpr int STAGES = 4 * TILE_ELEMS * 2 <= 48 * 1024 ? 2 : 1;
    static_assert(2 * STAGES * TILE_ELEMS * 2 <= 48 * 1024, "K/V tiles exceed static shared memory");
};

template <int DH>
__device__ __forceinline__ void attention_fwd_bf16_v1_body(const uint16_t* __restrict__ q,
                                                        const uint16_t* __restrict__ k,
                                                        const uint16_t* __restrict__ v, void* __restrict__ out,
                                                        float* __restrict__ lse, int H, int T, float scale,
                                                        bool outBf16) {
    using D = TcDims<DH>;
    using Tile = TcFwdTilingV1<DH>;
    constexpr int BK = Tile::BK;
    constexpr int STAGES = Tile::STAGES;
    constexpr int NS = BK / 8;  // n tiles of S
    __shared__ __align__(128) uint16_t smem[2 * STAGES * Tile::TILE_ELEMS];
    uint16_t* Ks = smem;                                // stage st at Ks + st·TILE_ELEMS
    uint16_t* Vs = smem + STAGES * Tile::TILE_ELEMS;

    const int tilesQ = (T + TC_ROWS - 1) / TC_ROWS;
    const int bh = blockIdx.x / tilesQ;  // consecutive blocks share (b, h): its K and V stay in L2
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int row0 = (blockIdx.x % tilesQ) * TC_ROWS + warp * 16;  // the warp's first query row
    const int64_t headBase = (int64_t)bh * T * DH;
    const uint16_t* kHead = k + headBase;
    const uint16_t* vHead = v + headBase;
    const int nTiles = (T + BK - 1) / BK;

    tc_zero_padding<DH>(smem, 2 * STAGES * BK);
    tc_load_tile_async<DH, BK>(Ks, kHead, 0, T);
    tc_load_tile_async<DH, BK>(Vs, vHead, 0, T);
    tc_cp_async_commit();

    uint32_t qa[D::KSTEPS][4];
    tc_load_a_rows<DH>(qa, q + headBase, row0, T);

    float o[D::DTILES][4];
#pragma unroll
    for (int n = 0; n < D::DTILES; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY;  // running max of rows g and g+8 (log2 units)
    float l0 = 0.0f, l1 = 0.0f;            // this lane's part of the running sums
    const float sl2 = scale * TC_LOG2E;

    for (int it = 0; it < nTiles; it++) {
        const int st = STAGES == 2 ? (it & 1) : 0;
        if (STAGES == 2 && it + 1 < nTiles) {
            // The other stage was last read in iteration it-1, which ended with a barrier.
            tc_load_tile_async<DH, BK>(Ks + (st ^ 1) * Tile::TILE_ELEMS, kHead, (it + 1) * BK, T);
            tc_load_tile_async<DH, BK>(Vs + (st ^ 1) * Tile::TILE_ELEMS, vHead, (it + 1) * BK, T);
            tc_cp_async_commit();
            tc_cp_async_wait<1>();
        } else {
            tc_cp_async_wait<0>();
        }
        __syncthreads();
        const uint16_t* Kt = Ks + st * Tile::TILE_ELEMS;
        const uint16_t* Vt = Vs + st * Tile::TILE_ELEMS;
        const int kb = it * BK;

        float s[NS][4];
#pragma unroll
        for (int n = 0; n < NS; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D::KSTEPS; kk++) tc_mma_a_times_tile_t<DH, BK>(s, qa[kk], Kt, kk);

        float mx0 = -INFINITY, mx1 = -INFINITY;
        const bool tail = kb + BK > T;
#pragma unroll
        for (int n = 0; n < NS; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = kb + n * 8 + 2 * t + (e & 1);
                s[n][e] = (tail && key >= T) ? -INFINITY : s[n][e] * sl2;
            }
            mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
            mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
        }
        // Key kb < T is valid, so the new maxima are finite; before the first tile m = −inf and alpha = 0 scales
        // the zero accumulators.
        const float mNew0 = fmaxf(m0, tc_quad_max(mx0));
        const float mNew1 = fmaxf(m1, tc_quad_max(mx1));
        const float alpha0 = tc_exp2(m0 - mNew0), alpha1 = tc_exp2(m1 - mNew1);
        m0 = mNew0;
        m1 = mNew1;
        float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
        for (int n = 0; n < NS; n++) {
            s[n][0] = tc_exp2(s[n][0] - mNew0);
            s[n][1] = tc_exp2(s[n][1] - mNew0);
            s[n][2] = tc_exp2(s[n][2] - mNew1);
            s[n][3] = tc_exp2(s[n][3] - mNew1);
            rs0 += s[n][0] + s[n][1];
            rs1 += s[n][2] + s[n][3];
        }
        l0 = l0 * alpha0 + rs0;
        l1 = l1 * alpha1 + rs1;
#pragma unroll
        for (int n = 0; n < D::DTILES; n++) {
            o[n][0] *= alpha0;
            o[n][1] *= alpha0;
            o[n][2] *= alpha1;
            o[n][3] *= alpha1;
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t pa[4];
            tc_pack_a(pa, s[2 * kk], s[2 * kk + 1]);
            tc_mma_a_times_tile_rows<DH>(o, pa, Vt, kk * 16);
        }
        __syncthreads();  // every warp is done with this stage before it is refilled
        if (STAGES == 1 && it + 1 < nTiles) {
            tc_load_tile_async<DH, BK>(Ks, kHead, (it + 1) * BK, T);
            tc_load_tile_async<DH, BK>(Vs, vHead, (it + 1) * BK, T);
            tc_cp_async_commit();
        }
    }

    l0 = tc_quad_sum(l0);
    l1 = tc_quad_sum(l1);
    const int b = bh / H, h = bh % H;
    const int rowA = row0 + g, rowB = row0 + g + 8;
    const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
#pragma unroll
    for (int n = 0; n < D::DTILES; n++) {
        const int d = n * 8 + 2 * t;
        if (rowA < T) tc_store_pair(out, (((int64_t)b * T + rowA) * H + h) * DH + d, o[n][0] * inv0, o[n][1] * inv0,
                                    outBf16);
        if (rowB < T) tc_store_pair(out, (((int64_t)b * T + rowB) * H + h) * DH + d, o[n][2] * inv1, o[n][3] * inv1,
                                    outBf16);
    }
    if (lse != nullptr && t == 0) {
        if (rowA < T) lse[(int64_t)bh * T + rowA] = m0 * TC_LN2 + logf(l0);
        if (rowB < T) lse[(int64_t)bh * T + rowB] = m1 * TC_LN2 + logf(l1);
    }
}

// Grid: ceil(T / 64) · B·H blocks of 128 threads, no dynamic shared memory. q, k, v 16-byte aligned, out 8-byte
// aligned (checked by the launcher); lse may be nullptr; outBf16 != 0: out is bf16, else fp32.
#define ATTENTION_FWD_BF16_V1(DH)                                                                                   \
    extern "C" __global__ void __launch_bounds__(TC_THREADS, TcFwdTilingV1<DH>::MIN_BLOCKS)                         \
            attention_fwd_bf16_v1_dh##DH(                                                                            \
            const uint16_t* __restrict__ q, const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,       \
            void* __restrict__ out, float* __restrict__ lse, int H, int T, float scale, int outBf16) {            \
        attention_fwd_bf16_v1_body<DH>(q, k, v, out, lse, H, T, scale, outBf16 != 0);                                \
    }

ATTENTION_FWD_BF16_V1(16)
ATTENTION_FWD_BF16_V1(32)
ATTENTION_FWD_BF16_V1(64)
ATTENTION_FWD_BF16_V1(72)
ATTENTION_FWD_BF16_V1(128)
