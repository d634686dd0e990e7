// Flow-matching loss of stage 1 (facm-spec.md §4; the FM term of §5.2c) with its gradient. For pred F and target u
// [B, C, H, W], per sample b:
//   ℓ_b = mean_{C,H,W}(F − u)² + mean_{H,W}(1 − cos_C(F, u)),
//   cos_C(F, u) = F·u / (max(‖F‖, 1e-8)·max(‖u‖, 1e-8))   over the C channels of each pixel,
// and, when gradPred is given, gradPred = gradScale·∂ℓ_b/∂F (overwritten). With N_F = max(‖F‖, 1e-8), N_u likewise,
// HW pixels and C channels, the gradient at channel c of a pixel is
//   2(F_c − u_c)/(C·HW) − (u_c/(N_F·N_u) − [‖F‖ > 1e-8]·cos·F_c/N_F²)/HW,
// local to the pixel, so one pass computes both. Everything is accumulated in fp64 (the work is tiny next to a
// network pass) and rounded once per output; the per-sample sums use a fixed tree, so results are deterministic.
// Launcher: facm.backend.cuda.CudaTrainingOps.
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
    const double mseScale = 2.0 / ((double)C * HW);
    for (int b = blockIdx.x; b < B; b += gridDim.x) {
        const int64_t base = (int64_t)b * C * HW;
        const float* p = pred + base;
        const float* u = target + base;
        double squaredError = 0.0, cosineTerm = 0.0;
        for (int x = threadIdx.x; x < HW; x += LOSS_THREADS) {
            double dot = 0.0, pp = 0.0, uu = 0.0, se = 0.0;
            for (int c = 0; c < C; c++) {
                const double pv = p[(int64_t)c * HW + x];
                const double uv = u[(int64_t)c * HW + x];
                dot += pv * uv;
                pp += pv * pv;
                uu += uv * uv;
                se += (pv - uv) * (pv - uv);
            }
            const double normP = sqrt(pp);
            const double clampedP = fmax(normP, LOSS_NORM_EPS);
            const double clampedU = fmax(sqrt(uu), LOSS_NORM_EPS);
            const double cosine = dot / (clampedP * clampedU);
            squaredError += se;
            cosineTerm += 1.0 - cosine;
            if (gradPred != nullptr) {
                const double crossScale = 1.0 / (clampedP * clampedU);
                const double selfScale = normP > LOSS_NORM_EPS ? cosine / (clampedP * clampedP) : 0.0;
                float* g = gradPred + base;
                for (int c = 0; c < C; c++) {
                    const double pv = p[(int64_t)c * HW + x];
                    const double uv = u[(int64_t)c * HW + x];
                    const double d = mseScale * (pv - uv) - (uv * crossScale - selfScale * pv) / HW;
                    g[(int64_t)c * HW + x] = (float)(gradScale * d);
                }
            }
        }
        squaredError = loss_block_sum(squaredError, scratch);
        cosineTerm = loss_block_sum(cosineTerm, scratch);
        if (threadIdx.x == 0) perSample[b] = (float)(squaredError / ((double)C * HW) + cosineTerm / HW);
    }
}
