// Softmax attention forward on tensor cores (bf16 operands, fp32 accumulation and fp32 online softmax), the bf16
// sibling of attention_fwd_f32_dh<dh> in kernels/attention.cu with the same contract: per batch and head
// O = softmax(q kᵀ·scale) v, no mask; q, k, v bf16 [B, H, T, dh] -> out [B, T, H·dh] (fp32 or bf16, outBf16) and
// lse [B, H, T] fp32 (natural log of the sum of exp of the SCALED scores; may be nullptr).
// Launcher: facm.backend.cuda.CudaTensorCoreAttention. CPU reference: facm.backend.cpu.CpuAttention on the same
// (bf16-valued) inputs. Building blocks and fragment layouts: attention_tc_common.cuh.
//
// FlashAttention-2 layout: a block of TcFwdTiling::WARPS warps owns TcFwdTiling::ROWS query rows of one (b, h); each
// warp owns MT m tiles of 16 rows (MT = 2 for dh ≤ 80: 32 rows) and keeps their Q rows as bf16 A fragments in
// registers (read once from global). K/V tiles (BK keys) stream through shared memory with cp.async in a ring of
// STAGES buffers (prefetch distance STAGES − 1, one barrier per tile). Per tile: S = Q·Kᵀ (m16n8k16, fp32
// accumulators; m16n8k8 for the last 8 columns of dh 72), online softmax on the accumulators in log2 units
// (scale·log2 e applied to the fp32 scores, ex2.approx), P packed from the accumulators into bf16 A fragments (no
// shared-memory round trip), and O += P·V with V read through ldmatrix.trans. The running max and sum are per row
// (lanes of a quad share a row).
// Why two m tiles per warp: with one, every ldmatrix.x4 of K or V (512 bytes, 4 cycles of the SM's 128 B/cycle
// shared-memory port) fed two mma.sync, i.e. 2 cycles of shared memory per mma against ~1.5 cycles per mma of tensor
// throughput: the old kernel (16 rows per warp) was bound by shared-memory bandwidth (Nsight: 46 % SM throughput).
// With 32 rows each fragment feeds four mma; a block of 128 query rows also halves the K/V traffic per query from L2.
// P enters the P·V product rounded to bf16 while the normalizer l sums the fp32 P: the standard FlashAttention
// choice; the output differs from an all-fp32 computation by about 2^-9 of its magnitude (tests allow 1e-2).
// Tails: keys past T are zero-filled by cp.async and their scores set to −inf; query rows past T read q = 0 and are
// not stored.
#include "attention_tc_common.cuh"

// Tunables (the harness builds other values for timing; the jar uses the defaults). The Java launcher mirrors
// ROWS and THREADS per head dimension (CudaTensorCoreAttention.forwardRows / FORWARD_THREADS).
#ifndef TC_FWD_WARPS
#define TC_FWD_WARPS 4
#endif
// 64 keys per tile: on an H200 (tools/attention-harness, 2026-11-26) 0.402 ms vs 0.475 ms at 32 keys for
// B256·H16·T256·dh72 (1.24x the previous kernel instead of 1.05x), dh 64 0.352 vs 0.427 ms; dh 128 stays at 32.
#ifndef TC_FWD_BK
#define TC_FWD_BK 64
#endif
#ifndef TC_FWD_MIN_BLOCKS
#define TC_FWD_MIN_BLOCKS 2
#endif

template <int DH>
struct TcFwdTiling {
    // dh 128 keeps one m tile: two would need 128 registers of O accumulators plus 64 of Q fragments.
    static constexpr int MT = DH <= 80 ? 2 : 1;
    static constexpr int WARPS = TC_FWD_WARPS;
    static constexpr int THREADS = 32 * WARPS;
    static constexpr int ROWS = 16 * MT * WARPS;  // query rows per block
    // Keys per K/V tile; at most 32 for dh 128, whose two stages of 64 keys would not fit the static 48 KB.
    static constexpr int BK = DH > 80 && TC_FWD_BK > 32 ? 32 : TC_FWD_BK;
    static constexpr int TILE_ELEMS = BK * TcDims<DH>::LDS;
    static constexpr int STAGE_ELEMS = 2 * TILE_ELEMS;  // K, then V
    // Three stages where they fit the static 48 KB (dh ≤ 80 at 32 keys: 33 KB), else two.
    static constexpr int STAGES = 3 * STAGE_ELEMS * 2 <= 48 * 1024 ? 3 : 2;
    static constexpr int MIN_BLOCKS = DH <= 80 ? TC_FWD_MIN_BLOCKS : 2;  // per SM, for __launch_bounds__
    static_assert(STAGES * STAGE_ELEMS * 2 <= 48 * 1024, "K/V tiles exceed static shared memory");
    static_assert(BK % 16 == 0, "P·V takes keys 16 at a time");
    static_assert(DH % 16 == 0 || BK % 32 == 0, "the dh 72 k8 tail takes n tiles four at a time");
};

