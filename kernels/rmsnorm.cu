// RMSNorm with optional adaLN modulation (facm-spec.md §3.2 block and final layer):
//   out = x·ρ ⊙ w ⊙ (1 + scale_b) + shift_b,   ρ = (mean_D(x²) + eps)^(−½) per row,
// with shift/scale read in place from the block's modulation tensor mod [B, K·D] (chunks shiftOff/D and scaleOff/D
// of batch row b = row / tokens). mod == nullptr gives plain RMSNorm: out = x·ρ ⊙ w. rstd (may be nullptr) receives
// ρ per row for the backward pass. Statistics in fp32 (the CPU reference accumulates in fp64; a row of 1152 squares
// summed in fp32 by 32 lanes and a butterfly is within a few 1e-7 of it).
//
// One warp per row, rows grid-strided over the warps of the grid; out may alias x (each row is read before it is
// written, by the same warp). Launchers: facm.backend.cuda.CudaNetworkOps (forward), CudaNormBackward (backward).
// The backward kernels and partials_sum_accumulate, the fixed-order finishing sum that every deterministic
// parameter-gradient reduction uses, follow the forward.
#include "rmsnorm_common.cuh"

// Largest D the register-cached kernel takes: each lane keeps RMSNORM_CACHE float4 of the row, so the row is read from
// memory once. 16 float4 per lane = 64 registers, D up to 2048 (XL: 1152, 1p6B: 1792).
#define RMSNORM_CACHE 16

// D % 4 == 0, D ≤ 128·RMSNORM_CACHE, and x, w, mod 16-byte aligned, out 16 (fp32) or 8 (bf16) bytes aligned (the
// launcher checks all of these and falls back to the scalar kernel otherwise). OUT = float or uint16_t (bf16): out
// may alias x only for fp32 (the launcher keeps bf16 out apart from x).
template <typename OUT>
__device__ __forceinline__ void rmsnorm_fwd_vec4_body(
        const float* x, const float* __restrict__ w, const float* __restrict__ mod,
        OUT* out, float* __restrict__ rstd, int64_t rows, int D, int tokens, int64_t modStride,
        int shiftOff, int scaleOff, float eps) {
    const int lane = threadIdx.x & 31;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    const int D4 = D >> 2;
    const float4* w4 = reinterpret_cast<const float4*>(w);
    for (int64_t row = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); row < rows; row += warpsInGrid) {
        const float4* xr = reinterpret_cast<const float4*>(x + row * D);
        float4 v[RMSNORM_CACHE];
        float ss = 0.0f;
#pragma unroll
        for (int i = 0; i < RMSNORM_CACHE; i++) {
            const int c = lane + 32 * i;
            v[i] = c < D4 ? xr[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            ss = fmaf(v[i].x, v[i].x, ss);
            ss = fmaf(v[i].y, v[i].y, ss);
            ss = fmaf(v[i].z, v[i].z, ss);
            ss = fmaf(v[i].w, v[i].w, ss);
        }
        ss = warp_sum(ss);
        const float rho = 1.0f / sqrtf(ss / (float)D + eps);
        if (rstd != nullptr && lane == 0) rstd[row] = rho;
        const float* shift = nullptr;
        const float* scale = nullptr;
        if (mod != nullptr) {
            const float* mb = mod + (row / tokens) * modStride;
            shift = mb + shiftOff;
            scale = mb + scaleOff;
        }
        OUT* orow = out + row * D;
#pragma unroll
        for (int i = 0; i < RMSNORM_CACHE; i++) {
            const int c = lane + 32 * i;
            if (c < D4) {
                rmsnorm_store4(orow, c, rmsnorm_modulate4(v[i], rho, w4[c], shift, scale, c));
            }
        }
    }
}

