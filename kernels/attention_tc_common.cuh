// Building blocks of the bf16 tensor-core attention kernels (attention_tc.cu forward, attention_tc_bwd.cu backward,
// attention_tc_jvp.cu forward + tangent): mma.sync m16n8k16 (bf16 in, fp32 accumulate), ldmatrix, cp.async, and the
// shared-memory tile layout they agree on. sm_80+ only (the fatbin carries sm_80 and sm_90 SASS).
//
// Fragment layouts of mma.m16n8k16.row.col (g = lane / 4, t = lane % 4), which every kernel below relies on:
//   A 16×16 (4 regs of 2 bf16): a0 = (row g, cols 2t, 2t+1), a1 = (row g+8, same cols), a2 = (row g, cols 2t+8, +9),
//                               a3 = (row g+8, cols 2t+8, +9)
//   B 16×8  (2 regs):           b0 = (k rows 2t, 2t+1; col g), b1 = (k rows 2t+8, 2t+9; col g)
//   C 16×8  (4 fp32):           c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g+8, cols 2t, 2t+1)
// So the accumulator of two adjacent 8-column tiles is, after packing to bf16, exactly the A fragment of one 16-wide
// k step: the FlashAttention-2 register repack of P (no trip through shared memory).
//
// Shared tiles: R rows of a [rows, dh] bf16 matrix, row stride TC_LDS(dh) = DHP + 8 elements, DHP = dh rounded up to
// a multiple of 16 (the k extent of Q·Kᵀ steps; columns dh..DHP-1 hold zeros, so dh = 72 runs five k steps of 16 on
// zero-padded data). The +8 elements (16 bytes) make the row stride an odd number of 16-byte units, so the eight row
// addresses of one 8×8 ldmatrix fall in eight different bank groups (no conflicts) for every DHP.
#pragma once

#include "common.cuh"

#define TC_THREADS 128   // four warps; each owns 16 rows (queries or keys) of the block's 64
#define TC_ROWS 64
#define TC_LOG2E 1.4426950408889634f
#define TC_LN2 0.6931471805599453f

template <int DH>
struct TcDims {
    static_assert(DH % 8 == 0 && DH >= 16 && DH <= 128, "head dimension must be a multiple of 8 in [16, 128]");
    static constexpr int DHP = (DH + 15) / 16 * 16;  // padded k extent of Q·Kᵀ
    static constexpr int LDS = DHP + 8;              // shared row stride in bf16 elements
    static constexpr int KSTEPS = DHP / 16;          // k steps of Q·Kᵀ
    static constexpr int DTILES = DH / 8;            // n tiles of P·V (9 for dh 72)
    static constexpr int CHUNKS = DH / 8;            // 16-byte pieces per global row
};

__device__ __forceinline__ uint32_t tc_smem_addr(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void tc_ldsm_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

__device__ __forceinline__ void tc_ldsm_x4_trans(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                                 uint32_t& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

__device__ __forceinline__ void tc_ldsm_x2_trans(uint32_t addr, uint32_t& r0, uint32_t& r1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r0), "=r"(r1) : "r"(addr));
}

// c += a·b, 16×8×16, bf16 operands, fp32 accumulators.
__device__ __forceinline__ void tc_mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// c += a·b, 16×8×8 (the last half k step of an odd number of 8-column groups, dh 72): a0, a1 are the first two
// registers of a 16-wide A fragment and b0 the first of a B fragment, the same elements (cols / k rows 2t, 2t+1).
__device__ __forceinline__ void tc_mma_k8(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(b0));
}

