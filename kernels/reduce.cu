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

// The reduced axis of a [outer, n, inner] view split into row slices, for long axes such as a bias gradient
// db = Σ_rows dY of dY [8192, N]: one block per (32 inner positions, one slice of rows_per_slice rows of one outer
// index), so even a narrow N fills the GPU (reduce_strided_f32 has only outer · inner/32 blocks, 36 for N = 1152).
// Block 32 × 8: a warp reads 32 consecutive floats of one row; thread row t adds rows t, t + 8, ... of its slice in
// order, then thread row 0 adds the 8 partial results in order. With one slice the result goes to out directly
// (finish applied); otherwise to partials [outer, slices, inner], which reduce_slices_f32 adds up in slice order.
// The order depends only on the sizes (the host derives rows_per_slice from them), so the bits are reproducible.
#define SLICE_THREAD_ROWS 8

// col[k · inner] combined for k = k0, k0 + SLICE_THREAD_ROWS, ... < end, in that order; with COPY each value is
// also written to copy[k · inner] in bf16 (as facm.tensor.Bf16 rounds). The op and the copy are template arguments
// so that the unrolled loop is loads, adds (and stores) only: the loads issue ahead of the dependent adds.
template <bool IS_MAX, bool COPY>
__device__ __forceinline__ float slice_column(const float* __restrict__ col, uint16_t* __restrict__ copy, int64_t k0,
                                              int64_t end, int64_t inner) {
    float acc = IS_MAX ? -INFINITY : 0.0f;
#pragma unroll 8
    for (int64_t k = k0; k < end; k += SLICE_THREAD_ROWS) {
        const float v = col[k * inner];
        if (COPY) copy[k * inner] = bf16_from_float(v);
        acc = IS_MAX ? java_max(acc, v) : acc + v;
    }
    return acc;
}

// The final value of one output: written, or (accumulate != 0, used with SUM) added to what out holds.
__device__ __forceinline__ void reduce_store(float* out, float v, int accumulate) {
    *out = accumulate ? *out + v : v;
}

// bf16_copy: nullptr, or (SUM only) a [outer, n, inner] bf16 tensor that receives bf16(x) from the same pass over x
// (a linear's backward needs dY both as a bf16 GEMM operand and summed over rows for the bias gradient).
extern "C" __global__ void reduce_sliced_f32(int op, const float* __restrict__ x, float* dst, int64_t outer,
                                             int64_t n, int64_t inner, int64_t rows_per_slice,
                                             uint16_t* __restrict__ bf16_copy, int accumulate) {
    __shared__ float partial[SLICE_THREAD_ROWS][33];  // [thread row][lane], padded against bank conflicts
    const int64_t slices = (n + rows_per_slice - 1) / rows_per_slice;
    const int64_t o = (int64_t)blockIdx.y / slices;
    const int64_t s = (int64_t)blockIdx.y % slices;
    const int64_t j = (int64_t)blockIdx.x * 32 + threadIdx.x;
    const int64_t first = s * rows_per_slice;
    const int64_t end = first + rows_per_slice < n ? first + rows_per_slice : n;
    float acc = reduce_identity(op);
    if (j < inner && o < outer) {
        const float* col = x + o * n * inner + j;
        uint16_t* copy = bf16_copy == nullptr ? nullptr : bf16_copy + o * n * inner + j;
        const int64_t k0 = first + threadIdx.y;
        if (op == R_MAX) {
            acc = slice_column<true, false>(col, nullptr, k0, end, inner);
        } else if (copy != nullptr) {
            acc = slice_column<false, true>(col, copy, k0, end, inner);
        } else {
            acc = slice_column<false, false>(col, nullptr, k0, end, inner);
        }
    }
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < inner && o < outer) {
        float total = partial[0][threadIdx.x];
        for (int t = 1; t < SLICE_THREAD_ROWS; t++) total = reduce_combine(op, total, partial[t][threadIdx.x]);
        if (slices == 1) {
            reduce_store(dst + o * inner + j, reduce_finish(op, total, n), accumulate);
        } else {
            dst[(o * slices + s) * inner + j] = total;
        }
    }
}

// Second pass of reduce_sliced_f32: out[o, j] = finish(partials[o, 0, j] ∘ partials[o, 1, j] ∘ ...), slices in
// order, one thread per output element; n is the length of the original axis (for MEAN); accumulate as there.
extern "C" __global__ void reduce_slices_f32(int op, const float* partials, float* out, int64_t outer, int64_t slices,
                                             int64_t inner, int64_t n, int accumulate) {
    GRID_STRIDE_LOOP(i, outer * inner) {
        const int64_t o = i / inner;
        const int64_t j = i % inner;
        const float* p = partials + o * slices * inner + j;
        float total = p[0];
        for (int64_t s = 1; s < slices; s++) total = reduce_combine(op, total, p[s * inner]);
        reduce_store(out + i, reduce_finish(op, total, n), accumulate);
    }
}
