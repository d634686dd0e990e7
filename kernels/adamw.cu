// Optimizer step and the gradient norm it is clipped by (facm-spec.md §5.1: AdamW; the trainer clips by the global
// norm √(Σ over all parameter gradients of Σ g²)). Launcher: facm.backend.cuda.CudaTrainingOps.
#include "common.cuh"
#include "foreach.cuh"

// ------------------------------------------------------------------------------------------- AdamW
// Decoupled weight decay Adam as in PyTorch's AdamW, one fused pass over p, g, m, v (4 reads, 3 writes):
//   g ← gradScale·grad;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p − lr·wd·p;
//   p ← p − lr·(m / bc1) / (√(v / bc2) + eps)      with bc1 = 1 − β1^step, bc2 = 1 − β2^step (host, fp64).
// Bit-identical to the CPU reference (facm.backend.cpu.CpuTrainingOps.adamw): the same fp64 operations in the same
// order, each rounded once (the _rn intrinsics keep nvcc from contracting a multiply and an add into an fma, which
// Java never does), the update using the new m and v before their rounding to fp32, and the bias corrections from
// the same Math.pow on the host (adamw_controlled_f32: from a table the host filled with it). fp64 costs nothing here: the kernel is bound by its 28 bytes per element.
// The per-element update, shared by the per-tensor and the foreach forms with host or device scalars, so all four stay
// bit-identical. The step-independent fp64 constants are made once per thread by adamw_constants.
struct AdamwConstants {
    double b1, b2, rate, decay, oneMinusB1, oneMinusB2;
};

__device__ __forceinline__ AdamwConstants adamw_constants(float lr, float beta1, float beta2, float weightDecay) {
    AdamwConstants c;
    c.b1 = beta1;
    c.b2 = beta2;
    c.rate = lr;
    c.decay = __dmul_rn(c.rate, (double)weightDecay);
    c.oneMinusB1 = __dsub_rn(1.0, c.b1);
    c.oneMinusB2 = __dsub_rn(1.0, c.b2);
    return c;
}

__device__ __forceinline__ void adamw_element(float* __restrict__ p, const float* __restrict__ grad,
                                              float* __restrict__ m, float* __restrict__ v, int64_t i,
                                              const AdamwConstants& c, float eps, double bc1, double bc2,
                                              float gradScale) {
    const double g = __dmul_rn((double)gradScale, (double)grad[i]);
    const double mi = __dadd_rn(__dmul_rn(c.b1, (double)m[i]), __dmul_rn(c.oneMinusB1, g));
    const double vi = __dadd_rn(__dmul_rn(c.b2, (double)v[i]), __dmul_rn(__dmul_rn(c.oneMinusB2, g), g));
    const double pOld = p[i];
    double pi = __dsub_rn(pOld, __dmul_rn(c.decay, pOld));
    const double denom = __dadd_rn(__dsqrt_rn(__ddiv_rn(vi, bc2)), (double)eps);
    pi = __dsub_rn(pi, __ddiv_rn(__dmul_rn(c.rate, __ddiv_rn(mi, bc1)), denom));
    m[i] = (float)mi;
    v[i] = (float)vi;
    p[i] = (float)pi;
}

extern "C" __global__ void adamw_f32(float* __restrict__ p, const float* __restrict__ grad, float* __restrict__ m,
                                     float* __restrict__ v, int64_t n, float lr, float beta1, float beta2, float eps,
                                     float weightDecay, double bc1, double bc2, float gradScale) {
    const AdamwConstants c = adamw_constants(lr, beta1, beta2, weightDecay);
    GRID_STRIDE_LOOP(i, n) { adamw_element(p, grad, m, v, i, c, eps, bc1, bc2, gradScale); }
}