// Any D and any alignment: the same per-row formula with scalar loads, reading the row twice (the second pass hits
// L1/L2).
template <typename OUT>
__device__ __forceinline__ void rmsnorm_fwd_body(
        const float* x, const float* __restrict__ w, const float* __restrict__ mod,
        OUT* out, float* __restrict__ rstd, int64_t rows, int D, int tokens, int64_t modStride,
        int shiftOff, int scaleOff, float eps) {
    const int lane = threadIdx.x & 31;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    for (int64_t row = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); row < rows; row += warpsInGrid) {
        const float* xr = x + row * D;
        float ss = 0.0f;
        for (int d = lane; d < D; d += 32) ss = fmaf(xr[d], xr[d], ss);
        ss = warp_sum(ss);
        const float rho = 1.0f / sqrtf(ss / (float)D + eps);
        if (rstd != nullptr && lane == 0) rstd[row] = rho;
        const float* shift = nullptr;
        const float* scale = nullptr;
        if (mod != nullptr) {
            const float* mb = mod + (row / tokens) * modStride;
            shift = mb + shiftOff;
            scale = mb + scaleOff;
        }
        OUT* orow = out + row * D;
        for (int d = lane; d < D; d += 32) rmsnorm_store1(orow, d, rmsnorm_modulate(xr[d], rho, w[d], shift, scale, d));
    }
}

// rmsnorm_fwd[_vec4]: fp32 out. rmsnorm_fwd[_vec4]_bf16out: the same fp32 values, each rounded once to bf16 (the
// operand of the next bf16 GEMM, written directly instead of by a separate cast). Bytes per element: 4 read + 4 or 2
// written (XL/1 b256: 75.5 M elements, 604 or 453 MB, ~0.15 ms at 3 TB/s).
#define RMSNORM_FWD(NAME, BODY, OUT)                                                                               \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                                        \
            const float* x, const float* __restrict__ w, const float* __restrict__ mod, OUT* out,                  \
            float* __restrict__ rstd, int64_t rows, int D, int tokens, int64_t modStride, int shiftOff,            \
            int scaleOff, float eps) {                                                                             \
        BODY<OUT>(x, w, mod, out, rstd, rows, D, tokens, modStride, shiftOff, scaleOff, eps);                      \
    }
RMSNORM_FWD(rmsnorm_fwd_vec4, rmsnorm_fwd_vec4_body, float)
RMSNORM_FWD(rmsnorm_fwd, rmsnorm_fwd_body, float)
RMSNORM_FWD(rmsnorm_fwd_vec4_bf16out, rmsnorm_fwd_vec4_body, uint16_t)
RMSNORM_FWD(rmsnorm_fwd_bf16out, rmsnorm_fwd_body, uint16_t)

// ------------------------------------------------------------------------------------------- backward
// With n = x·ρ, s_b = 1 + scale_b (s = 1 without mod) and g = gradOut ⊙ w ⊙ s_b:
//   gradX = ρ·(g − n·mean_D(g·n))                 (rmsnorm_bwd_x, one warp per row, overwritten)
//   gradWeight += Σ_rows gradOut·n·s_b           (rmsnorm_bwd_partials, then partials_sum_accumulate)
//   gradMod[scale] += Σ_tokens gradOut·n·w,  gradMod[shift] += Σ_tokens gradOut   (the same two kernels)
// ρ is the one saved by the forward (rstd, required). The parameter sums are deterministic two-pass reductions: fixed
// segments of rows give per-segment column sums in a scratch buffer, which partials_sum_accumulate adds in segment
// order. The order depends on the shape only.

