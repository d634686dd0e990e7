// Gradients of kernels/rope.cu's qk-norm + RoPE split: the backward (reverse mode) and the forward-mode JVP, each
// as a warp-per-head kernel (any even dh ≤ 256) and a token-block kernel (dh % 8 == 0, ≤ 512 threads). Launchers:
// facm.backend.cuda.CudaAttentionBackward, CudaAttentionJvp.
#include "rope_common.cuh"

// ------------------------------------------------------------------------------------------- backward
// For one q or k head vector x (dh values) with y = x·ρ ⊙ w (qk-norm) and z = RoPE(y), given gz:
//   RoPE transposed:  gy[2p] = gz[2p]·cos + gz[2p+1]·sin,  gy[2p+1] = gz[2p+1]·cos − gz[2p]·sin
//   RMSNorm:          n = x·ρ,  g = gy ⊙ w,  gx = ρ·(g − n·mean_dh(g·n)),  gradW += gy ⊙ n  (summed over B·T·H)
// Without qk-norm gx = gy; without RoPE gy = gz. The v part of gradQkv is a copy of gradV.
// The weight gradients are a deterministic two-pass reduction: each lane keeps running sums for its channels over
// the head vectors its warp handles, a block adds its warps in order into partials[block, 2, dh] (q then k), and
// partials_sum_accumulate (kernels/rmsnorm.cu) adds the blocks in order. Grid size = f(shape) keeps the order fixed.

// One head vector of q or k: backward through RoPE and RMSNorm; gx written to dst (nullptr: not wanted). All 32
// lanes call it (warp_sum). weight == nullptr: no qk-norm; otherwise rstd points at the vector's saved ρ. wsum: this
// lane's running Σ gy·n for its pairs (updated only with qk-norm).
__device__ __forceinline__ void qk_norm_rope_head_bwd(const float2* __restrict__ x, const float2* __restrict__ gz,
                                                      float2* __restrict__ dst, const float* __restrict__ weight,
                                                      const float* __restrict__ cosRow,
                                                      const float* __restrict__ sinRow, const float* rstd,
                                                      float2* wsum, int dh, int lane) {
    const int pairs = dh >> 1;
    float2 g[ROPE_MAX_PAIRS_PER_LANE];
#pragma unroll
    for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
        const int p = lane + 32 * j;
        g[j] = p < pairs ? gz[p] : make_float2(0.0f, 0.0f);
    }
    if (cosRow != nullptr) {
#pragma unroll
        for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
            const int p = lane + 32 * j;
            if (p < pairs) {
                const float c = cosRow[2 * p];
                const float s = sinRow[2 * p];
                g[j] = make_float2(fmaf(g[j].x, c, g[j].y * s), fmaf(g[j].y, c, -(g[j].x * s)));
            }
        }
    }
    if (weight != nullptr) {
        float2 xe[ROPE_MAX_PAIRS_PER_LANE];
#pragma unroll
        for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
            const int p = lane + 32 * j;
            xe[j] = p < pairs ? x[p] : make_float2(0.0f, 0.0f);
        }
        const float rho = *rstd;
        // dot = Σ g·n over the vector, with g = gy ⊙ w and n = x·ρ
        float dot = 0.0f;
#pragma unroll
        for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
            const int p = lane + 32 * j;
            if (p < pairs) {
                const float nx = xe[j].x * rho, ny = xe[j].y * rho;
                wsum[j].x = fmaf(g[j].x, nx, wsum[j].x);
                wsum[j].y = fmaf(g[j].y, ny, wsum[j].y);
                g[j].x *= weight[2 * p];
                g[j].y *= weight[2 * p + 1];
                dot = fmaf(g[j].x, nx, dot);
                dot = fmaf(g[j].y, ny, dot);
            }
        }
        dot = warp_sum(dot);
        const float nm = rho * (dot / (float)dh);  // x·nm = n·mean(g·n)
#pragma unroll
        for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
            g[j] = make_float2(rho * fmaf(-xe[j].x, nm, g[j].x), rho * fmaf(-xe[j].y, nm, g[j].y));
        }
    }
    if (dst == nullptr) return;