// ------------------------------------------------------------------------------------------- device step control
// The forms a captured training step (a CUDA graph: no host decision between its kernels) uses. control is F32
// [CONTROL_SIZE] = {clip factor, skip flag} (facm.tensor.TrainingOps.CONTROL_*); counters are int32 update counts
// that only step_counter_advance changes, after every tensor of the step is updated; tables are fp64 arrays indexed by
// counter + 1, filled once on the host with the host forms' expressions (so Math.pow never has to be matched here).
#define CONTROL_CLIP 0
#define CONTROL_SKIP 1

__device__ __forceinline__ double quiet_nan_f64() { return __longlong_as_double(0x7ff8000000000000LL); }

// One thread: control from Σg² and the loss, as facm.tensor.TrainingOps.stepControl (fp64 √ and ÷ are correctly
// rounded on both sides; fmin is avoided because Java's Math.min propagates NaN and fmin does not).
extern "C" __global__ void step_control_f32(const float* __restrict__ sumSquares, const float* __restrict__ loss,
                                            float maxNorm, float* __restrict__ control) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const double norm = __dsqrt_rn((double)sumSquares[0]);
    const float l = loss[0];
    const bool skip = !isfinite(l) || !isfinite(norm);
    float clip = 1.0f;
    if (maxNorm > 0.0f) {
        const double ratio = __ddiv_rn((double)maxNorm, __dadd_rn(norm, 1e-6));
        clip = (float)(isnan(ratio) ? ratio : (ratio < 1.0 ? ratio : 1.0));
    }
    control[CONTROL_CLIP] = clip;
    control[CONTROL_SKIP] = skip ? 1.0f : 0.0f;
}

// The step scalars of the controlled forms: (bc1, bc2) = biasCorrections[2k], [2k + 1], k = counter[0] + 1, from a
// table of tableSteps + 1 pairs; a step past it gives NaN (the host sizes the table for the run, so this is a bug
// guard that the non-finite check then reports).
__device__ __forceinline__ void adamw_bias_corrections(const double* __restrict__ biasCorrections, int tableSteps,
                                                       const int* __restrict__ counter, double* bc1, double* bc2) {
    const int k = counter[0] + 1;
    const bool inTable = k >= 1 && k <= tableSteps;
    *bc1 = inTable ? biasCorrections[2 * (int64_t)k] : quiet_nan_f64();
    *bc2 = inTable ? biasCorrections[2 * (int64_t)k + 1] : quiet_nan_f64();
}

// adamw_f32 with gradScale = control[CLIP] and the bias corrections of the device counter; the whole grid returns
// when control[SKIP] is set.
extern "C" __global__ void adamw_controlled_f32(float* __restrict__ p, const float* __restrict__ grad,
                                                float* __restrict__ m, float* __restrict__ v, int64_t n, float lr,
                                                float beta1, float beta2, float eps, float weightDecay,
                                                const double* __restrict__ biasCorrections, int tableSteps,
                                                const int* __restrict__ counter, const float* __restrict__ control) {
    if (control[CONTROL_SKIP] != 0.0f) return;
    double bc1, bc2;
    adamw_bias_corrections(biasCorrections, tableSteps, counter, &bc1, &bc2);
    const float gradScale = control[CONTROL_CLIP];
    const AdamwConstants c = adamw_constants(lr, beta1, beta2, weightDecay);
    GRID_STRIDE_LOOP(i, n) { adamw_element(p, grad, m, v, i, c, eps, bc1, bc2, gradScale); }
}

// One EMA update (facm.training.Ema) on the device's scalars: β = decays[k], k = counter[0] + 1; β = 0 copies θ, else
// avg ← fma((float)β, avg, (float)(1 − β)·θ) in fp64, rounded once: axpby_f32 of kernels/elementwise.cu with the same
// two floats, which the host form passes. Nothing when control[SKIP] is set; NaN past the table (a bug guard).
__device__ __forceinline__ double ema_decay(const double* __restrict__ decays, int tableSteps,
                                            const int* __restrict__ counter) {
    const int k = counter[0] + 1;
    return (k >= 1 && k <= tableSteps) ? decays[k] : quiet_nan_f64();
}

