// Attention input preparation (facm-spec.md §3.2 Attention, §3.4): splits qkv [B, T, 3·H·dh] (per token: the q heads,
// then the k heads, then the v heads, each head's dh values contiguous) into q, k, v [B, H, T, dh], and on the way
//   - RMS-normalizes each q and k head vector over dh:  x ← x·ρ ⊙ w, ρ = (mean_dh(x²) + eps)^(−½)  (skipped for q when
//     qw == nullptr, for k when kw == nullptr), fp32 statistics, ρ stored in rstd [B, T, 2, H] (q then k) when given;
//   - rotates q and k by the interleaved-pair RoPE (skipped when cosT == nullptr), pair p = channels (2p, 2p+1):
//     x'[2p] = x[2p]·cos − x[2p+1]·sin,  x'[2p+1] = x[2p+1]·cos + x[2p]·sin, with cos/sin = table[t, 2p] ([T, dh]).
// v is copied unchanged. One warp per (b, t, h): it reads the three head vectors (contiguous, coalesced) and writes
// three contiguous rows of the [B,H,T,dh] outputs. Launchers: facm.backend.cuda.CudaAttention (forward),
// CudaAttentionBackward and CudaAttentionJvp (backward and JVP: kernels/rope_grad.cu).
#include "rope_common.cuh"

// IN, OUT = float or uint16_t (bf16): statistics and rotation in fp32 from the exactly widened input, each output
// rounded once on store.
template <typename IN, typename OUT>
__device__ __forceinline__ void qk_norm_rope_head(const IN* __restrict__ src, OUT* __restrict__ dst,
                                                  const float* __restrict__ weight, const float* __restrict__ cosRow,
                                                  const float* __restrict__ sinRow, float* __restrict__ rstdOut,
                                                  int dh, float eps, int lane) {
    const int pairs = dh >> 1;
    float2 e[ROPE_MAX_PAIRS_PER_LANE];
#pragma unroll
    for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
        const int p = lane + 32 * j;
        e[j] = p < pairs ? rope_load_pair(src, p) : make_float2(0.0f, 0.0f);
    }
    if (weight != nullptr) {
        const float ss = rope_sumsq_chunked(src, dh, lane);  // re-read from L1 in chunk order
        const float rho = 1.0f / sqrtf(ss / (float)dh + eps);
        if (rstdOut != nullptr && lane == 0) *rstdOut = rho;
#pragma unroll
        for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
            const int p = lane + 32 * j;
            if (p < pairs) {
                e[j].x = e[j].x * rho * weight[2 * p];
                e[j].y = e[j].y * rho * weight[2 * p + 1];
            }
        }
    }
    if (cosRow != nullptr) {
#pragma unroll
        for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
            const int p = lane + 32 * j;
            if (p < pairs) {
                const float c = cosRow[2 * p];
                const float s = sinRow[2 * p];
                // One rounding per output where the hardware allows (fma), closer to the CPU reference, which
                // rounds the float64 value once.
                const float x0 = fmaf(e[j].x, c, -(e[j].y * s));
                const float x1 = fmaf(e[j].y, c, e[j].x * s);
                e[j] = make_float2(x0, x1);
            }
        }
    }
#pragma unroll
    for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
        const int p = lane + 32 * j;
        if (p < pairs) rope_store_pair(dst, p, e[j]);
    }
}

