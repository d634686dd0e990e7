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


// ------------------------------------------------------------------------------------------- forward, chunk lanes
// The forms the launcher takes when dh % 8 == 0 (dh ≤ 256), B·T·3·H < 2^31 and every pointer is 16-byte aligned
// (LightningDiT: dh 64, 72, 128); the warp-per-head kernels above stay for other shapes. A lane per 8-channel chunk:
// the dh/8 chunks of a head vector sit on consecutive lanes of one warp, 32 / (dh/8) head vectors per warp (3 at
// dh 72 with 5 lanes idle, 4 at dh 64, 2 at dh 128), taken in qkv's order (token-major: the q heads, the k heads, the v
// heads), so a warp reads one contiguous stretch with 16-byte loads. Σx² is each chunk's fma chain and then the head's
// chunks added in order through shuffles (rope_sumsq_chunked's order, so the same bits as the warp-per-head kernels
// and the JVP's primal); no shared memory, no barrier, so warps overlap freely.
// Why: a one-token-per-block form with shared-memory sums and two barriers per token was latency-bound at 2 blocks per
// SM (XL/1 b256: 565 µs, 40 % of the memory floor); the one-warp-per-head form before it used 2–3 lanes of 32 in its
// last pair iteration and was instruction-bound at 4.6× the floor.
template <typename IN, typename OUT>
__device__ __forceinline__ void qk_norm_rope_fwd_chunks_body(
        const IN* __restrict__ qkv, const float* __restrict__ qw, const float* __restrict__ kw,
        const float* __restrict__ cosT, const float* __restrict__ sinT, OUT* __restrict__ q, OUT* __restrict__ k,
        OUT* __restrict__ v, float* __restrict__ rstd, int B, int T, int H, int dh, float eps) {
    const int lane = threadIdx.x & 31;
    const int chunks = dh / ROPE_CHUNK;
    const int perWarp = 32 / chunks;
    const int slot = lane / chunks;  // head vector within the warp's group; perWarp or more: an idle lane
    const int c = lane - slot * chunks;
    const int base = (slot < perWarp ? slot : 0) * chunks;  // the head's first lane (idle lanes read a valid one)
    const int headsPerToken = 3 * H;
    const int total = B * T * headsPerToken;
    const int warpsPerBlock = blockDim.x >> 5;
    const int warpsInGrid = gridDim.x * warpsPerBlock;
    // g is uniform over the warp, so every lane reaches every shuffle.
    for (int g = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); g < (total + perWarp - 1) / perWarp;
         g += warpsInGrid) {
        const int hvGlobal = g * perWarp + slot;
        const bool active = slot < perWarp && hvGlobal < total;
        const int bt = active ? hvGlobal / headsPerToken : 0;
        const int hv = active ? hvGlobal - bt * headsPerToken : 0;
        const int part = hv / H;  // 0 q, 1 k, 2 v
        const int h = hv - part * H;
        float x[ROPE_CHUNK];
        if (active) {
            rope_load8(qkv + (int64_t)hvGlobal * dh + c * ROPE_CHUNK, x);
        } else {
#pragma unroll
            for (int j = 0; j < ROPE_CHUNK; j++) x[j] = 0.0f;
        }
        float part8 = 0.0f;
#pragma unroll
        for (int j = 0; j < ROPE_CHUNK; j++) part8 = fmaf(x[j], x[j], part8);
        float ss = 0.0f;
        for (int j = 0; j < chunks; j++) ss += __shfl_sync(FULL_WARP_MASK, part8, base + j);
        if (!active) continue;
        const int t = bt % T;
        const int b = bt / T;
        const float* weight = part == 0 ? qw : (part == 1 ? kw : nullptr);
        if (weight != nullptr) {
            const float rho = 1.0f / sqrtf(ss / (float)dh + eps);
            if (rstd != nullptr && c == 0) rstd[((int64_t)bt * 2 + part) * H + h] = rho;
            float w[ROPE_CHUNK];
            rope_load8(weight + c * ROPE_CHUNK, w);
#pragma unroll
            for (int j = 0; j < ROPE_CHUNK; j++) x[j] = x[j] * rho * w[j];
        }
        if (part < 2 && cosT != nullptr) {
            // Pair p = channels (2p, 2p+1) uses the table entry at 2p: .x and .z of each float4.
            const float* cosRow = cosT + t * dh + c * ROPE_CHUNK;
            const float* sinRow = sinT + t * dh + c * ROPE_CHUNK;
            const float4 c0 = reinterpret_cast<const float4*>(cosRow)[0];
            const float4 c1 = reinterpret_cast<const float4*>(cosRow)[1];
            const float4 s0 = reinterpret_cast<const float4*>(sinRow)[0];
            const float4 s1 = reinterpret_cast<const float4*>(sinRow)[1];
            const float cs[4] = {c0.x, c0.z, c1.x, c1.z};
            const float sn[4] = {s0.x, s0.z, s1.x, s1.z};
#pragma unroll
            for (int p = 0; p < 4; p++) {
                const float e0 = x[2 * p], e1 = x[2 * p + 1];
                x[2 * p] = fmaf(e0, cs[p], -(e1 * sn[p]));
                x[2 * p + 1] = fmaf(e1, cs[p], e0 * sn[p]);
            }
        }
        OUT* out = part == 0 ? q : (part == 1 ? k : v);
        rope_store8(out + ((int64_t)(b * H + h) * T + t) * dh + c * ROPE_CHUNK, x);
    }
}

// Launch: 256 threads a block, a 1-D grid of at most 65 535 blocks striding over the warps' groups of head vectors.
#define QK_NORM_ROPE_FWD_CHUNKS(NAME, IN, OUT)                                                                     \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                                        \
            const IN* __restrict__ qkv, const float* __restrict__ qw, const float* __restrict__ kw,                \
            const float* __restrict__ cosT, const float* __restrict__ sinT, OUT* __restrict__ q,                   \
            OUT* __restrict__ k, OUT* __restrict__ v, float* __restrict__ rstd, int B, int T, int H, int dh,       \
            float eps) {                                                                                           \
        qk_norm_rope_fwd_chunks_body<IN, OUT>(qkv, qw, kw, cosT, sinT, q, k, v, rstd, B, T, H, dh, eps);           \
    }
QK_NORM_ROPE_FWD_CHUNKS(qk_norm_rope_fwd_chunks, float, float)
QK_NORM_ROPE_FWD_CHUNKS(qk_norm_rope_fwd_chunks_bf16, uint16_t, uint16_t)
QK_NORM_ROPE_FWD_CHUNKS(qk_norm_rope_fwd_chunks_bf16_f32out, uint16_t, float)
QK_NORM_ROPE_FWD_CHUNKS(qk_norm_rope_fwd_chunks_bf16out, float, uint16_t)