// One row with the saved ρ: mean_D(g·n) = ρ·Σ(g·x)/D, then gradX. Two passes over the row through L1/L2 instead of
// a register cache, so any D works and gradX may alias gradOut (each element is read before the same lane writes it).
template <bool VEC4>
__device__ __forceinline__ void rmsnorm_bwd_x_body(const float* __restrict__ x, const float* __restrict__ w,
                                                   const float* __restrict__ mod, const float* __restrict__ rstd,
                                                   const float* gradOut, float* gradX, int64_t rows, int D,
                                                   int tokens, int64_t modStride, int scaleOff) {
    const int lane = threadIdx.x & 31;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    const int units = VEC4 ? D >> 2 : D;
    for (int64_t row = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); row < rows; row += warpsInGrid) {
        const float* xr = x + row * D;
        const float rho = rstd[row];
        const float* scale = mod != nullptr ? mod + (row / tokens) * modStride + scaleOff : nullptr;
        const float* gr = gradOut + row * D;
        float* gx = gradX + row * D;
        float dot = 0.0f;  // Σ_d g_d·x_d
        for (int c = lane; c < units; c += 32) {
            if (VEC4) {
                const float4 go = reinterpret_cast<const float4*>(gr)[c];
                const float4 xv = reinterpret_cast<const float4*>(xr)[c];
                float4 wv = reinterpret_cast<const float4*>(w)[c];
                if (scale != nullptr) {
                    const float4 sv = reinterpret_cast<const float4*>(scale)[c];
                    wv = make_float4(wv.x * (1.0f + sv.x), wv.y * (1.0f + sv.y), wv.z * (1.0f + sv.z),
                                     wv.w * (1.0f + sv.w));
                }
                dot = fmaf(go.x * wv.x, xv.x, dot);
                dot = fmaf(go.y * wv.y, xv.y, dot);
                dot = fmaf(go.z * wv.z, xv.z, dot);
                dot = fmaf(go.w * wv.w, xv.w, dot);
            } else {
                const float ws = scale != nullptr ? w[c] * (1.0f + scale[c]) : w[c];
                dot = fmaf(gr[c] * ws, xr[c], dot);
            }
        }
        dot = warp_sum(dot);
        const float meanGn = rho * dot / (float)D;  // mean_D(g·n)
        const float nm = rho * meanGn;              // x·nm = n·mean_D(g·n)
        for (int c = lane; c < units; c += 32) {
            if (VEC4) {
                const float4 go = reinterpret_cast<const float4*>(gr)[c];
                const float4 xv = reinterpret_cast<const float4*>(xr)[c];
                float4 wv = reinterpret_cast<const float4*>(w)[c];
                if (scale != nullptr) {
                    const float4 sv = reinterpret_cast<const float4*>(scale)[c];
                    wv = make_float4(wv.x * (1.0f + sv.x), wv.y * (1.0f + sv.y), wv.z * (1.0f + sv.z),
                                     wv.w * (1.0f + sv.w));
                }
                reinterpret_cast<float4*>(gx)[c] =
                        make_float4(rho * fmaf(-xv.x, nm, go.x * wv.x), rho * fmaf(-xv.y, nm, go.y * wv.y),
                                    rho * fmaf(-xv.z, nm, go.z * wv.z), rho * fmaf(-xv.w, nm, go.w * wv.w));
            } else {
                const float ws = scale != nullptr ? w[c] * (1.0f + scale[c]) : w[c];
                gx[c] = rho * fmaf(-xr[c], nm, gr[c] * ws);
            }
        }
    }
}

// Launch: blocks of 256 threads (8 rows at a time), like rmsnorm_fwd. mod may be nullptr (plain RMSNorm).
// _vec4: D % 4 == 0 and x, w, mod, gradOut, gradX 16-byte aligned (checked by the launcher). The bound of 3 blocks
// per SM keeps ptxas from capping at 64 registers, where the vec4 kernel spilled 8 bytes on sm_80.
#define RMSNORM_BWD_X(NAME, VEC4)                                                                                  \
    extern "C" __global__ void __launch_bounds__(256, 3) NAME(                                                     \
            const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ mod,               \
            const float* __restrict__ rstd, const float* gradOut, float* gradX, int64_t rows, int D, int tokens,   \
            int64_t modStride, int scaleOff) {                                                                     \
        rmsnorm_bwd_x_body<VEC4>(x, w, mod, rstd, gradOut, gradX, rows, D, tokens, modStride, scaleOff);         \
    }
