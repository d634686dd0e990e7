// Standalone check and timing of the branch's memory-bound forward kernels against the ones they replace, without
// Java, at the XL/1 shapes (T256, H16, dh72, D1152) for batch 16 and 256:
//   qk_norm_rope_fwd_tok_bf16     vs qk_norm_rope_fwd_bf16     (bf16 qkv → bf16 q, k, v: the tape-less bf16 forward)
//   qk_norm_rope_fwd_tok_bf16out  vs qk_norm_rope_fwd_bf16out  (f32 qkv → bf16 q, k, v and rstd: a training pass)
//   gated_residual_rmsnorm_fwd_bf16_bf16 vs gated_residual_fwd_bf16a_vec4 + rmsnorm_fwd_vec4_bf16out (tape-less bf16)
//   gated_residual_rmsnorm_fwd_f32_f32   vs gated_residual_fwd_vec4 + rmsnorm_fwd_vec4 (with rstd; tape-less f32)
// Each kernel runs on random non-zero inputs into outputs poisoned with NaN (0xFF bytes) and is compared with a float64
// host reference (max |err| / max |ref| per output tensor; NaN fails), new against old too (max |new − old| / max
// |ref|; the fused residual norm must equal the pair bit for bit). Then CUDA-event timing, median of 50 launches after
// 5 warm-ups, against the kernel's memory floor: bytes it must move / the copy bandwidth this harness measures itself
// (cudaMemcpy device to device of 1 GiB, read + write counted). Launch configurations are those of the Java launchers
// (CudaAttention.qkNormRope, CudaResidualNorm.tryFused, CudaNetworkOps.gatedResidual/rmsNormModulate).
// Build and run: tools/perf-harness/run.sh.
#include "../../kernels/rope.cu"
#include "../../kernels/residual_norm.cu"
#include "../../kernels/adaln.cu"
#include "../../kernels/rmsnorm.cu"

#include "../harness_host.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

static const int T = 256, H = 16, DH = 72, D = 1152;
static const float EPS = 1e-6f;  // ModelConfig.NORM_EPS
static const double TOL_BF16 = 5e-3;  // one bf16 rounding: ≤ 2^-9 relative to the element, ≤ 2^-8 with fp32 noise
static const double TOL_F32 = 1e-5;

// ------------------------------------------------------------------------------------------- host helpers

// n random values in [lo, hi), never exactly zero (also after rounding to bf16).
static std::vector<float> randomValues(size_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) {
        float x = uniform(lo, hi);
        if (fromBf16(toBf16(x)) == 0.0f) x = 0.25f;
        v[i] = x;
    }
    return v;
}

static std::vector<float> roundedToBf16(const std::vector<float>& v, std::vector<uint16_t>& bits) {
    bits.resize(v.size());
    std::vector<float> r(v.size());
    for (size_t i = 0; i < v.size(); i++) {
        bits[i] = toBf16(v[i]);
        r[i] = fromBf16(bits[i]);
    }
    return r;
}

static void* deviceAlloc(size_t bytes) {
    void* d;
    CHECK(cudaMalloc(&d, bytes));
    return d;
}

