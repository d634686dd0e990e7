// Counter-based random numbers, bit-identical to facm.tensor.Philox: element i of the output uses the Philox block
// of (seed, offset + i), so any split of the work (and the CPU backend) gives the same numbers.
#include "common.cuh"

// u = (w0 + 0.5) * 2^-32 computed exactly in double, then rounded to float (Philox.uniform).
extern "C" __global__ void random_uniform_f32(float* out, int64_t n, int64_t seed, int64_t offset) {
    GRID_STRIDE_LOOP(i, n) {
        PhiloxWords w = philox4x32_10((uint64_t)seed, (uint64_t)offset + (uint64_t)i);
        out[i] = (float)philox_unit(w.w0);
    }
}

// Box-Muller in double exactly as Philox.normalOf: sqrt(-2 ln u0) * cos(2 pi u1), rounded to float. The double
// log/cos are within 1-2 ulp of Java's, far below float resolution, so results agree except for rare 1-ulp ties.
extern "C" __global__ void random_normal_f32(float* out, int64_t n, int64_t seed, int64_t offset) {
    const double two_pi = 2.0 * 3.141592653589793;  // 2.0 * Math.PI, exact (a power of two times PI)
    GRID_STRIDE_LOOP(i, n) {
        PhiloxWords w = philox4x32_10((uint64_t)seed, (uint64_t)offset + (uint64_t)i);
        double u0 = philox_unit(w.w0);
        double u1 = philox_unit(w.w1);
        out[i] = (float)(sqrt(-2.0 * log(u0)) * cos(two_pi * u1));
    }
}