// Rows [first, first + BK) of a head-major bf16 [T, DH] matrix into a shared tile, all THREADS threads taking 16-byte
// pieces; rows at or past T become zeros. Asynchronous: the caller commits and waits.
template <int DH, int BK, int THREADS>
__device__ __forceinline__ void attention_fwd_load_tile(uint16_t* tile, const uint16_t* __restrict__ src, int first,
                                                        int T) {
    using D = TcDims<DH>;
    for (int c = threadIdx.x; c < BK * D::CHUNKS; c += THREADS) {
        const int r = c / D::CHUNKS;
        const int col = (c % D::CHUNKS) * 8;
        const bool valid = first + r < T;
        tc_cp_async16(tc_smem_addr(tile + r * D::LDS + col), valid ? src + (int64_t)(first + r) * DH + col : src,
                      valid);
    }
}

// s[m][j] += Q(m tile m) · Kᵀ for the BK keys of a shared K tile: each B fragment loaded once, used by all MT m tiles.
// Fragment addressing as tc_mma_a_times_tile_t (attention_tc_common.cuh), including the m16n8k8 tail of dh 72.
template <int DH, int MT, int BK>
__device__ __forceinline__ void attention_fwd_scores(float (&s)[MT][BK / 8][4],
                                                     const uint32_t (&qa)[MT][TcDims<DH>::KSTEPS][4],
                                                     const uint16_t* Kt) {
    using D = TcDims<DH>;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kk = 0; kk < D::KSTEPS; kk++) {
        if (DH % 16 != 0 && kk == D::KSTEPS - 1) {
#pragma unroll
            for (int n = 0; n < BK / 8; n += 4) {
                uint32_t b[4];
                tc_ldsm_x4(tc_smem_addr(Kt + (n * 8 + lane) * D::LDS + kk * 16), b[0], b[1], b[2], b[3]);
#pragma unroll
                for (int m = 0; m < MT; m++) {
#pragma unroll
                    for (int j = 0; j < 4; j++) tc_mma_k8(s[m][n + j], qa[m][kk][0], qa[m][kk][1], b[j]);
                }
            }
        } else {
#pragma unroll
            for (int n = 0; n < BK / 8; n += 2) {
                const int r = n * 8 + (lane & 7) + 8 * (lane >> 4);
                uint32_t b0, b1, b2, b3;
                tc_ldsm_x4(tc_smem_addr(Kt + r * D::LDS + kk * 16 + 8 * ((lane >> 3) & 1)), b0, b1, b2, b3);
#pragma unroll
                for (int m = 0; m < MT; m++) {
                    tc_mma(s[m][n], qa[m][kk], b0, b1);
                    tc_mma(s[m][n + 1], qa[m][kk], b2, b3);
                }
            }
        }
    }
}

// o[m] += P(m tile m, keys kRow0..kRow0+15) · V rows kRow0..kRow0+15 (ldmatrix.trans), each B fragment used by all
// MT m tiles. Addressing as tc_mma_a_times_tile_rows.
template <int DH, int MT>
__device__ __forceinline__ void attention_fwd_pv(float (&o)[MT][TcDims<DH>::DTILES][4], const uint32_t (&pa)[MT][4],
                                                 const uint16_t* Vt, int kRow0) {
    using D = TcDims<DH>;
    const int lane = threadIdx.x & 31;
    const int r = kRow0 + (lane & 7) + 8 * ((lane >> 3) & 1);
#pragma unroll
    for (int n = 0; n + 1 < D::DTILES; n += 2) {
        uint32_t b0, b1, b2, b3;
        tc_ldsm_x4_trans(tc_smem_addr(Vt + r * D::LDS + n * 8 + 8 * (lane >> 4)), b0, b1, b2, b3);
#pragma unroll
        for (int m = 0; m < MT; m++) {
            tc_mma(o[m][n], pa[m], b0, b1);
            tc_mma(o[m][n + 1], pa[m], b2, b3);
        }
    }
    if (D::DTILES % 2 == 1) {
        uint32_t b0, b1;
        tc_ldsm_x2_trans(tc_smem_addr(Vt + r * D::LDS + (D::DTILES - 1) * 8), b0, b1);
#pragma unroll
        for (int m = 0; m < MT; m++) tc_mma(o[m][D::DTILES - 1], pa[m], b0, b1);
    }
}