static void* upload(const void* h, size_t bytes) {
    void* d = deviceAlloc(bytes);
    CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

static void poison(void* d, size_t bytes) { CHECK(cudaMemset(d, 0xFF, bytes)); }  // NaN as fp32 and as bf16

// A downloaded output: raw bytes and its element type.
struct HostOut {
    std::vector<uint8_t> bytes;
    bool bf16;
    float at(size_t i) const {
        if (bf16) {
            uint16_t b;
            memcpy(&b, bytes.data() + 2 * i, 2);
            return fromBf16(b);
        }
        float f;
        memcpy(&f, bytes.data() + 4 * i, 4);
        return f;
    }
};

static HostOut download(const void* d, size_t n, bool bf16) {
    HostOut h;
    h.bf16 = bf16;
    h.bytes.resize(n * (bf16 ? 2 : 4));
    CHECK(cudaMemcpy(h.bytes.data(), d, h.bytes.size(), cudaMemcpyDeviceToHost));
    return h;
}

// Running max |ref|, max |got − ref| (NaN sticks) and max |got − other| for one output tensor.
struct ErrorStat {
    double maxRef = 0, maxDiff = 0, maxDiffOther = 0;
    void add(double ref, double got, double other) {
        maxRef = std::max(maxRef, std::fabs(ref));
        const double d = std::fabs(got - ref);
        if (!(d <= maxDiff)) maxDiff = d;
        const double o = std::fabs(got - other);
        if (!(o <= maxDiffOther)) maxDiffOther = o;
    }
    double rel() const { return maxDiff / std::max(maxRef, 1e-30); }
    double relToOther() const { return maxDiffOther / std::max(maxRef, 1e-30); }
};

// ------------------------------------------------------------------------------------------- timing

static float medianMs(const std::function<void()>& launch) {
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    for (int i = 0; i < 5; i++) launch();
    CHECK(cudaDeviceSynchronize());
    std::vector<float> ms;
    for (int i = 0; i < 50; i++) {
        CHECK(cudaEventRecord(a));
        launch();
        CHECK(cudaEventRecord(b));
        CHECK(cudaEventSynchronize(b));
        float x;
        CHECK(cudaEventElapsedTime(&x, a, b));
        ms.push_back(x);
    }
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaEventDestroy(a));
    CHECK(cudaEventDestroy(b));
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

// Copy bandwidth in bytes/s: 1 GiB device to device, read + write counted.
static double copyBandwidth() {
    const size_t bytes = (size_t)1 << 30;
    void* src = deviceAlloc(bytes);
    void* dst = deviceAlloc(bytes);
    CHECK(cudaMemset(src, 0x3C, bytes));
    const float ms = medianMs([&] { CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice)); });
    CHECK(cudaFree(src));
    CHECK(cudaFree(dst));
    return 2.0 * bytes / (ms * 1e-3);
}

// ------------------------------------------------------------------------------------------- the table

struct Row {
    std::string kernel;
    int batch;
    std::string check;  // per-output errors and verdict
    float ms;
    double bytes;
};

static std::vector<Row> table;
static int failures = 0;
static double bandwidth = 0;

static std::string verdict(const char* what, double err, double tol) {
    const bool ok = err <= tol;  // false for NaN
    if (!ok) failures++;
    char s[96];
    snprintf(s, sizeof s, "%s %.1e%s", what, err, ok ? "" : " FAIL");
    return s;
}

static void printTable() {
    printf("\n%-40s %5s %9s %9s %8s  %s\n", "kernel", "batch", "median us", "floor us", "% floor",
           "max |err| / max |ref| (vs f64; 'old' = vs the kernel(s) it replaces)");
    for (const Row& r : table) {
        const double floorUs = r.bytes / bandwidth * 1e6;
        printf("%-40s %5d %9.1f %9.1f %7.0f%%  %s\n", r.kernel.c_str(), r.batch, r.ms * 1e3, floorUs,
               100.0 * floorUs / (r.ms * 1e3), r.check.c_str());
    }
}

// ------------------------------------------------------------------------------------------- qk_norm_rope

template <typename IN, typename OUT>
using RopeKernel = void (*)(const IN*, const float*, const float*, const float*, const float*, OUT*, OUT*, OUT*,
                            float*, int, int, int, int, float);

struct RopeInputs {
    std::vector<float> qkv, qw, kw, cosT, sinT;  // qkv as the kernel reads it (bf16 forms: the rounded values)
    void *qkvDev, *qw_, *kw_, *cos_, *sin_;
};

// The token-block launch of CudaAttention.qkNormRope, and its warp-per-head fallback.
template <typename IN, typename OUT>
static void launchRopeTok(RopeKernel<IN, OUT> k, const RopeInputs& in, OUT* q, OUT* kk, OUT* v, float* rstd, int B) {
    const int chunks = 3 * H * (DH / 8);
    const int threads = (chunks + 31) / 32 * 32;
    const int gridX = std::min(T, std::max(1, (1056 + B - 1) / B));
    const int shared = 2 * H * (DH / 8) * (int)sizeof(float);
    k<<<dim3(gridX, B), threads, shared>>>((const IN*)in.qkvDev, (const float*)in.qw_, (const float*)in.kw_,
                                           (const float*)in.cos_, (const float*)in.sin_, q, kk, v, rstd, B, T, H, DH,
                                           EPS);
    CHECK_LAUNCH();
}

