// Flow-matching loss of stage 1 (facm-spec.md §4; the FM term of §5.2c) with its gradient. For pred F and target u
// [B, C, H, W], per sample b:
//   ℓ_b = mean_{C,H,W}(F − u)² + mean_{H,W}(1 − cos_C(F, u)),
//   cos_C(F, u) = F·u / (max(‖F‖, 1e-8)·max(‖u‖, 1e-8))   over the C channels of each pixel,
// and, when gradPred is given, gradPred = gradScale·∂ℓ_b/∂F (overwritten). With n_F = ‖F‖, N_F = max(n_F, 1e-8),
// N_u = max(‖u‖, 1e-8), HW pixels and C channels, the gradient at channel c of a pixel is
//   gradScale·(2(F_c − u_c)/(C·HW) − (u_c/(N_F·N_u) − [n_F > 1e-8]·(cos/n_F²)·F_c)/HW)
// (the clamp's own derivative is zero), local to the pixel, so one pass computes both. Everything is fp64. The
// gradient is bit-identical to the CPU reference (facm.backend.cpu.CpuTrainingOps): the same operations in the same
// order, each rounded once (_rn intrinsics: no fma contraction). The per-sample sums use a fixed tree instead of the
// CPU's sequential order, so ℓ_b may differ from the CPU's in the last bit of its fp32 rounding; the order depends
// on the shape only, so results are reproducible. Launcher: facm.backend.cuda.CudaTrainingOps.
#include "common.cuh"

#define LOSS_THREADS 256
#define LOSS_NORM_EPS 1e-8

__device__ __forceinline__ double loss_warp_sum(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_WARP_MASK, v, offset);
    return v;
}

// Sum over the LOSS_THREADS threads of the block in a fixed order; every thread gets it. All threads must call it.
__device__ __forceinline__ double loss_block_sum(double v, double* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    v = loss_warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return loss_warp_sum(lane < LOSS_THREADS / 32 ? scratch[lane] : 0.0);
}

// One block of LOSS_THREADS threads per sample (samples grid-strided), threads striding over the HW pixels, each
// thread looping over the C channels of its pixel (stride HW: coalesced across the threads). gradPred may be nullptr.
extern "C" __global__ void __launch_bounds__(LOSS_THREADS) flow_matching_loss_f32(
        const float* __restrict__ pred, const float* __restrict__ target, float* __restrict__ perSample,
        float* __restrict__ gradPred, int B, int C, int HW, float gradScale) {
    __shared__ double scratch[32];
    const double mseScale = __ddiv_rn(2.0, __dmul_rn((double)C, (double)HW));
    const double cosScale = __ddiv_rn(1.0, (double)HW);
    for (int b = blockIdx.x; b < B; b += gridDim.x) {
        const int64_t base = (int64_t)b * C * HW;
        const float* p = pred + base;
        const float* u = target + base;
        double squaredError = 0.0, cosineTerm = 0.0;
        for (int x = threadIdx.x; x < HW; x += LOSS_THREADS) {
            double pu = 0.0, pp = 0.0, uu = 0.0;
            for (int c = 0; c < C; c++) {
                const double pv = p[(int64_t)c * HW + x];
                const double uv = u[(int64_t)c * HW + x];
                const double diff = __dsub_rn(pv, uv);
                squaredError = __dadd_rn(squaredError, __dmul_rn(diff, diff));
                pp = __dadd_rn(pp, __dmul_rn(pv, pv));
                uu = __dadd_rn(uu, __dmul_rn(uv, uv));
                pu = __dadd_rn(pu, __dmul_rn(pv, uv));
            }
            const double normP = __dsqrt_rn(pp);
            const double clampedP = fmax(normP, LOSS_NORM_EPS);
            const double clampedU = fmax(__dsqrt_rn(uu), LOSS_NORM_EPS);
            const double denom = __dmul_rn(clampedP, clampedU);
            const double cosine = __ddiv_rn(pu, denom);
            cosineTerm = __dadd_rn(cosineTerm, __dsub_rn(1.0, cosine));
            if (gradPred != nullptr) {
                const double normTerm = normP > LOSS_NORM_EPS ? __ddiv_rn(cosine, __dmul_rn(normP, normP)) : 0.0;
                float* g = gradPred + base;
                for (int c = 0; c < C; c++) {
                    const double pv = p[(int64_t)c * HW + x];
                    const double uv = u[(int64_t)c * HW + x];
                    const double dCos = __dsub_rn(__ddiv_rn(uv, denom), __dmul_rn(normTerm, pv));
                    const double d = __dsub_rn(__dmul_rn(mseScale, __dsub_rn(pv, uv)), __dmul_rn(cosScale, dCos));
                    g[(int64_t)c * HW + x] = (float)__dmul_rn((double)gradScale, d);
                }
            }
        }
        squaredError = loss_block_sum(squaredError, scratch);
        cosineTerm = loss_block_sum(cosineTerm, scratch);
        if (threadIdx.x == 0) {
            perSample[b] = (float)__dadd_rn(__ddiv_rn(squaredError, __dmul_rn((double)C, (double)HW)),
                                            __ddiv_rn(cosineTerm, (double)HW));
        }
    }
}