template <int DH>
__device__ __forceinline__ void attention_fwd_bf16_body(const uint16_t* __restrict__ q,
                                                        const uint16_t* __restrict__ k,
                                                        const uint16_t* __restrict__ v, void* __restrict__ out,
                                                        float* __restrict__ lse, int H, int T, float scale,
                                                        bool outBf16) {
    using D = TcDims<DH>;
    using Tile = TcFwdTiling<DH>;
    constexpr int MT = Tile::MT;
    constexpr int BK = Tile::BK;
    constexpr int STAGES = Tile::STAGES;
    constexpr int NS = BK / 8;  // n tiles of S
    __shared__ __align__(128) uint16_t smem[STAGES * Tile::STAGE_ELEMS];  // stage st: K, V at smem + st·STAGE_ELEMS

    const int tilesQ = (T + Tile::ROWS - 1) / Tile::ROWS;
    const int bh = blockIdx.x / tilesQ;  // consecutive blocks share (b, h): its K and V stay in L2
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int row0 = (blockIdx.x % tilesQ) * Tile::ROWS + warp * 16 * MT;  // the warp's first query row
    const int64_t headBase = (int64_t)bh * T * DH;
    const uint16_t* kHead = k + headBase;
    const uint16_t* vHead = v + headBase;
    const int nTiles = (T + BK - 1) / BK;

    // Columns DH..DHP-1 of every tile row are zeros (never written by the loads). Visible after the first barrier.
    if constexpr (D::DHP > DH) {
        constexpr int PAD = D::DHP - DH;
        for (int i = threadIdx.x; i < STAGES * 2 * BK * PAD; i += Tile::THREADS) {
            smem[(i / PAD) * D::LDS + DH + i % PAD] = 0;
        }
    }
    // Prologue: tiles 0 .. STAGES-2, one commit group each (empty groups past the last tile keep the count uniform).
#pragma unroll
    for (int st = 0; st < STAGES - 1; st++) {
        if (st < nTiles) {
            attention_fwd_load_tile<DH, BK, Tile::THREADS>(smem + st * Tile::STAGE_ELEMS, kHead, st * BK, T);
            attention_fwd_load_tile<DH, BK, Tile::THREADS>(smem + st * Tile::STAGE_ELEMS + Tile::TILE_ELEMS, vHead,
                                                           st * BK, T);
        }
        tc_cp_async_commit();
    }

    uint32_t qa[MT][D::KSTEPS][4];
#pragma unroll
    for (int m = 0; m < MT; m++) tc_load_a_rows<DH>(qa[m], q + headBase, row0 + 16 * m, T);

    float o[MT][D::DTILES][4];
    float mx[MT][2], l[MT][2];  // running max of rows g and g+8 (log2 units); this lane's part of the running sums
#pragma unroll
    for (int m = 0; m < MT; m++) {
#pragma unroll
        for (int n = 0; n < D::DTILES; n++) o[m][n][0] = o[m][n][1] = o[m][n][2] = o[m][n][3] = 0.0f;
        mx[m][0] = mx[m][1] = -INFINITY;
        l[m][0] = l[m][1] = 0.0f;
    }
    const float sl2 = scale * TC_LOG2E;

    for (int it = 0; it < nTiles; it++) {
        // Groups committed so far: STAGES − 1 + it; the oldest it + 1 (tile it among them) must be complete.
        tc_cp_async_wait<STAGES - 2>();
        // Tile it is visible to every warp, and every warp is done with tile it − 1, whose stage is refilled next.
        __syncthreads();
        {
            const int next = it + STAGES - 1;
            if (next < nTiles) {
                uint16_t* stage = smem + (next % STAGES) * Tile::STAGE_ELEMS;
                attention_fwd_load_tile<DH, BK, Tile::THREADS>(stage, kHead, next * BK, T);
                attention_fwd_load_tile<DH, BK, Tile::THREADS>(stage + Tile::TILE_ELEMS, vHead, next * BK, T);
            }
            tc_cp_async_commit();
        }
        const uint16_t* Kt = smem + (it % STAGES) * Tile::STAGE_ELEMS;
        const uint16_t* Vt = Kt + Tile::TILE_ELEMS;
        const int kb = it * BK;

        float s[MT][NS][4];
#pragma unroll
        for (int m = 0; m < MT; m++) {
#pragma unroll
            for (int n = 0; n < NS; n++) s[m][n][0] = s[m][n][1] = s[m][n][2] = s[m][n][3] = 0.0f;
        }
        attention_fwd_scores<DH, MT, BK>(s, qa, Kt);

        const bool tail = kb + BK > T;
        uint32_t pa[MT][BK / 16][4];
#pragma unroll
        for (int m = 0; m < MT; m++) {
            float tileMax0 = -INFINITY, tileMax1 = -INFINITY;
#pragma unroll
            for (int n = 0; n < NS; n++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int key = kb + n * 8 + 2 * t + (e & 1);
                    s[m][n][e] = (tail && key >= T) ? -INFINITY : s[m][n][e] * sl2;
                }
                tileMax0 = fmaxf(tileMax0, fmaxf(s[m][n][0], s[m][n][1]));
                tileMax1 = fmaxf(tileMax1, fmaxf(s[m][n][2], s[m][n][3]));
            }
            // Key kb < T is valid, so the new maxima are finite; before the first tile m = −inf and alpha = 0
            // scales the zero accumulators.
            const float mNew0 = fmaxf(mx[m][0], tc_quad_max(tileMax0));
            const float mNew1 = fmaxf(mx[m][1], tc_quad_max(tileMax1));
            const float alpha0 = tc_exp2(mx[m][0] - mNew0), alpha1 = tc_exp2(mx[m][1] - mNew1);
            mx[m][0] = mNew0;
            mx[m][1] = mNew1;
            float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
            for (int n = 0; n < NS; n++) {
                s[m][n][0] = tc_exp2(s[m][n][0] - mNew0);
                s[m][n][1] = tc_exp2(s[m][n][1] - mNew0);
                s[m][n][2] = tc_exp2(s[m][n][2] - mNew1);
                s[m][n][3] = tc_exp2(s[m][n][3] - mNew1);
                rs0 += s[m][n][0] + s[m][n][1];
                rs1 += s[m][n][2] + s[m][n][3];
            }
            l[m][0] = l[m][0] * alpha0 + rs0;
            l[m][1] = l[m][1] * alpha1 + rs1;
#pragma unroll
            for (int n = 0; n < D::DTILES; n++) {
                o[m][n][0] *= alpha0;
                o[m][n][1] *= alpha0;
                o[m][n][2] *= alpha1;
                o[m][n][3] *= alpha1;
            }
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) tc_pack_a(pa[m][kk], s[m][2 * kk], s[m][2 * kk + 1]);
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t pk[MT][4];
#pragma unroll
            for (int m = 0; m < MT; m++) {
#pragma unroll
                for (int i = 0; i < 4; i++) pk[m][i] = pa[m][kk][i];
            }
            attention_fwd_pv<DH, MT>(o, pk, Vt, kk * 16);
        }
    }
    tc_cp_async_wait<0>();  // only empty groups can be left; nothing may be in flight when the block exits

    const int b = bh / H, h = bh % H;