// dh even and ≤ 64·ROPE_MAX_PAIRS_PER_LANE (checked by the launcher); every row start is then 8-byte aligned (fp32)
// or 4-byte aligned (bf16). cosT and sinT are both given or both nullptr; qw, kw, rstd may each be nullptr.
template <typename IN, typename OUT>
__device__ __forceinline__ void qk_norm_rope_fwd_body(
        const IN* __restrict__ qkv, const float* __restrict__ qw, const float* __restrict__ kw,
        const float* __restrict__ cosT, const float* __restrict__ sinT, OUT* __restrict__ q,
        OUT* __restrict__ k, OUT* __restrict__ v, float* __restrict__ rstd, int B, int T, int H, int dh,
        float eps) {
    const int lane = threadIdx.x & 31;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t heads = (int64_t)B * T * H;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    for (int64_t w = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); w < heads; w += warpsInGrid) {
        // w enumerates (b, t, h) with h fastest, the order of the heads in qkv.
        const int h = (int)(w % H);
        const int64_t bt = w / H;
        const int t = (int)(bt % T);
        const int64_t b = bt / T;
        const IN* tokenIn = qkv + bt * 3 * H * dh;
        const int64_t outRow = ((b * H + h) * T + t) * dh;  // [B,H,T,dh]
        const float* cosRow = cosT != nullptr ? cosT + (int64_t)t * dh : nullptr;
        const float* sinRow = sinT != nullptr ? sinT + (int64_t)t * dh : nullptr;
        float* rstdQ = rstd != nullptr ? rstd + (bt * 2 + 0) * H + h : nullptr;
        float* rstdK = rstd != nullptr ? rstd + (bt * 2 + 1) * H + h : nullptr;
        qk_norm_rope_head(tokenIn + (int64_t)h * dh, q + outRow, qw, cosRow, sinRow, rstdQ, dh, eps, lane);
        qk_norm_rope_head(tokenIn + (int64_t)(H + h) * dh, k + outRow, kw, cosRow, sinRow, rstdK, dh, eps, lane);
        const IN* vin = tokenIn + (int64_t)(2 * H + h) * dh;
        OUT* vout = v + outRow;
        for (int p = lane; p < (dh >> 1); p += 32) rope_store_pair(vout, p, rope_load_pair(vin, p));
    }
}

// qk_norm_rope_fwd: fp32 qkv → fp32 q, k, v. _bf16: bf16 qkv (the bf16 qkv GEMM's output) → bf16 q, k, v (tensor-core
// attention operands), 12 bytes per qkv element moved instead of 24 (XL/1 b256: 226 M elements, 0.9 GB). _bf16_f32out:
// bf16 qkv → fp32 q, k, v, for an fp32 attention.
#define QK_NORM_ROPE_FWD(NAME, IN, OUT)                                                                            \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                                        \
            const IN* __restrict__ qkv, const float* __restrict__ qw, const float* __restrict__ kw,                \
            const float* __restrict__ cosT, const float* __restrict__ sinT, OUT* __restrict__ q,                   \
            OUT* __restrict__ k, OUT* __restrict__ v, float* __restrict__ rstd, int B, int T, int H, int dh,       \
            float eps) {                                                                                           \
        qk_norm_rope_fwd_body<IN, OUT>(qkv, qw, kw, cosT, sinT, q, k, v, rstd, B, T, H, dh, eps);                  \
    }
QK_NORM_ROPE_FWD(qk_norm_rope_fwd, float, float)
QK_NORM_ROPE_FWD(qk_norm_rope_fwd_bf16, uint16_t, uint16_t)
QK_NORM_ROPE_FWD(qk_norm_rope_fwd_bf16_f32out, uint16_t, float)
// _bf16out: fp32 qkv (kept for the backward of a training pass) → bf16 q, k, v for the tensor-core attention: the fp32
// kernel's values, each rounded once.
QK_NORM_ROPE_FWD(qk_norm_rope_fwd_bf16out, float, uint16_t)