// Two floats as bf16x2 (round to nearest even), lo in the low half: the element order of the fragments above.
__device__ __forceinline__ uint32_t tc_pack_bf16(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ float tc_bf16_lo(uint32_t x) { return __uint_as_float(x << 16); }
__device__ __forceinline__ float tc_bf16_hi(uint32_t x) { return __uint_as_float(x & 0xFFFF0000u); }

// 16 bytes global -> shared, asynchronously; valid == false writes 16 zero bytes (src is not read then, but must
// still be a mapped address: callers pass the tensor base).
__device__ __forceinline__ void tc_cp_async16(uint32_t dst, const void* src, bool valid) {
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}

__device__ __forceinline__ void tc_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void tc_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Rows [first, first + R) of a head-major bf16 matrix [T, DH] (row stride DH) into a shared tile; rows at or past T,
// and every row when src is nullptr (a zero tangent), become zeros. Asynchronous: the caller commits and waits.
template <int DH, int R>
__device__ __forceinline__ void tc_load_tile_async(uint16_t* tile, const uint16_t* __restrict__ src, int first,
                                                   int T) {
    using D = TcDims<DH>;
    for (int c = threadIdx.x; c < R * D::CHUNKS; c += TC_THREADS) {
        const int r = c / D::CHUNKS;
        const int col = (c % D::CHUNKS) * 8;
        if (src == nullptr) {  // a zero tangent: plain stores, visible after the caller's barrier
            *reinterpret_cast<uint4*>(tile + r * D::LDS + col) = make_uint4(0u, 0u, 0u, 0u);
            continue;
        }
        const bool valid = first + r < T;
        tc_cp_async16(tc_smem_addr(tile + r * D::LDS + col), valid ? src + (int64_t)(first + r) * DH + col : src,
                      valid);
    }
}

// Columns DH..DHP-1 of `rows` tile rows are zeros (written once; the loaders never touch them).
template <int DH>
__device__ __forceinline__ void tc_zero_padding(uint16_t* smem, int rows) {
    using D = TcDims<DH>;
    constexpr int PAD = D::DHP - DH;
    if constexpr (PAD > 0) {
        for (int i = threadIdx.x; i < rows * PAD; i += TC_THREADS) smem[(i / PAD) * D::LDS + DH + i % PAD] = 0;
    }
}

// Two consecutive elements (d, d+1) of a token-major row that is fp32 or bf16 (isBf16), as floats. d is even, so the
// fp32 read is 8-byte aligned and the bf16 read 4-byte aligned.
__device__ __forceinline__ float2 tc_load_pair(const void* base, int64_t index, bool isBf16) {
    if (isBf16) {
        const uint32_t x = *reinterpret_cast<const uint32_t*>(static_cast<const uint16_t*>(base) + index);
        return make_float2(tc_bf16_lo(x), tc_bf16_hi(x));
    }
    return *reinterpret_cast<const float2*>(static_cast<const float*>(base) + index);
}

/** Both values rounded to bf16 (nearest even) and widened back: what a bf16 tensor-core operand holds. */
__device__ __forceinline__ float2 tc_round_pair_bf16(float2 v) {
    const uint32_t packed = tc_pack_bf16(v.x, v.y);
    return make_float2(tc_bf16_lo(packed), tc_bf16_hi(packed));
}

__device__ __forceinline__ void tc_store_pair(void* base, int64_t index, float a, float b, bool isBf16) {
    if (isBf16) {
        *reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(base) + index) = tc_pack_bf16(a, b);
    } else {
        *reinterpret_cast<float2*>(static_cast<float*>(base) + index) = make_float2(a, b);
    }
}

// A fragments (KSTEPS of them) of 16 rows [row0, row0 + 16) of a head-major bf16 [T, DH] matrix, read straight from
// global memory (each is read once per block, so no staging): rows past T and columns past DH (the k padding) are 0.
template <int DH>
__device__ __forceinline__ void tc_load_a_rows(uint32_t (&a)[TcDims<DH>::KSTEPS][4], const uint16_t* __restrict__ src,
                                               int row0, int T) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int kk = 0; kk < TcDims<DH>::KSTEPS; kk++) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = row0 + g + 8 * (i & 1);
            const int d = kk * 16 + 2 * t + 8 * (i >> 1);
            a[kk][i] = (src != nullptr && r < T && d < DH)
                               ? *reinterpret_cast<const uint32_t*>(src + (int64_t)r * DH + d)
                               : 0u;
        }
    }
}

// The same from a token-major fp32 or bf16 matrix (row r of head h at (r·H + h)·DH), rounded to bf16.
template <int DH>
__device__ __forceinline__ void tc_load_a_rows_token(uint32_t (&a)[TcDims<DH>::KSTEPS][4], const void* src,
                                                     bool isBf16, int64_t headOffset, int64_t rowStride, int row0,
                                                     int T) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int kk = 0; kk < TcDims<DH>::KSTEPS; kk++) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = row0 + g + 8 * (i & 1);
            const int d = kk * 16 + 2 * t + 8 * (i >> 1);
            uint32_t x = 0u;
            if (r < T && d < DH) {
                const float2 f = tc_load_pair(src, headOffset + (int64_t)r * rowStride + d, isBf16);
                x = tc_pack_bf16(f.x, f.y);
            }
            a[kk][i] = x;
        }
    }
}

// 2^x for the softmax weights: the bare ex2.approx.ftz instruction (relative error ~2^-22). exp2f without fast math
// adds denormal handling around it; a weight below 2^-126 flushed to zero changes no sum at fp32/bf16 precision.
// 2^(−inf) = 0 as the masking relies on.
__device__ __forceinline__ float tc_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// 4 bytes global -> shared, asynchronously (lse and D rows of the backward); valid == false writes zero.
__device__ __forceinline__ void tc_cp_async4(uint32_t dst, const void* src, bool valid) {
    const int bytes = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}

// Quad (the four lanes sharing g) reductions: the row statistics of the C fragments.
__device__ __forceinline__ float tc_quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(FULL_WARP_MASK, x, 1));
    return fmaxf(x, __shfl_xor_sync(FULL_WARP_MASK, x, 2));
}