template <typename IN, typename OUT>
static void launchRopeWarp(RopeKernel<IN, OUT> k, const RopeInputs& in, OUT* q, OUT* kk, OUT* v, float* rstd, int B) {
    const long long heads = (long long)B * T * H;
    const int grid = (int)std::min((heads + 7) / 8, 65535LL * 8);
    k<<<grid, 256>>>((const IN*)in.qkvDev, (const float*)in.qw_, (const float*)in.kw_, (const float*)in.cos_,
                     (const float*)in.sin_, q, kk, v, rstd, B, T, H, DH, EPS);
    CHECK_LAUNCH();
}

// Both kernels of one form on the same inputs: outputs checked against the float64 reference and each other, then
// timed. withRstd: the training form writes ρ (checked), the inference form passes nullptr.
template <typename IN, typename OUT>
static void ropeForm(int B, const RopeInputs& in, RopeKernel<IN, OUT> tok, const char* tokName,
                     RopeKernel<IN, OUT> warp, const char* warpName, bool withRstd) {
    const bool bf16Out = sizeof(OUT) == 2;
    const size_t n = (size_t)B * H * T * DH, nr = (size_t)B * T * 2 * H;
    OUT *q = (OUT*)deviceAlloc(n * sizeof(OUT)), *k = (OUT*)deviceAlloc(n * sizeof(OUT)),
        *v = (OUT*)deviceAlloc(n * sizeof(OUT));
    float* rstd = withRstd ? (float*)deviceAlloc(nr * 4) : nullptr;
    HostOut got[2][4];  // [tok, warp][q, k, v, rstd]
    for (int which = 0; which < 2; which++) {
        for (void* p : {(void*)q, (void*)k, (void*)v}) poison(p, n * sizeof(OUT));
        if (rstd) poison(rstd, nr * 4);
        if (which == 0) launchRopeTok(tok, in, q, k, v, rstd, B);
        else launchRopeWarp(warp, in, q, k, v, rstd, B);
        CHECK(cudaDeviceSynchronize());
        got[which][0] = download(q, n, bf16Out);
        got[which][1] = download(k, n, bf16Out);
        got[which][2] = download(v, n, bf16Out);
        if (rstd) got[which][3] = download(rstd, nr, false);
    }
    // float64 reference, one head vector at a time; qkv token-major [B, T, 3·H·dh], outputs [B, H, T, dh].
    ErrorStat err[2][4];  // [tok, warp][q, k, v, rstd]
    std::vector<double> x(DH);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const size_t token = ((size_t)b * T + t) * 3 * H * DH;
            for (int part = 0; part < 3; part++) {
                for (int h = 0; h < H; h++) {
                    const float* src = in.qkv.data() + token + ((size_t)part * H + h) * DH;
                    for (int d = 0; d < DH; d++) x[d] = src[d];
                    if (part < 2) {
                        const float* w = part == 0 ? in.qw.data() : in.kw.data();
                        double ss = 0;
                        for (int d = 0; d < DH; d++) ss += x[d] * x[d];
                        const double rho = 1.0 / std::sqrt(ss / DH + (double)EPS);
                        const size_t ri = (((size_t)b * T + t) * 2 + part) * H + h;
                        for (int w2 = 0; w2 < 2 && withRstd; w2++) {
                            err[w2][3].add(rho, got[w2][3].at(ri), got[1 - w2][3].at(ri));
                        }
                        for (int d = 0; d < DH; d++) x[d] = x[d] * rho * w[d];
                        for (int p = 0; p < DH / 2; p++) {
                            const double c = in.cosT[(size_t)t * DH + 2 * p], s = in.sinT[(size_t)t * DH + 2 * p];
                            const double x0 = x[2 * p], x1 = x[2 * p + 1];
                            x[2 * p] = x0 * c - x1 * s;
                            x[2 * p + 1] = x1 * c + x0 * s;
                        }
                    }
                    const size_t row = (((size_t)b * H + h) * T + t) * DH;
                    for (int d = 0; d < DH; d++) {
                        for (int w2 = 0; w2 < 2; w2++) {
                            err[w2][part].add(x[d], got[w2][part].at(row + d), got[1 - w2][part].at(row + d));
                        }
                    }
                }
            }
        }
    }
    const double tol = bf16Out ? TOL_BF16 : TOL_F32;
    const size_t inBytes = sizeof(IN), outBytes = sizeof(OUT);
    const double bytes = 3.0 * n * (inBytes + outBytes) + (withRstd ? nr * 4.0 : 0.0) + 2.0 * T * DH * 4 + 2.0 * DH * 4;
    for (int which = 0; which < 2; which++) {
        std::string check = verdict("q", err[which][0].rel(), tol) + ", " + verdict("k", err[which][1].rel(), tol) +
                            ", " + verdict("v", err[which][2].rel(), tol);
        if (withRstd) check += ", " + verdict("rstd", err[which][3].rel(), TOL_F32);
        char old[64];
        snprintf(old, sizeof old, "; old: q %.1e k %.1e v %.1e", err[0][0].relToOther(), err[0][1].relToOther(),
                 err[0][2].relToOther());
        if (which == 0) {
            check += old;
            // The token-block kernel must give the warp kernel's bits (same Σx² order; the JVP's primal has them too).
            bool same = true;
            for (int o = 0; o < (withRstd ? 4 : 3); o++) {
                same = same && got[0][o].bytes == got[1][o].bytes;
            }
            if (!same) failures++;
            check += same ? "; bits == old" : "; bits != old FAIL";
        }
        const float ms = which == 0 ? medianMs([&] { launchRopeTok(tok, in, q, k, v, rstd, B); })
                                    : medianMs([&] { launchRopeWarp(warp, in, q, k, v, rstd, B); });
        table.push_back({which == 0 ? tokName : warpName, B, check, ms, bytes});
    }
    for (void* p : {(void*)q, (void*)k, (void*)v, (void*)rstd}) CHECK(cudaFree(p));
}

