// The device-resident step log of the captured training step (issue 7): per step the loss, its objective terms, the
// gradient norm and the skip flag as fp64 rows that the host reads only at log steps (facm.tensor.TrainingOps
// stepLoss / stepLogEnd are the CPU reference; every value here is the same IEEE operation in the same order, so
// rows are bit-identical to the host path's numbers). One thread each: B is at most a few hundred samples.
#include "common.cuh"

#define STEP_LOG_VALUES 5
#define LOG_LOSS 0
#define LOG_NORM 1
#define LOG_SKIP 2
#define LOG_TERMS 3
#define CONTROL_SKIP 1

// Σ in double in index order, then / b (the host's mean of the downloaded floats); null: 0.
__device__ double batch_mean(const float* v, int b) {
    if (v == nullptr) return 0.0;
    double sum = 0.0;
    for (int i = 0; i < b; i++) sum += (double)v[i];
    return sum / (double)b;
}

// loss[0] = (float)(mean(term0) + mean(term1)); row count[0] gets the loss and both terms (if within capacity).
extern "C" __global__ void step_loss_f32(const float* __restrict__ term0, const float* __restrict__ term1, int b,
                                         float* __restrict__ loss, double* __restrict__ log, int capacity,
                                         const int* __restrict__ count) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const double a = batch_mean(term0, b);
    const double c = batch_mean(term1, b);
    const float total = (float)(a + c);
    loss[0] = total;
    const int row = count[0];
    if (row >= 0 && row < capacity) {
        double* r = log + (int64_t)row * STEP_LOG_VALUES;
        r[LOG_LOSS] = (double)total;
        r[LOG_TERMS] = a;
        r[LOG_TERMS + 1] = c;
    }
}

// Row count[0]: norm = sqrt(Σg²) (NaN for a non-finite loss), skip = control[SKIP]; then count[0] += 1.
extern "C" __global__ void step_log_end(const float* __restrict__ sumSquares, const float* __restrict__ control,
                                        double* __restrict__ log, int capacity, int* __restrict__ count) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const int row = count[0];
    if (row >= 0 && row < capacity) {
        double* r = log + (int64_t)row * STEP_LOG_VALUES;
        const double nan = __longlong_as_double(0x7ff8000000000000LL);  // Double.NaN
        r[LOG_NORM] = isfinite(r[LOG_LOSS]) ? __dsqrt_rn((double)sumSquares[0]) : nan;
        r[LOG_SKIP] = control[CONTROL_SKIP] != 0.0f ? 1.0 : 0.0;
    }
    count[0] = row + 1;
}