// Consistency losses of FACM, MeanFlow and sCM (facm-spec.md §5.2d, §5.7; contract:
// facm.tensor.TrainingOps#consistencyLoss). For F = pred, Ḟ = tangent, v = velocity [B, N...] and coefs [B, 3] =
// (k, α, β) per sample:
//   Δ_i = α·clip(F_i − (v_i + k·Ḟ_i), −clip, clip)      (no clip when clip ≤ 0 or infinite)
//   Δ_i ← Δ_i / (√(mean Δ²) + normEps)                 only when normEps > 0 (sCM)
//   e = mean Δ²,  w = (e + weightEps)^weightPower (1 when the power is 0),  L_b = β·e/w
//   gradPred_i = (gradScale·β/w·2/N)·Δ_i               (target and w held fixed: stop-gradient)
// One block per sample (samples grid-strided), three passes over the sample's elements, recomputing Δ each time:
// (a) when normalizing, Σ Δ² of the raw Δ; (b) e; (c) gradPred and L_b. Everything is fp64 with the CPU reference's
// operation order (facm.backend.cpu.CpuTrainingOps, _rn intrinsics: no fma contraction), so Δ is bit-identical to it
// even where the residual cancels; the sums use a fixed tree instead of the CPU's sequential order, so L_b and
// gradPred may differ from the CPU's in the last bit of their fp32 rounding (reproducible from run to run).
__device__ __forceinline__ double consistency_delta(float pred, float tangent, float velocity, double k, double alpha,
                                                    double limit) {
    double d = __dsub_rn((double)pred, __dadd_rn((double)velocity, __dmul_rn(k, (double)tangent)));
    // Comparisons, not fmin/fmax: a NaN residual must stay NaN (fmin/fmax would return the limit).
    if (d > limit) {
        d = limit;
    } else if (d < -limit) {
        d = -limit;
    }
    return __dmul_rn(alpha, d);
}

extern "C" __global__ void __launch_bounds__(LOSS_THREADS) consistency_loss_f32(
        const float* __restrict__ pred, const float* __restrict__ tangent, const float* __restrict__ velocity,
        const float* __restrict__ coefs, float* __restrict__ perSample, float* __restrict__ gradPred, int B,
        int64_t N, float clip, float normEps, float weightPower, float weightEps, float gradScale) {
    __shared__ double scratch[32];
    const double limit = (clip > 0.0f && clip < INFINITY) ? (double)clip : (double)INFINITY;
    for (int b = blockIdx.x; b < B; b += gridDim.x) {
        const int64_t base = (int64_t)b * N;
        const float* f = pred + base;
        const float* t = tangent + base;
        const float* v = velocity + base;
        const double k = coefs[3 * (int64_t)b], alpha = coefs[3 * (int64_t)b + 1], beta = coefs[3 * (int64_t)b + 2];
        double divisor = 1.0;
        if (normEps > 0.0f) {  // (a) sCM's normalization: rms of the raw Δ
            double squares = 0.0;
            for (int64_t i = threadIdx.x; i < N; i += LOSS_THREADS) {
                const double d = consistency_delta(f[i], t[i], v[i], k, alpha, limit);
                squares = __dadd_rn(squares, __dmul_rn(d, d));
            }
            squares = loss_block_sum(squares, scratch);
            divisor = __dadd_rn(__dsqrt_rn(__ddiv_rn(squares, (double)N)), (double)normEps);
        }
        double squares = 0.0;  // (b) e = mean Δ² of the final Δ
        for (int64_t i = threadIdx.x; i < N; i += LOSS_THREADS) {
            const double d = __ddiv_rn(consistency_delta(f[i], t[i], v[i], k, alpha, limit), divisor);
            squares = __dadd_rn(squares, __dmul_rn(d, d));
        }
        squares = loss_block_sum(squares, scratch);
        const double meanSquare = __ddiv_rn(squares, (double)N);
        const double weight = weightPower == 0.0f ? 1.0
                : pow(__dadd_rn(meanSquare, (double)weightEps), (double)weightPower);
        if (threadIdx.x == 0) perSample[b] = (float)__ddiv_rn(__dmul_rn(beta, meanSquare), weight);
        if (gradPred != nullptr) {  // (c)
            const double factor = __ddiv_rn(__dmul_rn(__ddiv_rn(__dmul_rn((double)gradScale, beta), weight), 2.0),
                                            (double)N);
            float* g = gradPred + base;
            for (int64_t i = threadIdx.x; i < N; i += LOSS_THREADS) {
                const double d = __ddiv_rn(consistency_delta(f[i], t[i], v[i], k, alpha, limit), divisor);
                g[i] = (float)__dmul_rn(factor, d);
            }
        }
    }
}