static void ropeShapes(int B) {
    const size_t elems = (size_t)B * T * 3 * H * DH;
    std::vector<float> qkvF32 = randomValues(elems, -2.0f, 2.0f);
    std::vector<uint16_t> qkvBits;
    RopeInputs bf16In, f32In;
    bf16In.qkv = roundedToBf16(qkvF32, qkvBits);
    f32In.qkv = qkvF32;
    std::vector<float> qw = randomValues(DH, 0.7f, 1.3f), kw = randomValues(DH, 0.7f, 1.3f);
    std::vector<float> cosT((size_t)T * DH), sinT((size_t)T * DH);
    for (int t = 0; t < T; t++) {
        for (int p = 0; p < DH / 2; p++) {  // the table holds each pair's value at 2p and 2p+1 (the kernels read 2p)
            const float angle = uniform(0.0f, 6.2831853f);
            cosT[(size_t)t * DH + 2 * p] = cosT[(size_t)t * DH + 2 * p + 1] = std::cos(angle);
            sinT[(size_t)t * DH + 2 * p] = sinT[(size_t)t * DH + 2 * p + 1] = std::sin(angle);
        }
    }
    for (RopeInputs* in : {&bf16In, &f32In}) {
        in->qw = qw;
        in->kw = kw;
        in->cosT = cosT;
        in->sinT = sinT;
        in->qw_ = upload(qw.data(), DH * 4);
        in->kw_ = upload(kw.data(), DH * 4);
        in->cos_ = upload(cosT.data(), cosT.size() * 4);
        in->sin_ = upload(sinT.data(), sinT.size() * 4);
    }
    bf16In.qkvDev = upload(qkvBits.data(), elems * 2);
    f32In.qkvDev = upload(qkvF32.data(), elems * 4);
    qkvF32.clear();
    qkvF32.shrink_to_fit();
    ropeForm<uint16_t, uint16_t>(B, bf16In, qk_norm_rope_fwd_tok_bf16, "qk_norm_rope_fwd_tok_bf16",
                                 qk_norm_rope_fwd_bf16, "  old qk_norm_rope_fwd_bf16", false);
    ropeForm<float, uint16_t>(B, f32In, qk_norm_rope_fwd_tok_bf16out, "qk_norm_rope_fwd_tok_bf16out (rstd)",
                              qk_norm_rope_fwd_bf16out, "  old qk_norm_rope_fwd_bf16out (rstd)", true);
    for (RopeInputs* in : {&bf16In, &f32In}) {
        for (void* p : {in->qkvDev, in->qw_, in->kw_, in->cos_, in->sin_}) CHECK(cudaFree(p));
    }
}