// ------------------------------------------------------------------------------------------- forward, token blocks
// The forms the launcher takes when dh % 8 == 0, 3·H·dh/8 ≤ 1024 and every pointer is 16-byte aligned (LightningDiT:
// dh 64, 72, 128). The warp-per-head kernels above stay for other shapes. Why: one warp per 72-value head runs 4
// predicated pair iterations with 2–3 lanes of 32 busy in the last, a 64-bit div/mod per warp and 2 × 5 shuffles —
// instruction-bound at 4.6× the memory floor (XL/1 b16, bench/README.md "Kernel floors").
//
// Here one block owns one token (b, t) at a time: its 3·H·dh values are 3·H·dh/8 chunks of 8 consecutive channels,
// chunk i of the token → thread i (so the token's row is read with coalesced 16-byte loads, one uint4 of bf16 or two
// float4 of fp32). Chunk i is channels 8c..8c+7 of head vector hv = i / (dh/8) (q heads, then k, then v), c = i mod
// dh/8. qk-norm: each chunk writes its partial Σx² to shared memory, and every thread of a head adds the head's dh/8
// partials in chunk order (fixed order: deterministic). Everything per thread that does not depend on the token (the
// divisions, the norm weights) is computed once; the block strides over t (grid (ceil, B): no division per token).
// Index math is 32-bit except the final element offsets (the launcher checks B·T·H < 2^31, B ≤ 65535).
//
// Per 8 bf16 elements of q/k (sm_90 SASS, counted roughly): 1 LDG.128 + 8 unpack + 8 FFMA (Σx²) + STS + 2 BAR +
// dh/8 LDS/FADD (9 at dh 72) + ~30 for ρ (IEEE division and sqrt, as the CPU-matching formula) + 16 FMUL (x·ρ·w) +
// 4 LDG.128 (cos, sin: L1 hits) + 16 FMUL/FFMA (rotation) + 8 × ~6 (bf16 rounding as facm.tensor.Bf16) + STG.128 +
// ~10 address ≈ 150, i.e. ~19 per element (v chunks ~9). XL/1 b16: 14.2 M elements ≈ 8 M warp instructions ≈ 9 µs at
// 4 × 132 issue slots × 1.75 GHz, below the 13.5 µs memory floor; the old kernel issued about 5× that.
// ptxas (nvcc 13.0, -Xptxas -v): 48 registers on sm_90 (47–48 on sm_80), 0 bytes stack, no spills, 1 barrier. With
// __launch_bounds__(1024) alone ptxas capped at 32 registers and spilled 16 bytes, hence the explicit (1024, 1). XL:
// 448 threads × 48 registers → 3 blocks (1344 threads, 21 KB of 16-byte loads in flight) per SM.

// ROPE_TOK_EARLY_TABLES 1 (the default): the RoPE table entries are loaded before the norm's barriers, which measured
// 6–10 % faster on an H200 at XL/1 b256 (tools/perf-harness: 500 vs 532 µs bf16, 454 vs 502 µs f32 in; same bits;
// 64 registers, no spills); 0 loads them after.
#ifndef ROPE_TOK_EARLY_TABLES
#define ROPE_TOK_EARLY_TABLES 1
#endif

