// Reductions over one axis (facm.tensor.ReduceOp: SUM, MEAN, MAX). The input is viewed as [outer, n, inner] and
// the n axis is reduced away, giving [outer, inner].
//
// Accumulation is fp32 (the CPU reference sums in double). The order is fixed by the launch shape, which the host
// derives from the sizes only, so a given input always reduces to the same bits: each thread adds a strided slice
// of the axis in order, then the slices are combined by a fixed tree (lanes, then warps).
#include "common.cuh"

// Ordinals of facm.tensor.ReduceOp.
enum ReduceCode { R_SUM = 0, R_MEAN, R_MAX };

__device__ __forceinline__ float reduce_identity(int op) { return op == R_MAX ? -INFINITY : 0.0f; }

__device__ __forceinline__ float reduce_combine(int op, float acc, float v) {
    return op == R_MAX ? java_max(acc, v) : acc + v;
}

__device__ __forceinline__ float reduce_finish(int op, float acc, int64_t n) {
    return op == R_MEAN ? acc / (float)n : acc;
}

// inner == 1: each row of n contiguous values is reduced by blockDim.x threads (one warp for short rows, more for
// long ones); blockDim.y rows per block, rows striding over the grid.
extern "C" __global__ void reduce_rows_f32(int op, const float* x, float* out, int64_t rows, int64_t n) {
    __shared__ float scratch[32 * 32];
    const int64_t rows_per_step = (int64_t)gridDim.x * blockDim.y;
    for (int64_t first = (int64_t)blockIdx.x * blockDim.y; first < rows; first += rows_per_step) {
        const int64_t row = first + threadIdx.y;
        float acc = reduce_identity(op);
        if (row < rows) {
            const float* xr = x + row * n;
            for (int64_t k = threadIdx.x; k < n; k += blockDim.x) acc = reduce_combine(op, acc, xr[k]);
        }
        // Every thread of the block takes part in the block-wide steps, including those past the last row.
        acc = op == R_MAX ? row_max(acc, scratch) : row_sum(acc, scratch);
        if (row < rows && threadIdx.x == 0) out[row] = reduce_finish(op, acc, n);
    }
}

// inner > 1: a block covers 32 neighbouring inner positions of one outer index (so a warp reads 32 consecutive
// floats), and its blockDim.y thread rows split the n axis: thread row t adds k = t, t + blockDim.y, ... Then thread
// row 0 adds the blockDim.y partial results in order. Tiles (outer index, 32 inner positions) stride over the grid.
extern "C" __global__ void reduce_strided_f32(int op, const float* x, float* out, int64_t outer, int64_t n,
                                              int64_t inner) {
    __shared__ float partial[32][33];  // [thread row][lane], padded against bank conflicts
    const int64_t tiles_per_outer = (inner + 31) / 32;
    const int64_t tiles = outer * tiles_per_outer;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const int64_t o = tile / tiles_per_outer;
        const int64_t j = (tile % tiles_per_outer) * 32 + threadIdx.x;
        float acc = reduce_identity(op);
        if (j < inner) {
            const float* base = x + o * n * inner + j;
            for (int64_t k = threadIdx.y; k < n; k += blockDim.y) acc = reduce_combine(op, acc, base[k * inner]);
        }
        partial[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && j < inner) {
            float total = partial[0][threadIdx.x];
            for (int t = 1; t < (int)blockDim.y; t++) total = reduce_combine(op, total, partial[t][threadIdx.x]);
            out[o * inner + j] = reduce_finish(op, total, n);
        }
        __syncthreads();  // partial is rewritten by the next tile
    }
}