RMSNORM_BWD_X(rmsnorm_bwd_x, false)
RMSNORM_BWD_X(rmsnorm_bwd_x_vec4, true)

// Rows per thread row of a partials block: a block is 32 columns × RMSNORM_PART_ROWS thread rows.
#define RMSNORM_PART_ROWS 8

// Per-segment column sums for the parameter gradients. Segments are runs of segLen rows inside one batch element
// (segsPerBatch of them per batch element, the last one shorter), so a segment has one modulation row b. With
// A = Σ_seg gradOut·n and G = Σ_seg gradOut per column d:
//   partW[seg, d] = A·s_b[d] (A without mod),  partScale[seg, d] = A·w[d],  partShift[seg, d] = G.
// Any of the three outputs may be nullptr (not wanted; partScale and partShift are nullptr without mod).
// Grid: (ceil(D / 32), min(segments, 65535)) with segments grid-strided over y; block (32, RMSNORM_PART_ROWS).
// Thread row ty adds rows ty, ty + 8, ... of the segment in order, then thread row 0 adds the 8 results in order.
extern "C" __global__ void __launch_bounds__(32 * RMSNORM_PART_ROWS) rmsnorm_bwd_partials(
        const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ mod,
        const float* __restrict__ rstd, const float* __restrict__ gradOut, float* __restrict__ partW,
        float* __restrict__ partScale, float* __restrict__ partShift, int64_t rows, int D, int tokens,
        int64_t modStride, int scaleOff, int segLen, int segsPerBatch, int segments) {
    __shared__ float sumA[RMSNORM_PART_ROWS][33];
    __shared__ float sumG[RMSNORM_PART_ROWS][33];
    const int d = blockIdx.x * 32 + threadIdx.x;
    for (int seg = blockIdx.y; seg < segments; seg += gridDim.y) {
        const int64_t b = seg / segsPerBatch;
        const int64_t first = b * tokens + (int64_t)(seg % segsPerBatch) * segLen;
        const int64_t end = min(first + segLen, min((b + 1) * tokens, rows));
        float a = 0.0f, g = 0.0f;
        if (d < D) {
            for (int64_t r = first + threadIdx.y; r < end; r += RMSNORM_PART_ROWS) {
                const float go = gradOut[r * D + d];
                a = fmaf(go, x[r * D + d] * rstd[r], a);
                g += go;
            }
        }
        sumA[threadIdx.y][threadIdx.x] = a;
        sumG[threadIdx.y][threadIdx.x] = g;
        __syncthreads();
        if (threadIdx.y == 0 && d < D) {
            a = sumA[0][threadIdx.x];
            g = sumG[0][threadIdx.x];
            for (int t = 1; t < RMSNORM_PART_ROWS; t++) {
                a += sumA[t][threadIdx.x];
                g += sumG[t][threadIdx.x];
            }
            const int64_t o = (int64_t)seg * D + d;
            if (partW != nullptr) partW[o] = mod != nullptr ? a * (1.0f + mod[b * modStride + scaleOff + d]) : a;
            if (partScale != nullptr) partScale[o] = a * w[d];
            if (partShift != nullptr) partShift[o] = g;
        }
        __syncthreads();  // the shared sums are rewritten by the next segment
    }
}