#pragma unroll
    for (int m = 0; m < MT; m++) {
        const float l0 = tc_quad_sum(l[m][0]), l1 = tc_quad_sum(l[m][1]);
        const int rowA = row0 + 16 * m + g, rowB = rowA + 8;
        const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
#pragma unroll
        for (int n = 0; n < D::DTILES; n++) {
            const int d = n * 8 + 2 * t;
            if (rowA < T) {
                tc_store_pair(out, (((int64_t)b * T + rowA) * H + h) * DH + d, o[m][n][0] * inv0, o[m][n][1] * inv0,
                              outBf16);
            }
            if (rowB < T) {
                tc_store_pair(out, (((int64_t)b * T + rowB) * H + h) * DH + d, o[m][n][2] * inv1, o[m][n][3] * inv1,
                              outBf16);
            }
        }
        if (lse != nullptr && t == 0) {
            if (rowA < T) lse[(int64_t)bh * T + rowA] = mx[m][0] * TC_LN2 + logf(l0);
            if (rowB < T) lse[(int64_t)bh * T + rowB] = mx[m][1] * TC_LN2 + logf(l1);
        }
    }
}

// Grid: ceil(T / TcFwdTiling<DH>::ROWS) · B·H blocks of TcFwdTiling<DH>::THREADS threads, no dynamic shared memory
// (dh ≤ 80: 128 rows, 128 threads; dh 128: 64 rows, 128 threads). A block of another size would leave rows
// unwritten, so it traps. q, k, v 16-byte aligned, out 8-byte aligned (checked by the launcher); lse may be nullptr;
// outBf16 != 0: out is bf16, else fp32.
#define ATTENTION_FWD_BF16(DH)                                                                                     \
    extern "C" __global__ void __launch_bounds__(TcFwdTiling<DH>::THREADS, TcFwdTiling<DH>::MIN_BLOCKS)            \
            attention_fwd_bf16_dh##DH(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,               \
                                      const uint16_t* __restrict__ v, void* __restrict__ out,                       \
                                      float* __restrict__ lse, int H, int T, float scale, int outBf16) {            \
        if (blockDim.x != TcFwdTiling<DH>::THREADS || blockDim.y != 1 || blockDim.z != 1) __trap();                  \
        attention_fwd_bf16_body<DH>(q, k, v, out, lse, H, T, scale, outBf16 != 0);                                  \
    }

// The head dimensions of kernels/attention.cu (CudaAttention.SUPPORTED_HEAD_DIMS).
ATTENTION_FWD_BF16(16)
ATTENTION_FWD_BF16(32)
ATTENTION_FWD_BF16(64)
ATTENTION_FWD_BF16(72)
ATTENTION_FWD_BF16(128)
