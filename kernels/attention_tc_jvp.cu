// Fused attention forward + tangent (JVP) on tensor cores, the bf16 sibling of kernels/attention_jvp.cu with the same
// contract: per batch, head and query row i, with S_j = s·q·k_j, Ṡ_j = s·(q̇·k_j + q·k̇_j), P = softmax(S),
// μ = Σ_j P_j Ṡ_j:
//   out_i = Σ_j P_j v_j,   outDot_i = Σ_j P_j (v̇_j + Ṡ_j v_j) − μ·out_i,   lse_i = log Σ_j e^{S_j}
// in one pass over the keys. q, k, v and the tangents bf16 [B, H, T, dh] (a tangent may be nullptr: zero); out and
// outDot [B, T, H·dh] fp32 or bf16 (outBf16 applies to both); lse [B, H, T] fp32 (may be nullptr).
// Launcher: facm.backend.cuda.CudaTensorCoreAttention; CPU reference: facm.backend.cpu.CpuAttentionJvp.
//
// The forward of attention_tc.cu with three accumulators: per key tile S = Q·Kᵀ and Ṡ = Q̇·Kᵀ + Q·K̇ᵀ (one fp32
// accumulator, two mma chains), the online softmax of S, then O += P·V and Ȯ += P·V̇ + (P⊙Ṡ)·V, where P and P⊙Ṡ
// are packed to bf16 A fragments; the running max rescales o, ȯ, l and μ·l together. Q and Q̇ rows live in
// registers; K, V, K̇, V̇ tiles (32 keys for dh ≤ 80, 16 for dh 128, where o and ȯ alone take 128 registers)
// stream through shared memory, double-buffered with cp.async.
#include "attention_tc_common.cuh"

template <int DH>
struct TcJvpTiling {
    static constexpr int BK = DH <= 80 ? 32 : 16;
    static constexpr int TILE_ELEMS = BK * TcDims<DH>::LDS;
    static_assert(2 * 4 * TILE_ELEMS * 2 <= 48 * 1024, "K, V, K̇, V̇ tiles exceed static shared memory");
};

template <int DH>
__device__ __forceinline__ void attention_jvp_load_stage(uint16_t* stage, const uint16_t* kHead,
                                                         const uint16_t* vHead, const uint16_t* kdHead,
                                                         const uint16_t* vdHead, int first, int T) {
    constexpr int BK = TcJvpTiling<DH>::BK;
    constexpr int TE = TcJvpTiling<DH>::TILE_ELEMS;
    tc_load_tile_async<DH, BK>(stage, kHead, first, T);
    tc_load_tile_async<DH, BK>(stage + TE, vHead, first, T);
    tc_load_tile_async<DH, BK>(stage + 2 * TE, kdHead, first, T);
    tc_load_tile_async<DH, BK>(stage + 3 * TE, vdHead, first, T);
    tc_cp_async_commit();
}

