// Softmax over the last axis: out = exp(x - max(x)) / sum(exp(x - max(x))), row by row (numerically stable form).
//
// blockDim.x threads share a row (one warp for rows up to 1024, more for longer rows; the host picks from the row
// length only), blockDim.y rows per block, rows striding over the grid. Three passes over the row: the maximum, the
// sum of exponentials (fp32, fixed tree order), then the normalized values. out may alias x: every element is
// written by the thread that read it, after the whole row has been reduced.
#include "common.cuh"

extern "C" __global__ void softmax_fwd(const float* x, float* out, int64_t rows, int64_t n) {
    __shared__ float scratch[32 * 32];
    const int64_t rows_per_step = (int64_t)gridDim.x * blockDim.y;
    for (int64_t first = (int64_t)blockIdx.x * blockDim.y; first < rows; first += rows_per_step) {
        const int64_t row = first + threadIdx.y;
        const bool active = row < rows;
        const float* xr = x + (active ? row : 0) * n;
        float m = -INFINITY;
        if (active) {
            for (int64_t k = threadIdx.x; k < n; k += blockDim.x) m = java_max(m, xr[k]);
        }
        m = row_max(m, scratch);
        float s = 0.0f;
        if (active) {
            for (int64_t k = threadIdx.x; k < n; k += blockDim.x) s += expf(xr[k] - m);
        }
        s = row_sum(s, scratch);
        if (active) {
            float* outr = out + row * n;
            for (int64_t k = threadIdx.x; k < n; k += blockDim.x) outr[k] = expf(xr[k] - m) / s;
        }
    }
}