#pragma unroll
    for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
        const int p = lane + 32 * j;
        if (p < pairs) dst[p] = g[j];
    }
}

// Launch like qk_norm_rope_fwd but with exactly 256 threads (warpSums holds 8 warps) and a grid that depends only on
// the shape. gq, gk, gv [B,H,T,dh] -> gqkv [B,T,3·H·dh] (overwritten; nullptr when only the weight gradients are
// wanted). rstd [B,T,2,H] is the forward's ρ, required with qk-norm; partials [gridDim.x, 2, dh] is nullptr when no
// weight gradient is wanted (or qk-norm is off). qw and kw are both given or both nullptr, likewise cosT and sinT.
extern "C" __global__ void __launch_bounds__(256) qk_norm_rope_bwd(
        const float* __restrict__ qkv, const float* __restrict__ qw, const float* __restrict__ kw,
        const float* __restrict__ cosT, const float* __restrict__ sinT, const float* __restrict__ rstd,
        const float* __restrict__ gq, const float* __restrict__ gk, const float* __restrict__ gv,
        float* __restrict__ gqkv, float* __restrict__ partials, int B, int T, int H, int dh) {
    __shared__ float warpSums[8][2][2 * 32 * ROPE_MAX_PAIRS_PER_LANE];  // [warp][q or k][channel]
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t heads = (int64_t)B * T * H;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    float2 wq[ROPE_MAX_PAIRS_PER_LANE], wk[ROPE_MAX_PAIRS_PER_LANE];
#pragma unroll
    for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) wq[j] = wk[j] = make_float2(0.0f, 0.0f);
    for (int64_t w = (int64_t)blockIdx.x * warpsPerBlock + warp; w < heads; w += warpsInGrid) {
        const int h = (int)(w % H);
        const int64_t bt = w / H;
        const int t = (int)(bt % T);
        const int64_t b = bt / T;
        const float* tokenIn = qkv + bt * 3 * H * dh;
        float* tokenGrad = gqkv != nullptr ? gqkv + bt * 3 * H * dh : nullptr;
        const int64_t headRow = ((b * H + h) * T + t) * dh;  // [B,H,T,dh]
        const float* cosRow = cosT != nullptr ? cosT + (int64_t)t * dh : nullptr;
        const float* sinRow = sinT != nullptr ? sinT + (int64_t)t * dh : nullptr;
        const float* rstdQ = rstd != nullptr ? rstd + (bt * 2 + 0) * H + h : nullptr;
        const float* rstdK = rstd != nullptr ? rstd + (bt * 2 + 1) * H + h : nullptr;
        float2* dstQ = tokenGrad != nullptr ? reinterpret_cast<float2*>(tokenGrad + (int64_t)h * dh) : nullptr;
        float2* dstK = tokenGrad != nullptr ? reinterpret_cast<float2*>(tokenGrad + (int64_t)(H + h) * dh) : nullptr;
        qk_norm_rope_head_bwd(reinterpret_cast<const float2*>(tokenIn + (int64_t)h * dh),
                              reinterpret_cast<const float2*>(gq + headRow), dstQ, qw, cosRow, sinRow, rstdQ, wq, dh,
                              lane);
        qk_norm_rope_head_bwd(reinterpret_cast<const float2*>(tokenIn + (int64_t)(H + h) * dh),
                              reinterpret_cast<const float2*>(gk + headRow), dstK, kw, cosRow, sinRow, rstdK, wk, dh,
                              lane);
        if (tokenGrad == nullptr) continue;
        const float2* vin = reinterpret_cast<const float2*>(gv + headRow);
        float2* vout = reinterpret_cast<float2*>(tokenGrad + (int64_t)(2 * H + h) * dh);
        for (int p = lane; p < (dh >> 1); p += 32) vout[p] = vin[p];
    }
    if (partials == nullptr) return;  // uniform over the grid: no block is left waiting at the barrier