template <int DH>
__device__ __forceinline__ void attention_jvp_bf16_body(const uint16_t* __restrict__ q,
                                                        const uint16_t* __restrict__ k,
                                                        const uint16_t* __restrict__ v,
                                                        const uint16_t* __restrict__ qDot,
                                                        const uint16_t* __restrict__ kDot,
                                                        const uint16_t* __restrict__ vDot, void* __restrict__ out,
                                                        void* __restrict__ outDot, float* __restrict__ lse, int H,
                                                        int T, float scale, bool outBf16) {
    using D = TcDims<DH>;
    using Tile = TcJvpTiling<DH>;
    constexpr int BK = Tile::BK;
    constexpr int TE = Tile::TILE_ELEMS;
    constexpr int NS = BK / 8;
    __shared__ __align__(128) uint16_t smem[2 * 4 * TE];  // stage st: K, V, K̇, V̇ at smem + (4·st + i)·TE

    const int tilesQ = (T + TC_ROWS - 1) / TC_ROWS;
    const int bh = blockIdx.x / tilesQ;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int row0 = (blockIdx.x % tilesQ) * TC_ROWS + warp * 16;
    const int64_t headBase = (int64_t)bh * T * DH;
    const uint16_t* kHead = k + headBase;
    const uint16_t* vHead = v + headBase;
    const uint16_t* kdHead = kDot != nullptr ? kDot + headBase : nullptr;
    const uint16_t* vdHead = vDot != nullptr ? vDot + headBase : nullptr;
    const int nTiles = (T + BK - 1) / BK;

    tc_zero_padding<DH>(smem, 2 * 4 * BK);
    attention_jvp_load_stage<DH>(smem, kHead, vHead, kdHead, vdHead, 0, T);

    uint32_t qa[D::KSTEPS][4], qda[D::KSTEPS][4];
    tc_load_a_rows<DH>(qa, q + headBase, row0, T);
    tc_load_a_rows<DH>(qda, qDot != nullptr ? qDot + headBase : nullptr, row0, T);

    float o[D::DTILES][4], od[D::DTILES][4];
#pragma unroll
    for (int n = 0; n < D::DTILES; n++) {
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
        od[n][0] = od[n][1] = od[n][2] = od[n][3] = 0.0f;
    }
    float m0 = -INFINITY, m1 = -INFINITY;  // running max (log2 units) of rows g and g+8
    float l0 = 0.0f, l1 = 0.0f;            // this lane's part of Σ e^{S−m}
    float mu0 = 0.0f, mu1 = 0.0f;          // this lane's part of Σ e^{S−m} Ṡ (natural units)
    const float sl2 = scale * TC_LOG2E;

    for (int it = 0; it < nTiles; it++) {
        const int st = it & 1;
        if (it + 1 < nTiles) {
            attention_jvp_load_stage<DH>(smem + 4 * (st ^ 1) * TE, kHead, vHead, kdHead, vdHead, (it + 1) * BK, T);
            tc_cp_async_wait<1>();
        } else {
            tc_cp_async_wait<0>();
        }
        __syncthreads();
        const uint16_t* Kt = smem + 4 * st * TE;
        const uint16_t* Vt = Kt + TE;
        const uint16_t* Kdt = Kt + 2 * TE;
        const uint16_t* Vdt = Kt + 3 * TE;
        const int kb = it * BK;

        float s[NS][4], sd[NS][4];
#pragma unroll
        for (int n = 0; n < NS; n++) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
            sd[n][0] = sd[n][1] = sd[n][2] = sd[n][3] = 0.0f;
        }
#pragma unroll
        for (int kk = 0; kk < D::KSTEPS; kk++) {
            tc_mma_a_times_tile_t<DH, BK>(s, qa[kk], Kt, kk);
            tc_mma_a_times_tile_t<DH, BK>(sd, qda[kk], Kt, kk);
            tc_mma_a_times_tile_t<DH, BK>(sd, qa[kk], Kdt, kk);
        }

        float mx0 = -INFINITY, mx1 = -INFINITY;
        const bool tail = kb + BK > T;
#pragma unroll
        for (int n = 0; n < NS; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = kb + n * 8 + 2 * t + (e & 1);
                const bool masked = tail && key >= T;
                s[n][e] = masked ? -INFINITY : s[n][e] * sl2;
                sd[n][e] = masked ? 0.0f : sd[n][e] * scale;  // Ṡ in natural units
            }
            mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
            mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
        }
        const float mNew0 = fmaxf(m0, tc_quad_max(mx0));
        const float mNew1 = fmaxf(m1, tc_quad_max(mx1));
        const float alpha0 = tc_exp2(m0 - mNew0), alpha1 = tc_exp2(m1 - mNew1);
        m0 = mNew0;
        m1 = mNew1;
        float rs0 = 0.0f, rs1 = 0.0f, ms0 = 0.0f, ms1 = 0.0f;
#pragma unroll
        for (int n = 0; n < NS; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float p = tc_exp2(s[n][e] - (e < 2 ? mNew0 : mNew1));
                const float ps = p * sd[n][e];
                if (e < 2) {
                    rs0 += p;
                    ms0 += ps;
                } else {
                    rs1 += p;
                    ms1 += ps;
                }
                s[n][e] = p;
                sd[n][e] = ps;
            }
        }
        l0 = l0 * alpha0 + rs0;
        l1 = l1 * alpha1 + rs1;
        mu0 = mu0 * alpha0 + ms0;
        mu1 = mu1 * alpha1 + ms1;