// ------------------------------------------------------------------------------------------- gated residual + norm

template <typename A, typename OUT>
using FusedKernel = void (*)(float*, const A*, const float*, const float*, const float*, OUT*, float*, int64_t, int,
                             int, int64_t, int, int64_t, int, int, float);
template <typename A>
using GatedKernel = void (*)(float*, const A*, const float*, int64_t, int, int, int64_t, int);
template <typename OUT>
using NormKernel = void (*)(const float*, const float*, const float*, OUT*, float*, int64_t, int, int, int64_t, int,
                            int, float);

// The adaLN layout of LightningDiT: mod [B, 6·D] of this block (gate_m = chunk 5), mod2 [B, 6·D] of the next block
// (shift = chunk 0, scale = chunk 1).
static const int GATE_CHUNK = 5, SHIFT_CHUNK = 0, SCALE_CHUNK = 1, MOD_STRIDE = 6 * D;

struct NormInputs {
    std::vector<float> hHost, a, mod, mod2, w;  // a as the kernel reads it (bf16 form: the rounded values)
    float *h0, *h, *mod_, *mod2_, *w_;       // h0: the original h, copied into h before every checked run
    void* a_;
};

template <typename A, typename OUT>
struct NormForm {
    FusedKernel<A, OUT> fused;
    GatedKernel<A> gated;
    NormKernel<OUT> norm;
    const char *fusedName, *gatedName, *normName;
};

// Launches as CudaResidualNorm.tryFused and CudaNetworkOps.gatedResidual / rmsNormModulate (vec4 paths).
template <typename A, typename OUT>
static void launchFused(const NormForm<A, OUT>& f, const NormInputs& in, OUT* out, float* rstd, int B) {
    const long long rows = (long long)B * T;
    const int grid = (int)std::min((rows + 7) / 8, 65535LL * 8);
    f.fused<<<grid, 256>>>(in.h, (const A*)in.a_, in.mod_, in.w_, in.mod2_, out, rstd, rows, D, T, MOD_STRIDE,
                           GATE_CHUNK * D, MOD_STRIDE, SHIFT_CHUNK * D, SCALE_CHUNK * D, EPS);
    CHECK_LAUNCH();
}

template <typename A, typename OUT>
static void launchGated(const NormForm<A, OUT>& f, const NormInputs& in, int B) {
    const long long rows = (long long)B * T;
    const int threads = std::max(32, std::min(512, (D / 4 + 31) / 32 * 32));  // CudaNetworkOps.rowBlock(D / 4)
    f.gated<<<(int)std::min(rows, 65535LL * 8), threads>>>(in.h, (const A*)in.a_, in.mod_, rows, D, T, MOD_STRIDE,
                                                         GATE_CHUNK * D);
    CHECK_LAUNCH();
}

template <typename A, typename OUT>
static void launchNorm(const NormForm<A, OUT>& f, const NormInputs& in, OUT* out, float* rstd, int B) {
    const long long rows = (long long)B * T;
    const int grid = (int)std::min((rows + 7) / 8, 65535LL * 8);
    f.norm<<<grid, 256>>>(in.h, in.w_, in.mod2_, out, rstd, rows, D, T, MOD_STRIDE, SHIFT_CHUNK * D,
                          SCALE_CHUNK * D, EPS);
    CHECK_LAUNCH();
}