#pragma unroll
    for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
        const int p = lane + 32 * j;
        if (p < (dh >> 1)) {
            warpSums[warp][0][2 * p] = wq[j].x;
            warpSums[warp][0][2 * p + 1] = wq[j].y;
            warpSums[warp][1][2 * p] = wk[j].x;
            warpSums[warp][1][2 * p + 1] = wk[j].y;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < 2 * dh; i += blockDim.x) {
        const int part = i / dh;
        const int c = i % dh;
        float s = warpSums[0][part][c];
        for (int wi = 1; wi < warpsPerBlock; wi++) s += warpSums[wi][part][c];
        partials[(int64_t)blockIdx.x * 2 * dh + i] = s;
    }
}

// Token-block backward, the form the launcher takes under the forward's token-block conditions (dh % 8 == 0, the
// chunks fit one block, 16-byte aligned rows): one block per token (b, t) at a time, a thread per 8-channel chunk of
// the token's 3·H·dh gradient values (chunk i ↔ head vector hv = i / (dh/8), as in qk_norm_rope_fwd_tok_body), 16-byte
// loads and stores. The same per-element formulas as qk_norm_rope_head_bwd; Σ g·n of a head vector is the chunks'
// fma chains added in chunk order through shared memory, and the weight gradient's per-thread running sums (its 8
// channels over its tokens) are added over the heads in order into partials[block, 2, dh] (block = y·gridDim.x + x),
// which partials_sum_accumulate adds in block order: a fixed order for a fixed grid, which the launcher derives
// from the shape alone. Dynamic shared memory: 2·H·dh floats. Why: the warp-per-head kernel ran at ~3.4× its memory
// floor at XL/1 batch 32 (241 µs against ~71 µs; 56 calls per FACM step).
extern "C" __global__ void __launch_bounds__(512, 2) qk_norm_rope_bwd_tok(
        const float* __restrict__ qkv, const float* __restrict__ qw, const float* __restrict__ kw,
        const float* __restrict__ cosT, const float* __restrict__ sinT, const float* __restrict__ rstd,
        const float* __restrict__ gq, const float* __restrict__ gk, const float* __restrict__ gv,
        float* __restrict__ gqkv, float* __restrict__ partials, int B, int T, int H, int dh) {
    extern __shared__ float ropeBwdShared[];  // [2·H][dh/8] Σ g·n partials per token; at the end [2][H][dh] weight sums
    const int chunks = dh / ROPE_CHUNK;
    const int tokenElems = 3 * H * dh;
    const int i = threadIdx.x;
    const bool active = i < 3 * H * chunks;
    const int hv = i / chunks;
    const int c = i - hv * chunks;
    const int part = hv / H;  // 0 q, 1 k, 2 v (≥ 3 for the idle tail threads)
    const int h = hv - part * H;
    const float* weight = part == 0 ? qw : (part == 1 ? kw : nullptr);
    const bool norm = active && weight != nullptr;
    const bool rotate = active && part < 2 && cosT != nullptr;
    const bool anyNorm = qw != nullptr || kw != nullptr;  // uniform over the block: decides the barriers
    const float* gsrc = part == 0 ? gq : (part == 1 ? gk : gv);
    const int b = blockIdx.y;
    float w[ROPE_CHUNK];
    float wsum[ROPE_CHUNK];
#pragma unroll
    for (int j = 0; j < ROPE_CHUNK; j++) wsum[j] = 0.0f;
    if (norm) rope_load8(weight + c * ROPE_CHUNK, w);
    for (int t = blockIdx.x; t < T; t += gridDim.x) {
        const int bt = b * T + t;
        float g[ROPE_CHUNK];
        if (active) rope_load8(gsrc + ((int64_t)(b * H + h) * T + t) * dh + c * ROPE_CHUNK, g);
        if (rotate) {  // RoPE transposed, pair p = channels (2p, 2p+1) with the table entry at 2p
            float cs[4], sn[4];
            rope_table4(cosT, sinT, t, dh, c, cs, sn);
#pragma unroll
            for (int p = 0; p < 4; p++) {
                const float g0 = g[2 * p], g1 = g[2 * p + 1];
                g[2 * p] = fmaf(g0, cs[p], g1 * sn[p]);
                g[2 * p + 1] = fmaf(g1, cs[p], -(g0 * sn[p]));
            }
        }
        if (anyNorm) {
            float x[ROPE_CHUNK];
            float rho = 0.0f;
            if (norm) {
                rope_load8(qkv + (int64_t)bt * tokenElems + i * ROPE_CHUNK, x);
                rho = rstd[((int64_t)bt * 2 + part) * H + h];
                float dot = 0.0f;
#pragma unroll
                for (int j = 0; j < ROPE_CHUNK; j++) {
                    const float n = x[j] * rho;
                    wsum[j] = fmaf(g[j], n, wsum[j]);
                    g[j] *= w[j];
                    dot = fmaf(g[j], n, dot);
                }
                ropeBwdShared[hv * chunks + c] = dot;
            }
            __syncthreads();
            if (norm) {
                float dot = 0.0f;
                for (int j = 0; j < chunks; j++) dot += ropeBwdShared[hv * chunks + j];
                const float nm = rho * (dot / (float)dh);  // x·nm = n·mean(g·n)
#pragma unroll
                for (int j = 0; j < ROPE_CHUNK; j++) g[j] = rho * fmaf(-x[j], nm, g[j]);
            }
            __syncthreads();  // the partials are rewritten for the next token
        }
        if (active && gqkv != nullptr) rope_store8(gqkv + (int64_t)bt * tokenElems + i * ROPE_CHUNK, g);
    }
    if (partials == nullptr) return;  // uniform over the grid
    __syncthreads();
    if (norm) {
#pragma unroll
        for (int j = 0; j < ROPE_CHUNK; j++) ropeBwdShared[(part * H + h) * dh + c * ROPE_CHUNK + j] = wsum[j];
    }
    __syncthreads();
    float* row = partials + ((int64_t)blockIdx.y * gridDim.x + blockIdx.x) * 2 * dh;
    for (int k = threadIdx.x; k < 2 * dh; k += blockDim.x) {
        const int p = k / dh;
        const int d = k - p * dh;
        float sum = 0.0f;
        for (int hh = 0; hh < H; hh++) sum += ropeBwdShared[(p * H + hh) * dh + d];
        row[k] = sum;
    }
}

