// Elementwise ops of facm.tensor.Backend: unary, binary (same shape, suffix broadcast, scalar), affine, axpby,
// fill and dtype conversion. All are memory bound; each thread handles elements in a grid-stride loop.
//
// Numerics: exp, log, sigmoid, silu, tanh, cos and sin are evaluated in fp32 with the accurate (non fast-math)
// libdevice routines; the CPU reference evaluates them in double and rounds once, so they differ by a few ulp
// (the tests state the bound). Everything else matches the CPU bit for bit: negate, abs, square, the binary ops
// and max/min are single correctly rounded float operations as in Java; sqrt is IEEE (correctly rounded); rsqrt,
// affine and axpby are computed in double and rounded once, which is the CPU's formula.
#include "common.cuh"

// Codes are the ordinals of facm.tensor.UnaryOp; keep both lists in the same order.
enum UnaryCode {
    U_NEG = 0, U_ABS, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_SQUARE, U_SIGMOID, U_SILU, U_TANH, U_COS, U_SIN
};

// Ordinals of facm.tensor.BinaryOp.
enum BinaryCode { B_ADD = 0, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN };

// 1 / (1 + e^-x), written so that neither branch overflows: for x < 0 it is e^x / (1 + e^x), which keeps the tiny
// values (down to the denormals) that 1 / (1 + inf) would flush to zero.
__device__ __forceinline__ float sigmoid_f32(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

__device__ __forceinline__ float unary_apply(int op, float x) {
    switch (op) {
        case U_NEG: return -x;
        case U_ABS: return fabsf(x);
        case U_EXP: return expf(x);
        case U_LOG: return logf(x);
        case U_SQRT: return sqrtf(x);
        case U_RSQRT: return (float)(1.0 / sqrt((double)x));  // the CPU's formula: IEEE double sqrt and divide
        case U_SQUARE: return __fmul_rn(x, x);
        case U_SIGMOID: return sigmoid_f32(x);
        case U_SILU: return __fmul_rn(x, sigmoid_f32(x));
        case U_TANH: return tanhf(x);
        case U_COS: return cosf(x);
        case U_SIN: return sinf(x);
        default: return __int_as_float(0x7fc00000);  // unknown code: NaN, so a mismatch cannot pass silently
    }
}

__device__ __forceinline__ float binary_apply(int op, float a, float b) {
    switch (op) {
        case B_ADD: return __fadd_rn(a, b);
        case B_SUB: return __fsub_rn(a, b);
        case B_MUL: return __fmul_rn(a, b);
        case B_DIV: return __fdiv_rn(a, b);
        case B_MAX: return java_max(a, b);
        case B_MIN: return java_min(a, b);
        default: return __int_as_float(0x7fc00000);
    }
}

// out[i] = op(x[i]). The switch is on a kernel argument, so every thread takes the same branch.
extern "C" __global__ void unary_f32(int op, const float* x, float* out, int64_t n) {
    GRID_STRIDE_LOOP(i, n) { out[i] = unary_apply(op, x[i]); }
}

// out[i] = op(a[i], b[i mod bn]). bn == n: same shape; bn == 1: scalar b; otherwise b equals a's trailing dimensions
// (bn divides n) and repeats over the leading ones. out may alias a (each element is read before it is written by
// the same thread).
extern "C" __global__ void binary_f32(int op, const float* a, const float* b, float* out, int64_t n,
                                      int64_t bn) {
    if (bn == n) {
        GRID_STRIDE_LOOP(i, n) { out[i] = binary_apply(op, a[i], b[i]); }
    } else if (bn == 1) {
        const float s = b[0];
        GRID_STRIDE_LOOP(i, n) { out[i] = binary_apply(op, a[i], s); }
    } else if (n <= 0xFFFFFFFFll) {
        const uint32_t m = (uint32_t)bn;  // 32-bit modulo is several times cheaper than 64-bit
        GRID_STRIDE_LOOP(i, n) { out[i] = binary_apply(op, a[i], b[(uint32_t)i % m]); }
    } else {
        GRID_STRIDE_LOOP(i, n) { out[i] = binary_apply(op, a[i], b[i % bn]); }
    }
}

// out = alpha * x + beta in double, rounded once to float (the CPU reference's formula). The product of two floats
// is exact in double, so the double FMA and the CPU's double multiply-then-add give the same double. The few double
// operations per element cost nothing next to the memory traffic.
extern "C" __global__ void affine_f32(const float* x, float* out, int64_t n, float alpha, float beta) {
    const double a = alpha, b = beta;
    GRID_STRIDE_LOOP(i, n) { out[i] = (float)fma(a, (double)x[i], b); }
}

// out = alpha * a + beta * b in double, rounded once to float (both products are exact in double). out may alias
// a or b.
extern "C" __global__ void axpby_f32(const float* a, const float* b, float* out, int64_t n, float alpha, float beta) {
    const double al = alpha, be = beta;
    GRID_STRIDE_LOOP(i, n) { out[i] = (float)fma(al, (double)a[i], be * (double)b[i]); }
}

// Fills with a 32-bit pattern (f32 via its raw bits, or i32).
extern "C" __global__ void fill_b32(uint32_t* out, int64_t n, int bits) {
    GRID_STRIDE_LOOP(i, n) { out[i] = (uint32_t)bits; }
}

// Fills with a 16-bit pattern (a bf16 value converted on the host by Bf16.fromFloat); the low 16 bits of bits.
extern "C" __global__ void fill_b16(uint16_t* out, int64_t n, int bits) {
    GRID_STRIDE_LOOP(i, n) { out[i] = (uint16_t)bits; }
}

extern "C" __global__ void convert_f32_bf16(const float* x, uint16_t* out, int64_t n) {
    GRID_STRIDE_LOOP(i, n) { out[i] = bf16_from_float(x[i]); }
}

extern "C" __global__ void convert_bf16_f32(const uint16_t* x, float* out, int64_t n) {
    GRID_STRIDE_LOOP(i, n) { out[i] = bf16_to_float(x[i]); }
}

// Java's (int) cast: truncation toward zero, NaN -> 0, saturation at the int range.
extern "C" __global__ void convert_f32_i32(const float* x, int* out, int64_t n) {
    GRID_STRIDE_LOOP(i, n) {
        float v = x[i];
        int r;
        if (v != v) r = 0;
        else if (v >= 2147483648.0f) r = 2147483647;
        else if (v <= -2147483648.0f) r = (-2147483647 - 1);
        else r = __float2int_rz(v);
        out[i] = r;
    }
}

// Java's (float) int: round to nearest even.
extern "C" __global__ void convert_i32_f32(const int* x, float* out, int64_t n) {
    GRID_STRIDE_LOOP(i, n) { out[i] = __int2float_rn(x[i]); }
}

// ------------------------------------------------------------------------------------------- forward mode (JVP)
// out = SiLU(x) exactly as unary_f32 U_SILU computes it; outDot = σ(x)(1 + x(1 − σ(x)))·xDot (xDot nullptr = zero).
// out may alias x and outDot may alias xDot (each element is read before it is written by the same thread).
extern "C" __global__ void silu_jvp_f32(const float* x, const float* xDot, float* out, float* outDot, int64_t n) {
    GRID_STRIDE_LOOP(i, n) {
        const float v = x[i];
        const float sg = sigmoid_f32(v);
        const float vd = xDot != nullptr ? xDot[i] : 0.0f;
        out[i] = __fmul_rn(v, sg);
        outDot[i] = sg * (1.0f + v * (1.0f - sg)) * vd;
    }
}