// Launch: grid (gx ≤ T, B), blockDim.x = 3·H·dh/8 rounded up to a multiple of 32 (≤ 1024), dynamic shared memory
// 2·H·(dh/8) floats. Arguments and results as qk_norm_rope_fwd_body, bit for bit: the same per-element operations
// (x·ρ·w, then the fma rotation) and Σx² in the same chunk order (rope_sumsq_chunked).
template <typename IN, typename OUT>
__device__ __forceinline__ void qk_norm_rope_fwd_tok_body(
        const IN* __restrict__ qkv, const float* __restrict__ qw, const float* __restrict__ kw,
        const float* __restrict__ cosT, const float* __restrict__ sinT, OUT* __restrict__ q, OUT* __restrict__ k,
        OUT* __restrict__ v, float* __restrict__ rstd, int B, int T, int H, int dh, float eps) {
    extern __shared__ float ropePartials[];  // [2·H][dh/8]: Σx² of each q and k chunk of the current token
    const int chunks = dh / ROPE_CHUNK;
    const int tokenElems = 3 * H * dh;
    const int i = threadIdx.x;
    const bool active = i < 3 * H * chunks;
    const int hv = i / chunks;  // head vector within the token
    const int c = i - hv * chunks;
    const int part = hv / H;    // 0 q, 1 k, 2 v (≥ 3 for the idle tail threads)
    const int h = hv - part * H;
    const float* weight = part == 0 ? qw : (part == 1 ? kw : nullptr);
    const bool norm = active && weight != nullptr;
    const bool rotate = active && part < 2 && cosT != nullptr;
    const bool anyNorm = qw != nullptr || kw != nullptr;  // uniform over the block: decides the barriers
    OUT* out = part == 0 ? q : (part == 1 ? k : v);
    const int b = blockIdx.y;
    // The chunks of the next two tokens are loaded before this token's barriers (software pipelining: loads do not
    // move across __syncthreads on their own, and with 2–3 blocks per SM one token per block in flight is too little
    // to stream at the memory rate).
    const int G = gridDim.x;
    const IN* mine = qkv + (int64_t)b * T * tokenElems + i * ROPE_CHUNK;
    float next1[ROPE_CHUNK], next2[ROPE_CHUNK];
    if (active && blockIdx.x < T) rope_load8(mine + (int64_t)blockIdx.x * tokenElems, next1);
    if (active && blockIdx.x + G < T) rope_load8(mine + (int64_t)(blockIdx.x + G) * tokenElems, next2);
    for (int t = blockIdx.x; t < T; t += G) {
        const int bt = b * T + t;
        float x[ROPE_CHUNK];
#pragma unroll
        for (int j = 0; j < ROPE_CHUNK; j++) {
            x[j] = next1[j];
            next1[j] = next2[j];
        }
        if (active && t + 2 * G < T) rope_load8(mine + (int64_t)(t + 2 * G) * tokenElems, next2);
#if ROPE_TOK_EARLY_TABLES
        // This token's RoPE table entries, loaded before the barriers so their latency overlaps the norm's sums.
        float cs[4], sn[4];
        if (rotate) rope_table4(cosT, sinT, t, dh, c, cs, sn);
#endif
        if (anyNorm) {
            if (active && part < 2) {
                float ss = 0.0f;  // rope_sumsq_chunked's order: the chunk's fma chain, then the chunks in order
#pragma unroll
                for (int j = 0; j < ROPE_CHUNK; j++) ss = fmaf(x[j], x[j], ss);
                ropePartials[hv * chunks + c] = ss;
            }
            __syncthreads();
            if (norm) {
                float ss = 0.0f;
                for (int j = 0; j < chunks; j++) ss += ropePartials[hv * chunks + j];
                const float rho = 1.0f / sqrtf(ss / (float)dh + eps);
                if (rstd != nullptr && c == 0) rstd[((int64_t)bt * 2 + part) * H + h] = rho;
                float w[ROPE_CHUNK];  // reloaded per token (L1 hits): 8 fewer live registers, more blocks per SM
                rope_load8(weight + c * ROPE_CHUNK, w);
#pragma unroll
                for (int j = 0; j < ROPE_CHUNK; j++) x[j] = x[j] * rho * w[j];
            }
            __syncthreads();  // the partials are rewritten for the next token
        }
        if (!active) continue;
        if (rotate) {
#if !ROPE_TOK_EARLY_TABLES
            float cs[4], sn[4];
            rope_table4(cosT, sinT, t, dh, c, cs, sn);
#endif
#pragma unroll
            for (int p = 0; p < 4; p++) {
                const float e0 = x[2 * p], e1 = x[2 * p + 1];
                x[2 * p] = fmaf(e0, cs[p], -(e1 * sn[p]));
                x[2 * p + 1] = fmaf(e1, cs[p], e0 * sn[p]);
            }
        }
        const int outRow = (b * H + h) * T + t;  // [B,H,T,dh] row, < B·H·T < 2^31
        rope_store8(out + (int64_t)outRow * dh + c * ROPE_CHUNK, x);
    }
}

#define QK_NORM_ROPE_FWD_TOK(NAME, IN, OUT)                                                                        \
    extern "C" __global__ void __launch_bounds__(1024, 1) NAME(                                                    \
            const IN* __restrict__ qkv, const float* __restrict__ qw, const float* __restrict__ kw,                \
            const float* __restrict__ cosT, const float* __restrict__ sinT, OUT* __restrict__ q,                   \
            OUT* __restrict__ k, OUT* __restrict__ v, float* __restrict__ rstd, int B, int T, int H, int dh,       \
            float eps) {                                                                                           \
        qk_norm_rope_fwd_tok_body<IN, OUT>(qkv, qw, kw, cosT, sinT, q, k, v, rstd, B, T, H, dh, eps);              \
    }
QK_NORM_ROPE_FWD_TOK(qk_norm_rope_fwd_tok, float, float)
QK_NORM_ROPE_FWD_TOK(qk_norm_rope_fwd_tok_bf16, uint16_t, uint16_t)
QK_NORM_ROPE_FWD_TOK(qk_norm_rope_fwd_tok_bf16_f32out, uint16_t, float)
QK_NORM_ROPE_FWD_TOK(qk_norm_rope_fwd_tok_bf16out, float, uint16_t)