// ------------------------------------------------------------------------------------------- forward mode (JVP)
// Primal exactly as qk_norm_rope_fwd (same operations in the same order, so bit-identical), and the tangents: with
// n = x·ρ, ṅ = ρ·(ẋ − x·ρ²·mean_dh(x ⊙ ẋ)), ẏ = ṅ ⊙ w, and the same rotation applied to ẏ (RoPE is linear); v̇ is a
// copy of the v part of qkvDot. qkvDot nullptr: every tangent is zero.

// One head vector of q or k and its tangent (src/srcDot → dst/dstDot). All 32 lanes call it (warp_sum). OUT = float,
// or uint16_t (bf16: primal and tangent rounded once on store, the tensor-core attention JVP's operands).
template <typename OUT>
__device__ __forceinline__ void qk_norm_rope_head_jvp(const float2* __restrict__ src, const float2* __restrict__ srcDot,
                                                      OUT* __restrict__ dst, OUT* __restrict__ dstDot,
                                                      const float* __restrict__ weight,
                                                      const float* __restrict__ cosRow,
                                                      const float* __restrict__ sinRow, float* __restrict__ rstdOut,
                                                      int dh, float eps, int lane) {
    const int pairs = dh >> 1;
    float2 e[ROPE_MAX_PAIRS_PER_LANE];
    float2 t[ROPE_MAX_PAIRS_PER_LANE];
#pragma unroll
    for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
        const int p = lane + 32 * j;
        e[j] = p < pairs ? src[p] : make_float2(0.0f, 0.0f);
        t[j] = p < pairs && srcDot != nullptr ? srcDot[p] : make_float2(0.0f, 0.0f);
    }
    if (weight != nullptr) {
        // Σx² in the forward's chunk order (bit-identical primal); Σx·ẋ has no twin to match: the lanes' butterfly.
        const float ss = rope_sumsq_chunked(reinterpret_cast<const float*>(src), dh, lane);
        float sx = 0.0f;
#pragma unroll
        for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
            sx = fmaf(e[j].x, t[j].x, sx);
            sx = fmaf(e[j].y, t[j].y, sx);
        }
        sx = warp_sum(sx);
        const float rho = 1.0f / sqrtf(ss / (float)dh + eps);
        const float corr = rho * rho * (sx / (float)dh);
        if (rstdOut != nullptr && lane == 0) *rstdOut = rho;