// axpby_f32's element with alpha = (float)β, beta = (float)(1 − β) already widened to fp64.
__device__ __forceinline__ float ema_element(float average, float theta, double alpha, double beta) {
    return (float)fma(alpha, (double)average, beta * (double)theta);
}

extern "C" __global__ void ema_controlled_f32(float* __restrict__ avg, const float* __restrict__ theta, int64_t n,
                                              const double* __restrict__ decays, int tableSteps,
                                              const int* __restrict__ counter, const float* __restrict__ control) {
    if (control[CONTROL_SKIP] != 0.0f) return;
    const double beta = ema_decay(decays, tableSteps, counter);
    if (beta == 0.0) {
        GRID_STRIDE_LOOP(i, n) { avg[i] = theta[i]; }
        return;
    }
    const double al = (float)beta, be = (float)(1.0 - beta);
    GRID_STRIDE_LOOP(i, n) { avg[i] = ema_element(avg[i], theta[i], al, be); }
}

// One thread: counter[0] += 1 unless control[SKIP] is set. Launched once per step after the updates that read it.
extern "C" __global__ void step_counter_advance(int* __restrict__ counter, const float* __restrict__ control) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    if (control[CONTROL_SKIP] == 0.0f) counter[0] += 1;
}

// ------------------------------------------------------------------------------------------- Σ x²
// acc[0] += Σ x², deterministic: a fixed grid (chosen from n alone by the launcher) of SUMSQ_THREADS-thread blocks,
// each thread summing its grid-stride slice in fp64, each block reducing by a fixed tree. One block adds its total to
// acc directly; with more, the blocks write fp64 partials and sum_squares_finish adds them in a fixed tree. fp64
// (better than the fp32 the contract asks for) costs nothing here: the kernel is bound by reading x.

#define SUMSQ_THREADS 256

__device__ __forceinline__ double sumsq_warp_sum(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_WARP_MASK, v, offset);
    return v;
}

// Block-wide fixed-order sum over SUMSQ_THREADS threads; the result is valid in thread 0.
__device__ __forceinline__ double sumsq_block_sum(double v) {
    __shared__ double warpSums[SUMSQ_THREADS / 32];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    v = sumsq_warp_sum(v);
    if (lane == 0) warpSums[warp] = v;
    __syncthreads();
    return sumsq_warp_sum(lane < SUMSQ_THREADS / 32 ? warpSums[lane] : 0.0);
}

// gridDim.x == 1: acc[0] += total; else partials[blockIdx.x] = block total (partials has gridDim.x doubles).
extern "C" __global__ void __launch_bounds__(SUMSQ_THREADS) sum_squares_partial(const float* __restrict__ x,
                                                                                int64_t n,
                                                                                double* __restrict__ partials,
                                                                                float* __restrict__ acc) {
    double s = 0.0;
    GRID_STRIDE_LOOP(i, n) {
        const double xi = x[i];
        s = fma(xi, xi, s);
    }
    s = sumsq_block_sum(s);
    if (threadIdx.x == 0) {
        if (gridDim.x == 1) {
            acc[0] = (float)((double)acc[0] + s);
        } else {
            partials[blockIdx.x] = s;
        }
    }
}

// One block of SUMSQ_THREADS threads: acc[0] += Σ partials[0, count) (strided per thread, then the fixed tree).
extern "C" __global__ void __launch_bounds__(SUMSQ_THREADS) sum_squares_finish(const double* __restrict__ partials,
                                                                               int count, float* __restrict__ acc) {
    double s = 0.0;
    for (int i = threadIdx.x; i < count; i += SUMSQ_THREADS) s += partials[i];
    s = sumsq_block_sum(s);
    if (threadIdx.x == 0) acc[0] = (float)((double)acc[0] + s);
}