// The finishing pass of every deterministic parameter-gradient reduction in these kernels (RMSNorm weight and
// modulation, gated-residual gate, qk-norm weights): partials hold `groups` groups of `perGroup` consecutive partial
// rows (row stride partialStride floats) of `cols` values; for each group g and column c,
//   out[g·outGroupStride + c] += Σ_{k < perGroup} partials[(g·perGroup + k)·partialStride + c].
// Grid (ceil(cols / 32), min(groups, 65535)) with groups grid-strided over y; block (32, RMSNORM_PART_ROWS). Lanes
// take neighbouring columns (coalesced), thread row ty adds k = ty, ty + 8, ... in order, then thread row 0 adds the
// 8 results in order: the result depends only on the partials and the shape.
extern "C" __global__ void __launch_bounds__(32 * RMSNORM_PART_ROWS) partials_sum_accumulate(
        const float* __restrict__ partials, int64_t partialStride, float* __restrict__ out, int64_t outGroupStride,
        int groups, int perGroup, int cols) {
    __shared__ float sums[RMSNORM_PART_ROWS][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    for (int g = blockIdx.y; g < groups; g += gridDim.y) {
        float s = 0.0f;
        if (c < cols) {
            const float* p = partials + (int64_t)g * perGroup * partialStride + c;
            for (int k = threadIdx.y; k < perGroup; k += RMSNORM_PART_ROWS) s += p[(int64_t)k * partialStride];
        }
        sums[threadIdx.y][threadIdx.x] = s;
        __syncthreads();
        if (threadIdx.y == 0 && c < cols) {
            s = sums[0][threadIdx.x];
            for (int t = 1; t < RMSNORM_PART_ROWS; t++) s += sums[t][threadIdx.x];
            out[(int64_t)g * outGroupStride + c] += s;
        }
        __syncthreads();  // the shared sums are rewritten by the next group
    }
}

// ------------------------------------------------------------------------------------------- forward mode (JVP)
// out, rstd exactly as rmsnorm_fwd (the same per-lane order for the sum of squares, so bit-identical to it; the
// _vec4 forward sums in another order), and with n = x·ρ, s = 1 + scale, ṅ = ρ·(ẋ − x·ρ²·mean_D(x ⊙ ẋ)):
//   outDot = w ⊙ ṅ ⊙ s + n ⊙ w ⊙ scaleDot + shiftDot   (without mod: w ⊙ ṅ)
// xDot and modDot may be nullptr (zero tangents). One warp per row like the forward; out may alias x and outDot xDot
// (fp32 only). OUT = float, or uint16_t (bf16): out and outDot are the same fp32 values, each rounded once, the GEMM
// operands of the next linear and of its tangent (rmsnorm_jvp_bf16out; no separate cast pass).
// The tangent of one modulated output: w ⊙ ṅ ⊙ (1 + scale) + n ⊙ w ⊙ scaleDot + shiftDot with n = x·ρ and
// ṅ = ρ·(ẋ − x·corr), corr = ρ²·mean_D(x ⊙ ẋ) (without mod: w ⊙ ṅ; without modDot: no scaleDot/shiftDot terms).
__device__ __forceinline__ float rmsnorm_tangent(float x, float xDot, float w, float rho, float corr,
                                                 const float* shift, const float* scale, const float* shiftDot,
                                                 const float* scaleDot, int d) {
    const float nDot = rho * fmaf(-x, corr, xDot);
    float t = w * nDot;
    if (shift != nullptr) {
        t *= 1.0f + scale[d];
        if (scaleDot != nullptr) t = fmaf(x * rho * w, scaleDot[d], t + shiftDot[d]);
    }
    return t;
}

template <typename OUT>
__device__ __forceinline__ void rmsnorm_jvp_body(
        const float* x, const float* xDot, const float* __restrict__ w, const float* __restrict__ mod,
        const float* __restrict__ modDot, OUT* out, OUT* outDot, float* __restrict__ rstd, int64_t rows, int D,
        int tokens, int64_t modStride, int shiftOff, int scaleOff, float eps) {
    const int lane = threadIdx.x & 31;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    for (int64_t row = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); row < rows; row += warpsInGrid) {
        const float* xr = x + row * D;
        const float* xd = xDot != nullptr ? xDot + row * D : nullptr;
        float ss = 0.0f;
        float sx = 0.0f;  // Σ x·ẋ
        for (int d = lane; d < D; d += 32) {
            ss = fmaf(xr[d], xr[d], ss);
            if (xd != nullptr) sx = fmaf(xr[d], xd[d], sx);
        }
        ss = warp_sum(ss);
        sx = warp_sum(sx);
        const float rho = 1.0f / sqrtf(ss / (float)D + eps);
        const float corr = rho * rho * (sx / (float)D);  // ρ²·mean_D(x ⊙ ẋ)
        if (rstd != nullptr && lane == 0) rstd[row] = rho;
        const float* shift = nullptr;
        const float* scale = nullptr;
        const float* shiftDot = nullptr;
        const float* scaleDot = nullptr;
        if (mod != nullptr) {
            const int64_t mb = (row / tokens) * modStride;
            shift = mod + mb + shiftOff;
            scale = mod + mb + scaleOff;
            if (modDot != nullptr) {
                shiftDot = modDot + mb + shiftOff;
                scaleDot = modDot + mb + scaleOff;
            }
        }
        OUT* orow = out + row * D;
        OUT* odrow = outDot + row * D;
        for (int d = lane; d < D; d += 32) {
            const float xv = xr[d];
            const float wv = w[d];
            const float xdv = xd != nullptr ? xd[d] : 0.0f;
            rmsnorm_store1(orow, d, rmsnorm_modulate(xv, rho, wv, shift, scale, d));
            rmsnorm_store1(odrow, d, rmsnorm_tangent(xv, xdv, wv, rho, corr, shift, scale, shiftDot, scaleDot, d));
        }
    }
}