__device__ __forceinline__ float tc_quad_sum(float x) {
    x += __shfl_xor_sync(FULL_WARP_MASK, x, 1);
    return x + __shfl_xor_sync(FULL_WARP_MASK, x, 2);
}

// acc[n] += A · rows of a shared tile taken as the B operand "row-major [k][n]" through ldmatrix.trans: the tile
// holds 16 k-rows starting at kRow0 (keys) and DH columns (n). Used for P·V, dS·K, Pᵀ·dO, dSᵀ·Q.
template <int DH>
__device__ __forceinline__ void tc_mma_a_times_tile_rows(float (&acc)[TcDims<DH>::DTILES][4], const uint32_t (&a)[4],
                                                         const uint16_t* tile, int kRow0) {
    using D = TcDims<DH>;
    const int lane = threadIdx.x & 31;
    const int r = kRow0 + (lane & 7) + 8 * ((lane >> 3) & 1);
#pragma unroll
    for (int n = 0; n + 1 < D::DTILES; n += 2) {
        uint32_t b0, b1, b2, b3;
        tc_ldsm_x4_trans(tc_smem_addr(tile + r * D::LDS + n * 8 + 8 * (lane >> 4)), b0, b1, b2, b3);
        tc_mma(acc[n], a, b0, b1);
        tc_mma(acc[n + 1], a, b2, b3);
    }
    if (D::DTILES % 2 == 1) {
        uint32_t b0, b1;
        tc_ldsm_x2_trans(tc_smem_addr(tile + r * D::LDS + (D::DTILES - 1) * 8), b0, b1);
        tc_mma(acc[D::DTILES - 1], a, b0, b1);
    }
}

// s[j] += A(k step kk) · tile rowsᵀ for the NCOLS rows [0, NCOLS) of a shared tile as the n dimension (keys or
// queries) and its columns as k: the Q·Kᵀ pattern (non-transposed ldmatrix: a tile row is a B column). When dh is an
// odd number of 8-column groups (72), the last k step has only 8 real columns: it runs m16n8k8 on them instead of
// m16n8k16 on zero padding (one ldmatrix.x4 then covers the B fragments of four n tiles: rows n·8 + lane).
template <int DH, int NCOLS>
__device__ __forceinline__ void tc_mma_a_times_tile_t(float (&s)[NCOLS / 8][4], const uint32_t (&a)[4],
                                                      const uint16_t* tile, int kk) {
    using D = TcDims<DH>;
    const int lane = threadIdx.x & 31;
    if (DH % 16 != 0 && kk == D::KSTEPS - 1) {
        static_assert(DH % 16 == 0 || NCOLS % 32 == 0, "the k8 tail takes n tiles four at a time");
#pragma unroll
        for (int n = 0; n < NCOLS / 8; n += 4) {
            uint32_t b0, b1, b2, b3;
            tc_ldsm_x4(tc_smem_addr(tile + (n * 8 + lane) * D::LDS + kk * 16), b0, b1, b2, b3);
            tc_mma_k8(s[n], a[0], a[1], b0);
            tc_mma_k8(s[n + 1], a[0], a[1], b1);
            tc_mma_k8(s[n + 2], a[0], a[1], b2);
            tc_mma_k8(s[n + 3], a[0], a[1], b3);
        }
        return;
    }
#pragma unroll
    for (int n = 0; n < NCOLS / 8; n += 2) {
        const int r = n * 8 + (lane & 7) + 8 * (lane >> 4);
        uint32_t b0, b1, b2, b3;
        tc_ldsm_x4(tc_smem_addr(tile + r * D::LDS + kk * 16 + 8 * ((lane >> 3) & 1)), b0, b1, b2, b3);
        tc_mma(s[n], a, b0, b1);
        tc_mma(s[n + 1], a, b2, b3);
    }
}

// The A fragment of k step kk of 16 shared tile rows [row0, row0 + 16) (the warp's own rows).
template <int DH>
__device__ __forceinline__ void tc_load_a_smem(uint32_t (&a)[4], const uint16_t* tile, int row0, int kk) {
    using D = TcDims<DH>;
    const int lane = threadIdx.x & 31;
    const int r = row0 + (lane & 7) + 8 * ((lane >> 3) & 1);
    tc_ldsm_x4(tc_smem_addr(tile + r * D::LDS + kk * 16 + 8 * (lane >> 4)), a[0], a[1], a[2], a[3]);
}

// The accumulators of n tiles 2kk and 2kk+1 as the bf16 A fragment of k step kk.
__device__ __forceinline__ void tc_pack_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
    a[0] = tc_pack_bf16(c0[0], c0[1]);
    a[1] = tc_pack_bf16(c0[2], c0[3]);
    a[2] = tc_pack_bf16(c1[0], c1[1]);
    a[3] = tc_pack_bf16(c1[2], c1[3]);
}
