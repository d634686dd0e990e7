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