template <typename A, typename OUT>
static void normForm(int B, const NormInputs& in, const NormForm<A, OUT>& f, bool withRstd) {
    const bool bf16Out = sizeof(OUT) == 2;
    const size_t rows = (size_t)B * T, n = rows * D;
    OUT* out = (OUT*)deviceAlloc(n * sizeof(OUT));
    float* rstd = withRstd ? (float*)deviceAlloc(rows * 4) : nullptr;
    HostOut got[2][3];  // [fused, pair][h, out, rstd]
    for (int which = 0; which < 2; which++) {
        CHECK(cudaMemcpy(in.h, in.h0, n * 4, cudaMemcpyDeviceToDevice));
        poison(out, n * sizeof(OUT));
        if (rstd) poison(rstd, rows * 4);
        if (which == 0) {
            launchFused(f, in, out, rstd, B);
        } else {
            launchGated(f, in, B);
            launchNorm(f, in, out, rstd, B);
        }
        CHECK(cudaDeviceSynchronize());
        got[which][0] = download(in.h, n, false);
        got[which][1] = download(out, n, bf16Out);
        if (rstd) got[which][2] = download(rstd, rows, false);
    }
    ErrorStat err[2][3];
    std::vector<double> hn(D);
    for (size_t r = 0; r < rows; r++) {
        const size_t b = r / T;
        const float* g = in.mod.data() + b * MOD_STRIDE + GATE_CHUNK * D;
        const float* shift = in.mod2.data() + b * MOD_STRIDE + SHIFT_CHUNK * D;
        const float* scale = in.mod2.data() + b * MOD_STRIDE + SCALE_CHUNK * D;
        double ss = 0;
        for (int d = 0; d < D; d++) {
            hn[d] = (double)in.hHost[r * D + d] + (double)g[d] * in.a[r * D + d];
            ss += hn[d] * hn[d];
        }
        const double rho = 1.0 / std::sqrt(ss / D + (double)EPS);
        for (int w2 = 0; w2 < 2 && withRstd; w2++) err[w2][2].add(rho, got[w2][2].at(r), got[1 - w2][2].at(r));
        for (int d = 0; d < D; d++) {
            const double o = hn[d] * rho * in.w[d] * (1.0 + scale[d]) + shift[d];
            for (int w2 = 0; w2 < 2; w2++) {
                err[w2][0].add(hn[d], got[w2][0].at(r * D + d), got[1 - w2][0].at(r * D + d));
                err[w2][1].add(o, got[w2][1].at(r * D + d), got[1 - w2][1].at(r * D + d));
            }
        }
    }
    bool identical = true;
    for (int i = 0; i < 3; i++) identical = identical && got[0][i].bytes == got[1][i].bytes;
    if (!identical) failures++;
    const double tol = bf16Out ? TOL_BF16 : TOL_F32;
    std::string checks[2];
    for (int which = 0; which < 2; which++) {
        checks[which] = verdict("h", err[which][0].rel(), TOL_F32) + ", " +
                        verdict("out", err[which][1].rel(), tol);
        if (withRstd) checks[which] += ", " + verdict("rstd", err[which][2].rel(), TOL_F32);
    }
    checks[0] += identical ? "; bits == old pair" : "; bits != old pair FAIL";
    // Floors: h read + written (8 bytes), a read, out written per element; the gate/shift/scale rows and w once.
    const double aBytes = sizeof(A), oBytes = sizeof(OUT), rstdBytes = withRstd ? rows * 4.0 : 0.0;
    const double gatedBytes = n * (8 + aBytes) + (double)B * D * 4;
    const double normBytes = n * (4 + oBytes) + rstdBytes + 2.0 * B * D * 4 + D * 4.0;
    const double fusedBytes = n * (8 + aBytes + oBytes) + rstdBytes + 3.0 * B * D * 4 + D * 4.0;
    table.push_back({f.fusedName, B, checks[0], medianMs([&] { launchFused(f, in, out, rstd, B); }), fusedBytes});
    table.push_back({std::string("  old ") + f.gatedName, B, "", medianMs([&] { launchGated(f, in, B); }), gatedBytes});
    table.push_back({std::string("  old ") + f.normName, B, "", medianMs([&] { launchNorm(f, in, out, rstd, B); }),
                    normBytes});
    table.push_back({"  old pair, in sequence", B, checks[1], medianMs([&] {
                        launchGated(f, in, B);
                        launchNorm(f, in, out, rstd, B);
                    }),
                    gatedBytes + normBytes});
    for (void* p : {(void*)out, (void*)rstd}) CHECK(cudaFree(p));
}