#pragma unroll
        for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
            const int p = lane + 32 * j;
            if (p < pairs) {
                const float w0 = weight[2 * p];
                const float w1 = weight[2 * p + 1];
                t[j].x = rho * fmaf(-e[j].x, corr, t[j].x) * w0;
                t[j].y = rho * fmaf(-e[j].y, corr, t[j].y) * w1;
                e[j].x = e[j].x * rho * w0;
                e[j].y = e[j].y * rho * w1;
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
                e[j] = make_float2(fmaf(e[j].x, c, -(e[j].y * s)), fmaf(e[j].y, c, e[j].x * s));
                t[j] = make_float2(fmaf(t[j].x, c, -(t[j].y * s)), fmaf(t[j].y, c, t[j].x * s));
            }
        }
    }
#pragma unroll
    for (int j = 0; j < ROPE_MAX_PAIRS_PER_LANE; j++) {
        const int p = lane + 32 * j;
        if (p < pairs) {
            rope_store_pair(dst, p, e[j]);
            rope_store_pair(dstDot, p, t[j]);
        }
    }
}

// Launch and argument rules as qk_norm_rope_fwd; qkvDot may be nullptr; qDot, kDot, vDot are required. OUT = float
// (qk_norm_rope_jvp) or uint16_t (qk_norm_rope_jvp_bf16out: all six outputs bf16).
template <typename OUT>
__device__ __forceinline__ void qk_norm_rope_jvp_body(
        const float* __restrict__ qkv, const float* __restrict__ qkvDot, const float* __restrict__ qw,
        const float* __restrict__ kw, const float* __restrict__ cosT, const float* __restrict__ sinT,
        OUT* __restrict__ q, OUT* __restrict__ k, OUT* __restrict__ v, OUT* __restrict__ qDot,
        OUT* __restrict__ kDot, OUT* __restrict__ vDot, float* __restrict__ rstd, int B, int T, int H, int dh,
        float eps) {
    const int lane = threadIdx.x & 31;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t heads = (int64_t)B * T * H;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    for (int64_t w = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); w < heads; w += warpsInGrid) {
        const int h = (int)(w % H);
        const int64_t bt = w / H;
        const int t = (int)(bt % T);
        const int64_t b = bt / T;
        const int64_t tokenOff = bt * 3 * H * dh;
        const float* tokenIn = qkv + tokenOff;
        const float* tokenDot = qkvDot != nullptr ? qkvDot + tokenOff : nullptr;
        const int64_t outRow = ((b * H + h) * T + t) * dh;
        const float* cosRow = cosT != nullptr ? cosT + (int64_t)t * dh : nullptr;
        const float* sinRow = sinT != nullptr ? sinT + (int64_t)t * dh : nullptr;
        float* rstdQ = rstd != nullptr ? rstd + (bt * 2 + 0) * H + h : nullptr;
        float* rstdK = rstd != nullptr ? rstd + (bt * 2 + 1) * H + h : nullptr;
        const int64_t qIn = (int64_t)h * dh, kIn = (int64_t)(H + h) * dh, vIn = (int64_t)(2 * H + h) * dh;
        qk_norm_rope_head_jvp<OUT>(reinterpret_cast<const float2*>(tokenIn + qIn),
                                   tokenDot != nullptr ? reinterpret_cast<const float2*>(tokenDot + qIn) : nullptr,
                                   q + outRow, qDot + outRow, qw, cosRow, sinRow, rstdQ, dh, eps, lane);
        qk_norm_rope_head_jvp<OUT>(reinterpret_cast<const float2*>(tokenIn + kIn),
                                   tokenDot != nullptr ? reinterpret_cast<const float2*>(tokenDot + kIn) : nullptr,
                                   k + outRow, kDot + outRow, kw, cosRow, sinRow, rstdK, dh, eps, lane);
        const float2* vin = reinterpret_cast<const float2*>(tokenIn + vIn);
        const float2* vdin = tokenDot != nullptr ? reinterpret_cast<const float2*>(tokenDot + vIn) : nullptr;
        OUT* vout = v + outRow;
        OUT* vdout = vDot + outRow;
        for (int p = lane; p < (dh >> 1); p += 32) {
            rope_store_pair(vout, p, vin[p]);
            rope_store_pair(vdout, p, vdin != nullptr ? vdin[p] : make_float2(0.0f, 0.0f));
        }
    }
}