// ------------------------------------------------------------------------------------------- foreach forms
// One launch per optimizer phase over a table of tensors (kernels/foreach.cuh; launcher facm.backend.cuda.CudaForeach),
// each bit-identical to its per-tensor kernel above launched once per tensor in table order: the elementwise ones
// apply the very same per-element function (the block that does an element does not change it), the sum of squares
// keeps each tensor's per-tensor grid, block-to-element mapping and finishing order (see below).

// adamw_f32 on this block's slice of the table's (p, grad, m, v) entries. The slice loop is unrolled twice, not the
// compiler's four times: 64 registers keep 4 blocks (1024 threads) per SM with two elements' loads in flight per
// thread (68 registers and 3 blocks unrolled by 4; 56 and one element at a time unrolled once).
__device__ __forceinline__ void adamw_foreach_block(const int64_t* __restrict__ table, int count, int64_t chunk,
                                                    float lr, float beta1, float beta2, float eps, float weightDecay,
                                                    double bc1, double bc2, float gradScale) {
    const ForeachSlice s = foreach_slice(table, count, chunk);
    float* p = foreach_ptr<float>(s.entry, FOREACH_PTR0);
    const float* grad = foreach_ptr<const float>(s.entry, FOREACH_PTR1);
    float* m = foreach_ptr<float>(s.entry, FOREACH_PTR2);
    float* v = foreach_ptr<float>(s.entry, FOREACH_PTR3);
    const AdamwConstants c = adamw_constants(lr, beta1, beta2, weightDecay);
#pragma unroll 2
    FOREACH_SLICE_LOOP(i, s) { adamw_element(p, grad, m, v, i, c, eps, bc1, bc2, gradScale); }
}

extern "C" __global__ void adamw_foreach_f32(const int64_t* __restrict__ table, int count, int64_t chunk, float lr,
                                             float beta1, float beta2, float eps, float weightDecay, double bc1,
                                             double bc2, float gradScale) {
    adamw_foreach_block(table, count, chunk, lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale);
}

// adamw_controlled_f32 over the table's (p, grad, m, v) entries.
extern "C" __global__ void adamw_controlled_foreach_f32(const int64_t* __restrict__ table, int count, int64_t chunk,
                                                        float lr, float beta1, float beta2, float eps,
                                                        float weightDecay, const double* __restrict__ biasCorrections,
                                                        int tableSteps, const int* __restrict__ counter,
                                                        const float* __restrict__ control) {
    if (control[CONTROL_SKIP] != 0.0f) return;
    double bc1, bc2;
    adamw_bias_corrections(biasCorrections, tableSteps, counter, &bc1, &bc2);
    adamw_foreach_block(table, count, chunk, lr, beta1, beta2, eps, weightDecay, bc1, bc2, control[CONTROL_CLIP]);
}

// The host-scalar EMA update over the table's (average, θ) entries: copy θ when `copy` is set (the host form's β = 0,
// a device copy there), else avg ← axpby_f32's element with alpha = (float)β, beta = (float)(1 − β).
extern "C" __global__ void ema_foreach_f32(const int64_t* __restrict__ table, int count, int64_t chunk, float alpha,
                                           float beta, int copy) {
    const ForeachSlice s = foreach_slice(table, count, chunk);
    float* avg = foreach_ptr<float>(s.entry, FOREACH_PTR0);
    const float* theta = foreach_ptr<const float>(s.entry, FOREACH_PTR1);
    if (copy) {
        FOREACH_SLICE_LOOP(i, s) { avg[i] = theta[i]; }
        return;
    }
    const double al = alpha, be = beta;
    FOREACH_SLICE_LOOP(i, s) { avg[i] = ema_element(avg[i], theta[i], al, be); }
}