static void residualNormShapes(int B) {
    const size_t n = (size_t)B * T * D;
    NormInputs bf16In, f32In;
    std::vector<float> h = randomValues(n, -1.0f, 1.0f), a = randomValues(n, -1.0f, 1.0f);
    std::vector<float> mod = randomValues((size_t)B * MOD_STRIDE, -0.5f, 0.5f);
    std::vector<float> mod2 = randomValues((size_t)B * MOD_STRIDE, -0.5f, 0.5f);
    std::vector<float> w = randomValues(D, 0.7f, 1.3f);
    std::vector<uint16_t> aBits;
    bf16In.a = roundedToBf16(a, aBits);
    f32In.a = a;
    float* h0 = (float*)upload(h.data(), n * 4);
    float* hWork = (float*)deviceAlloc(n * 4);
    float* modDev = (float*)upload(mod.data(), mod.size() * 4);
    float* mod2Dev = (float*)upload(mod2.data(), mod2.size() * 4);
    float* wDev = (float*)upload(w.data(), D * 4);
    bf16In.a_ = upload(aBits.data(), n * 2);
    f32In.a_ = upload(a.data(), n * 4);
    for (NormInputs* in : {&bf16In, &f32In}) {
        in->hHost = h;
        in->mod = mod;
        in->mod2 = mod2;
        in->w = w;
        in->h0 = h0;
        in->h = hWork;
        in->mod_ = modDev;
        in->mod2_ = mod2Dev;
        in->w_ = wDev;
    }
    normForm<uint16_t, uint16_t>(B, bf16In,
                                 {gated_residual_rmsnorm_fwd_bf16_bf16, gated_residual_fwd_bf16a_vec4,
                                  rmsnorm_fwd_vec4_bf16out, "gated_residual_rmsnorm_fwd_bf16_bf16",
                                  "gated_residual_fwd_bf16a_vec4", "rmsnorm_fwd_vec4_bf16out"},
                                 false);
    normForm<float, float>(B, f32In,
                           {gated_residual_rmsnorm_fwd_f32_f32, gated_residual_fwd_vec4, rmsnorm_fwd_vec4,
                            "gated_residual_rmsnorm_fwd_f32_f32 (rstd)", "gated_residual_fwd_vec4",
                            "rmsnorm_fwd_vec4 (rstd)"},
                           true);
    // The _c9 forms (9 float4 per lane, 3 blocks per SM) the launcher takes for D ≤ 1152: same bits as the pair.
    normForm<uint16_t, uint16_t>(B, bf16In,
                                 {gated_residual_rmsnorm_fwd_bf16_bf16_c9, gated_residual_fwd_bf16a_vec4,
                                  rmsnorm_fwd_vec4_bf16out, "gated_residual_rmsnorm_fwd_bf16_bf16_c9",
                                  "gated_residual_fwd_bf16a_vec4", "rmsnorm_fwd_vec4_bf16out"},
                                 false);
    normForm<float, float>(B, f32In,
                           {gated_residual_rmsnorm_fwd_f32_f32_c9, gated_residual_fwd_vec4, rmsnorm_fwd_vec4,
                            "gated_residual_rmsnorm_fwd_f32_f32_c9 (rstd)", "gated_residual_fwd_vec4",
                            "rmsnorm_fwd_vec4 (rstd)"},
                           true);
    for (void* p : {(void*)h0, (void*)hWork, (void*)modDev, (void*)mod2Dev, (void*)wDev, bf16In.a_, f32In.a_}) {
        CHECK(cudaFree(p));
    }
}

int main() {
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (sm_%d%d), XL/1 shapes T%d H%d dh%d D%d\n", prop.name, prop.major, prop.minor, T, H, DH, D);
    bandwidth = copyBandwidth();
    printf("copy bandwidth (cudaMemcpy D2D 1 GiB, read + write): %.0f GB/s; floor = bytes moved / that\n",
           bandwidth * 1e-9);
    for (int B : {16, 256}) {
        ropeShapes(B);
        residualNormShapes(B);
    }
    printTable();
    printf("\ncorrectness: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