#define QK_NORM_ROPE_JVP(NAME, OUT)                                                                                \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                                        \
            const float* __restrict__ qkv, const float* __restrict__ qkvDot, const float* __restrict__ qw,         \
            const float* __restrict__ kw, const float* __restrict__ cosT, const float* __restrict__ sinT,          \
            OUT* __restrict__ q, OUT* __restrict__ k, OUT* __restrict__ v, OUT* __restrict__ qDot,                 \
            OUT* __restrict__ kDot, OUT* __restrict__ vDot, float* __restrict__ rstd, int B, int T, int H, int dh, \
            float eps) {                                                                                           \
        qk_norm_rope_jvp_body<OUT>(qkv, qkvDot, qw, kw, cosT, sinT, q, k, v, qDot, kDot, vDot, rstd, B, T, H, dh,  \
                                   eps);                                                                           \
    }
QK_NORM_ROPE_JVP(qk_norm_rope_jvp, float)
QK_NORM_ROPE_JVP(qk_norm_rope_jvp_bf16out, uint16_t)


// Token-block JVP (the forward's token-block conditions; at most 512 threads): one block per token at a time, a thread
// per 8-channel chunk, as qk_norm_rope_fwd_tok_body. The primal has the forward's bits (Σx² in chunk order, the same
// per-element formulas); Σx·ẋ is added the same way. The tangent formulas are qk_norm_rope_head_jvp's. Dynamic shared
// memory: 4·H·(dh/8) floats.
template <typename OUT>
__device__ __forceinline__ void qk_norm_rope_jvp_tok_body(
        const float* __restrict__ qkv, const float* __restrict__ qkvDot, const float* __restrict__ qw,
        const float* __restrict__ kw, const float* __restrict__ cosT, const float* __restrict__ sinT,
        OUT* __restrict__ q, OUT* __restrict__ k, OUT* __restrict__ v, OUT* __restrict__ qDot,
        OUT* __restrict__ kDot, OUT* __restrict__ vDot, float* __restrict__ rstd, int B, int T, int H, int dh,
        float eps) {
    extern __shared__ float ropeJvpShared[];  // [2·H][dh/8] Σx² partials, then [2·H][dh/8] Σx·ẋ partials
    const int chunks = dh / ROPE_CHUNK;
    float* sxPartials = ropeJvpShared + 2 * H * chunks;
    const int tokenElems = 3 * H * dh;
    const int i = threadIdx.x;
    const bool active = i < 3 * H * chunks;
    const int hv = i / chunks;
    const int c = i - hv * chunks;
    const int part = hv / H;
    const int h = hv - part * H;
    const float* weight = part == 0 ? qw : (part == 1 ? kw : nullptr);
    const bool norm = active && weight != nullptr;
    const bool rotate = active && part < 2 && cosT != nullptr;
    const bool anyNorm = qw != nullptr || kw != nullptr;
    OUT* out = part == 0 ? q : (part == 1 ? k : v);
    OUT* outDot = part == 0 ? qDot : (part == 1 ? kDot : vDot);
    const int b = blockIdx.y;
    for (int t = blockIdx.x; t < T; t += gridDim.x) {
        const int bt = b * T + t;
        float x[ROPE_CHUNK], xd[ROPE_CHUNK];
        if (active) {
            rope_load8(qkv + (int64_t)bt * tokenElems + i * ROPE_CHUNK, x);
            if (qkvDot != nullptr) {
                rope_load8(qkvDot + (int64_t)bt * tokenElems + i * ROPE_CHUNK, xd);
            } else {
#pragma unroll
                for (int j = 0; j < ROPE_CHUNK; j++) xd[j] = 0.0f;
            }
        }
        if (anyNorm) {
            if (active && part < 2) {
                float ss = 0.0f, sx = 0.0f;
#pragma unroll
                for (int j = 0; j < ROPE_CHUNK; j++) {
                    ss = fmaf(x[j], x[j], ss);
                    sx = fmaf(x[j], xd[j], sx);
                }
                ropeJvpShared[hv * chunks + c] = ss;
                sxPartials[hv * chunks + c] = sx;
            }
            __syncthreads();
            if (norm) {
                float ss = 0.0f, sx = 0.0f;
                for (int j = 0; j < chunks; j++) {
                    ss += ropeJvpShared[hv * chunks + j];
                    sx += sxPartials[hv * chunks + j];
                }
                const float rho = 1.0f / sqrtf(ss / (float)dh + eps);
                const float corr = rho * rho * (sx / (float)dh);
                if (rstd != nullptr && c == 0) rstd[((int64_t)bt * 2 + part) * H + h] = rho;
                float w[ROPE_CHUNK];
                rope_load8(weight + c * ROPE_CHUNK, w);
#pragma unroll
                for (int j = 0; j < ROPE_CHUNK; j++) {
                    xd[j] = rho * fmaf(-x[j], corr, xd[j]) * w[j];
                    x[j] = x[j] * rho * w[j];
                }
            }
            __syncthreads();
        }
        if (!active) continue;
        if (rotate) {
            float cs[4], sn[4];
            rope_table4(cosT, sinT, t, dh, c, cs, sn);
#pragma unroll
            for (int p = 0; p < 4; p++) {
                const float e0 = x[2 * p], e1 = x[2 * p + 1];
                x[2 * p] = fmaf(e0, cs[p], -(e1 * sn[p]));
                x[2 * p + 1] = fmaf(e1, cs[p], e0 * sn[p]);
                const float t0 = xd[2 * p], t1 = xd[2 * p + 1];
                xd[2 * p] = fmaf(t0, cs[p], -(t1 * sn[p]));
                xd[2 * p + 1] = fmaf(t1, cs[p], t0 * sn[p]);
            }
        }
        const int64_t outOff = ((int64_t)(b * H + h) * T + t) * dh + c * ROPE_CHUNK;
        rope_store8(out + outOff, x);
        rope_store8(outDot + outOff, xd);
    }
}

#define QK_NORM_ROPE_JVP_TOK(NAME, OUT)                                                                            \
    extern "C" __global__ void __launch_bounds__(512, 2) NAME(                                                     \
            const float* __restrict__ qkv, const float* __restrict__ qkvDot, const float* __restrict__ qw,         \
            const float* __restrict__ kw, const float* __restrict__ cosT, const float* __restrict__ sinT,          \
            OUT* __restrict__ q, OUT* __restrict__ k, OUT* __restrict__ v, OUT* __restrict__ qDot,                 \
            OUT* __restrict__ kDot, OUT* __restrict__ vDot, float* __restrict__ rstd, int B, int T, int H, int dh, \
            float eps) {                                                                                           \
        qk_norm_rope_jvp_tok_body<OUT>(qkv, qkvDot, qw, kw, cosT, sinT, q, k, v, qDot, kDot, vDot, rstd, B, T, H,  \
                                       dh, eps);                                                                   \
    }
QK_NORM_ROPE_JVP_TOK(qk_norm_rope_jvp_tok, float)
QK_NORM_ROPE_JVP_TOK(qk_norm_rope_jvp_tok_bf16out, uint16_t)