// ema_controlled_f32 over the table's (average, θ) entries.
extern "C" __global__ void ema_controlled_foreach_f32(const int64_t* __restrict__ table, int count, int64_t chunk,
                                                      const double* __restrict__ decays, int tableSteps,
                                                      const int* __restrict__ counter,
                                                      const float* __restrict__ control) {
    if (control[CONTROL_SKIP] != 0.0f) return;
    const double beta = ema_decay(decays, tableSteps, counter);
    const ForeachSlice s = foreach_slice(table, count, chunk);
    float* avg = foreach_ptr<float>(s.entry, FOREACH_PTR0);
    const float* theta = foreach_ptr<const float>(s.entry, FOREACH_PTR1);
    if (beta == 0.0) {
        FOREACH_SLICE_LOOP(i, s) { avg[i] = theta[i]; }
        return;
    }
    const double al = (float)beta, be = (float)(1.0 - beta);
    FOREACH_SLICE_LOOP(i, s) { avg[i] = ema_element(avg[i], theta[i], al, be); }
}

// fill_b32 of kernels/elementwise.cu over the table's entries (zeroing the gradients before a step).
extern "C" __global__ void fill_foreach_b32(const int64_t* __restrict__ table, int count, int64_t chunk, int bits) {
    const ForeachSlice s = foreach_slice(table, count, chunk);
    uint32_t* out = foreach_ptr<uint32_t>(s.entry, FOREACH_PTR0);
    FOREACH_SLICE_LOOP(i, s) { out[i] = (uint32_t)bits; }
}

// Σ x² over the table's entries into acc, bit-identical to sum_squares_partial (+ sum_squares_finish) launched per
// tensor in table order, in three launches:
//   partial: entry e owns blocks [first[e], first[e] + blocks[e]) where blocks[e] is the grid its own launch had; local
//            block b sums x[b·T + t + j·T·blocks[e]] exactly as block b of that launch did, into partials[first + b];
//   totals:  one block per entry: a one-block entry's total is its partial (the per-tensor kernel added that value to
//            acc directly), else sum_squares_finish's strided sum and tree over its partials;
//   accumulate: one thread: acc ← (float)((double)acc + total[e]) for e in order, the per-tensor launches' chain.
extern "C" __global__ void __launch_bounds__(SUMSQ_THREADS) sum_squares_foreach_partial(
        const int64_t* __restrict__ table, int count, double* __restrict__ partials) {
    const int64_t block = blockIdx.x;
    const int e = foreach_entry(table, count, block);
    const int64_t* entry = table + (int64_t)e * FOREACH_FIELDS;
    const int64_t local = block - table[(int64_t)count * FOREACH_FIELDS + e];
    const float* x = foreach_ptr<const float>(entry, FOREACH_PTR0);
    const int64_t n = entry[FOREACH_N];
    const int64_t stride = (int64_t)SUMSQ_THREADS * entry[FOREACH_BLOCKS];
    double s = 0.0;
    for (int64_t i = local * SUMSQ_THREADS + threadIdx.x; i < n; i += stride) {
        const double xi = x[i];
        s = fma(xi, xi, s);
    }
    s = sumsq_block_sum(s);
    if (threadIdx.x == 0) partials[block] = s;
}

extern "C" __global__ void __launch_bounds__(SUMSQ_THREADS) sum_squares_foreach_totals(
        const int64_t* __restrict__ table, int count, const double* __restrict__ partials,
        double* __restrict__ totals) {
    const int e = blockIdx.x;
    if (e >= count) return;
    const int64_t first = table[(int64_t)count * FOREACH_FIELDS + e];
    const int64_t blocks = table[(int64_t)e * FOREACH_FIELDS + FOREACH_BLOCKS];
    if (blocks == 1) {
        if (threadIdx.x == 0) totals[e] = partials[first];
        return;
    }
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < blocks; i += SUMSQ_THREADS) s += partials[first + i];
    s = sumsq_block_sum(s);
    if (threadIdx.x == 0) totals[e] = s;
}

extern "C" __global__ void sum_squares_foreach_accumulate(const double* __restrict__ totals, int count,
                                                          float* __restrict__ acc) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    float a = acc[0];
    for (int e = 0; e < count; e++) a = (float)((double)a + totals[e]);
    acc[0] = a;
}
