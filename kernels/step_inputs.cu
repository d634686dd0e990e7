// Per-step inputs of a consistency training step made on the device (issue 7: the captured training step). The step
// state (int32[4]: seed low/high word, step low/high word) lives in device memory, so a replayed CUDA graph keys its
// Philox streams by whatever step the state holds and advances it itself. The formulas are those of
// facm.tensor.TrainingOps.ConsistencyDraws (the CPU reference): fp64 math rounded once to float, and float
// arithmetic with explicit _rn intrinsics where the host path rounds twice (no FMA contraction).
#include "common.cuh"

// Stream bases of the Philox counters (TrainingOps.ConsistencyDraws.STREAM_*).
#define STREAM_T   (1ull << 60)
#define STREAM_R   (2ull << 60)
#define STREAM_R2T (4ull << 60)

#define KIND_FACM 0
#define KIND_SCM 1
#define KIND_MEANFLOW 2

__device__ __forceinline__ uint64_t splitmix_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ uint64_t state_seed(const int32_t* s) {
    return (uint64_t)(uint32_t)s[0] | ((uint64_t)(uint32_t)s[1] << 32);
}

__device__ __forceinline__ int64_t state_step(const int32_t* s) {
    return (int64_t)((uint64_t)(uint32_t)s[2] | ((uint64_t)(uint32_t)s[3] << 32));
}

// FlowMatchingObjective.stepKey: mix(seed ^ mix(step + 0x632BE59BD9B4E019)).
__device__ __forceinline__ uint64_t step_key(const int32_t* s) {
    return splitmix_mix(state_seed(s) ^ splitmix_mix((uint64_t)state_step(s) + 0x632BE59BD9B4E019ull));
}

// Philox.normal: Box-Muller in double, rounded to float (random.cu's formula).
__device__ __forceinline__ float philox_normal(uint64_t key, uint64_t counter) {
    const double two_pi = 2.0 * 3.141592653589793;
    PhiloxWords w = philox4x32_10(key, counter);
    return (float)(sqrt(-2.0 * log(philox_unit(w.w0))) * cos(two_pi * philox_unit(w.w1)));
}

// ConsistencyDraws.time: n = normal * std + mean in double; "log": 1 - sigmoid(n), else 1 - (2/pi) atan(e^n).
__device__ __forceinline__ float draw_time(uint64_t key, uint64_t counter, int log_sampler, float mean, float std) {
    // Explicit _rn: nvcc would otherwise contract a*b + c into an FMA, which Java never does.
    double n = __dadd_rn(__dmul_rn((double)philox_normal(key, counter), (double)std), (double)mean);
    double t = log_sampler ? 1.0 - 1.0 / (1.0 + exp(-n))
                           : __dsub_rn(1.0, __dmul_rn(2.0 / 3.141592653589793, atan(exp(n))));
    return (float)t;
}

// One thread per sample i (global position first + i): t, r (MeanFlow; r may be null otherwise), the coefficients
// (k, alpha, beta) and, when y_unguided is non-null, y' = null_class inside [cfg_low, cfg_high], else y.
extern "C" __global__ void consistency_draws(const int32_t* state, int first, int batch, int kind, int log_sampler,
                                             float mean, float std, float relax_p, float r2t_ratio, int scm_warmup,
                                             float cfg_low, float cfg_high, int null_class, float* t, float* r,
                                             float* coefs, const int32_t* y, int32_t* y_unguided) {
    uint64_t key = step_key(state);
    int64_t step = state_step(state);
    GRID_STRIDE_LOOP(i, batch) {
        uint64_t g = (uint64_t)first + (uint64_t)i;
        float ti = draw_time(key, STREAM_T + g, log_sampler, mean, std);
        float ri = 0.0f;
        if (kind == KIND_MEANFLOW) {
            PhiloxWords w = philox4x32_10(key, STREAM_R2T + g);
            float coin = (float)philox_unit(w.w0);
            float other = coin < r2t_ratio ? ti : draw_time(key, STREAM_R + g, log_sampler, mean, std);
            ri = java_max(ti, other);
            ti = java_min(ti, other);
            r[i] = ri;
        }
        t[i] = ti;
        double td = (double)ti;
        double trig = cos(3.141592653589793 * td / 2.0);
        float k, alpha, beta;
        if (kind == KIND_FACM) {
            k = (float)(1.0 - td);
            alpha = (float)(1.0 - pow(td, (double)relax_p));
            beta = (float)trig;
        } else if (kind == KIND_MEANFLOW) {
            k = (float)((double)ri - td);
            alpha = 1.0f;
            beta = 1.0f;
        } else {
            double ramp = scm_warmup == 0 ? 1.0 : fmin(1.0, (double)step / (double)scm_warmup);
            k = (float)((1.0 - td) * ramp);
            alpha = (float)trig;
            beta = 1.0f;
        }
        coefs[3 * i] = k;
        coefs[3 * i + 1] = alpha;
        coefs[3 * i + 2] = beta;
        if (y_unguided != nullptr) {
            y_unguided[i] = (ti >= cfg_low && ti <= cfg_high) ? null_class : y[i];
        }
    }
}

// eps[j] = Philox normal (key, offset + j); u = x1 - eps; x_t = (t_b * u) + eps with two roundings, as the host
// path's axpby, MUL and ADD (per_sample = elements per sample, b = j / per_sample).
extern "C" __global__ void consistency_noise(const int32_t* state, int64_t offset, int64_t n, int64_t per_sample,
                                             const float* x1, const float* t, float* eps, float* u, float* xt) {
    uint64_t key = step_key(state);
    GRID_STRIDE_LOOP(j, n) {
        float e = philox_normal(key, (uint64_t)offset + (uint64_t)j);
        float uj = __fsub_rn(x1[j], e);
        eps[j] = e;
        u[j] = uj;
        xt[j] = __fadd_rn(__fmul_rn(t[j / per_sample], uj), e);
    }
}

// state's step += 1 (one thread; the 64-bit step spans words 2 and 3).
extern "C" __global__ void step_state_advance(int32_t* state) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        uint64_t step = (uint64_t)state_step(state) + 1;
        state[2] = (int32_t)(uint32_t)step;
        state[3] = (int32_t)(uint32_t)(step >> 32);
    }
}