#pragma unroll
        for (int n = 0; n < D::DTILES; n++) {
            o[n][0] *= alpha0;
            o[n][1] *= alpha0;
            o[n][2] *= alpha1;
            o[n][3] *= alpha1;
            od[n][0] *= alpha0;
            od[n][1] *= alpha0;
            od[n][2] *= alpha1;
            od[n][3] *= alpha1;
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t pa[4], psa[4];
            tc_pack_a(pa, s[2 * kk], s[2 * kk + 1]);
            tc_pack_a(psa, sd[2 * kk], sd[2 * kk + 1]);
            tc_mma_a_times_tile_rows<DH>(o, pa, Vt, kk * 16);
            tc_mma_a_times_tile_rows<DH>(od, pa, Vdt, kk * 16);
            tc_mma_a_times_tile_rows<DH>(od, psa, Vt, kk * 16);
        }
        __syncthreads();  // every warp is done with this stage before it is refilled
    }

    l0 = tc_quad_sum(l0);
    l1 = tc_quad_sum(l1);
    mu0 = tc_quad_sum(mu0);
    mu1 = tc_quad_sum(mu1);
    const int b = bh / H, h = bh % H;
    const int rowA = row0 + g, rowB = row0 + g + 8;
    const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
    const float muN0 = mu0 * inv0, muN1 = mu1 * inv1;
#pragma unroll
    for (int n = 0; n < D::DTILES; n++) {
        const int d = n * 8 + 2 * t;
        if (rowA < T) {
            const int64_t at = (((int64_t)b * T + rowA) * H + h) * DH + d;
            const float x0 = o[n][0] * inv0, x1 = o[n][1] * inv0;
            tc_store_pair(out, at, x0, x1, outBf16);
            tc_store_pair(outDot, at, fmaf(-muN0, x0, od[n][0] * inv0), fmaf(-muN0, x1, od[n][1] * inv0), outBf16);
        }
        if (rowB < T) {
            const int64_t at = (((int64_t)b * T + rowB) * H + h) * DH + d;
            const float x0 = o[n][2] * inv1, x1 = o[n][3] * inv1;
            tc_store_pair(out, at, x0, x1, outBf16);
            tc_store_pair(outDot, at, fmaf(-muN1, x0, od[n][2] * inv1), fmaf(-muN1, x1, od[n][3] * inv1), outBf16);
        }
    }
    if (lse != nullptr && t == 0) {
        if (rowA < T) lse[(int64_t)bh * T + rowA] = m0 * TC_LN2 + logf(l0);
        if (rowB < T) lse[(int64_t)bh * T + rowB] = m1 * TC_LN2 + logf(l1);
    }
}

// Grid: ceil(T / 64) · B·H blocks of 128 threads, no dynamic shared memory. q, k, v and the tangents 16-byte
// aligned, out and outDot 8-byte aligned (the launcher checks 16); lse and any tangent may be nullptr.
#define ATTENTION_JVP_BF16(DH)                                                                                   \
    extern "C" __global__ void __launch_bounds__(TC_THREADS) attention_jvp_bf16_dh##DH(                           \
            const uint16_t* __restrict__ q, const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,       \
            const uint16_t* __restrict__ qDot, const uint16_t* __restrict__ kDot,                                 \
            const uint16_t* __restrict__ vDot, void* __restrict__ out, void* __restrict__ outDot,                 \
            float* __restrict__ lse, int H, int T, float scale, int outBf16) {                                    \
        attention_jvp_bf16_body<DH>(q, k, v, qDot, kDot, vDot, out, outDot, lse, H, T, scale, outBf16 != 0);      \
    }

ATTENTION_JVP_BF16(16)
ATTENTION_JVP_BF16(32)
ATTENTION_JVP_BF16(64)
ATTENTION_JVP_BF16(72)
ATTENTION_JVP_BF16(128)