// The register-cached JVP, taken under the vec4 forward's conditions (D % 4 == 0, D ≤ 2048, 16-byte aligned x, xDot,
// w, mod, modDot; out and outDot 16 (fp32) or 8 (bf16) bytes aligned): out and rstd bit-identical to
// rmsnorm_fwd_vec4 (the same float4 order of Σx²), Σ x·ẋ in the same order, the tangent formula of rmsnorm_jvp_body.
// The row and its tangent are read once into registers (CACHE float4 each per lane; all loads before any store, so out
// may alias x and outDot xDot for fp32). Why: the scalar kernel read each element twice with 4-byte loads behind
// possibly aliasing stores, at ~27 % of the memory floor (XL/1 b32: 98.6 µs, 57 calls per FACM step).
template <int CACHE, typename OUT>
__device__ __forceinline__ void rmsnorm_jvp_vec4_body(
        const float* x, const float* xDot, const float* __restrict__ w, const float* __restrict__ mod,
        const float* __restrict__ modDot, OUT* out, OUT* outDot, float* __restrict__ rstd, int64_t rows, int D,
        int tokens, int64_t modStride, int shiftOff, int scaleOff, float eps) {
    const int lane = threadIdx.x & 31;
    const int warpsPerBlock = blockDim.x >> 5;
    const int64_t warpsInGrid = (int64_t)gridDim.x * warpsPerBlock;
    const int D4 = D >> 2;
    const float4* w4 = reinterpret_cast<const float4*>(w);
    for (int64_t row = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); row < rows; row += warpsInGrid) {
        const float4* xr = reinterpret_cast<const float4*>(x + row * D);
        const float4* xdr = xDot != nullptr ? reinterpret_cast<const float4*>(xDot + row * D) : nullptr;
        float4 v[CACHE], vd[CACHE];
#pragma unroll
        for (int i = 0; i < CACHE; i++) {
            const int c = lane + 32 * i;
            v[i] = c < D4 ? xr[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            vd[i] = c < D4 && xdr != nullptr ? xdr[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        float ss = 0.0f;
        float sx = 0.0f;
#pragma unroll
        for (int i = 0; i < CACHE; i++) {
            ss = fmaf(v[i].x, v[i].x, ss);
            ss = fmaf(v[i].y, v[i].y, ss);
            ss = fmaf(v[i].z, v[i].z, ss);
            ss = fmaf(v[i].w, v[i].w, ss);
            sx = fmaf(v[i].x, vd[i].x, sx);
            sx = fmaf(v[i].y, vd[i].y, sx);
            sx = fmaf(v[i].z, vd[i].z, sx);
            sx = fmaf(v[i].w, vd[i].w, sx);
        }
        ss = warp_sum(ss);
        sx = warp_sum(sx);
        const float rho = 1.0f / sqrtf(ss / (float)D + eps);
        const float corr = rho * rho * (sx / (float)D);
        if (rstd != nullptr && lane == 0) rstd[row] = rho;
        const float* shift = nullptr;
        const float* scale = nullptr;
        const float* shiftDot = nullptr;
        const float* scaleDot = nullptr;
        if (mod != nullptr) {
            const int64_t mb = (row / tokens) * modStride;
            shift = mod + mb + shiftOff;
            scale = mod + mb + scaleOff;
            if (modDot != nullptr) {
                shiftDot = modDot + mb + shiftOff;
                scaleDot = modDot + mb + scaleOff;
            }
        }
        OUT* orow = out + row * D;
        OUT* odrow = outDot + row * D;
#pragma unroll
        for (int i = 0; i < CACHE; i++) {
            const int c = lane + 32 * i;
            if (c < D4) {
                const float4 wv = w4[c];
                const int d = 4 * c;
                rmsnorm_store4(orow, c, rmsnorm_modulate4(v[i], rho, wv, shift, scale, c));
                rmsnorm_store4(odrow, c, make_float4(
                        rmsnorm_tangent(v[i].x, vd[i].x, wv.x, rho, corr, shift, scale, shiftDot, scaleDot, d),
                        rmsnorm_tangent(v[i].y, vd[i].y, wv.y, rho, corr, shift, scale, shiftDot, scaleDot, d + 1),
                        rmsnorm_tangent(v[i].z, vd[i].z, wv.z, rho, corr, shift, scale, shiftDot, scaleDot, d + 2),
                        rmsnorm_tangent(v[i].w, vd[i].w, wv.w, rho, corr, shift, scale, shiftDot, scaleDot, d + 3)));
            }
        }
    }
}

#define RMSNORM_JVP_VEC4(NAME, CACHE, OUT)                                                                         \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                                        \
            const float* x, const float* xDot, const float* __restrict__ w, const float* __restrict__ mod,         \
            const float* __restrict__ modDot, OUT* out, OUT* outDot, float* __restrict__ rstd, int64_t rows, int D, \
            int tokens, int64_t modStride, int shiftOff, int scaleOff, float eps) {                                \
        rmsnorm_jvp_vec4_body<CACHE, OUT>(x, xDot, w, mod, modDot, out, outDot, rstd, rows, D, tokens, modStride,  \
                                          shiftOff, scaleOff, eps);                                                \
    }
// _c9: 9 float4 per lane (D ≤ 1152, XL's width exactly); _c16: D ≤ 2048 (RMSNORM_CACHE, as the vec4 forward).
RMSNORM_JVP_VEC4(rmsnorm_jvp_vec4_c9, 9, float)
RMSNORM_JVP_VEC4(rmsnorm_jvp_vec4_c9_bf16out, 9, uint16_t)
RMSNORM_JVP_VEC4(rmsnorm_jvp_vec4_c16, RMSNORM_CACHE, float)
RMSNORM_JVP_VEC4(rmsnorm_jvp_vec4_c16_bf16out, RMSNORM_CACHE, uint16_t)

#define RMSNORM_JVP(NAME, OUT)                                                                                     \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                                        \
            const float* x, const float* xDot, const float* __restrict__ w, const float* __restrict__ mod,         \
            const float* __restrict__ modDot, OUT* out, OUT* outDot, float* __restrict__ rstd, int64_t rows, int D, \
            int tokens, int64_t modStride, int shiftOff, int scaleOff, float eps) {                                \
        rmsnorm_jvp_body<OUT>(x, xDot, w, mod, modDot, out, outDot, rstd, rows, D, tokens, modStride, shiftOff,    \
                              scaleOff, eps);                                                                      \
    }
RMSNORM_JVP(rmsnorm_jvp, float)
RMSNORM_JVP(rmsnorm_jvp_bf16out, uint16_t)
