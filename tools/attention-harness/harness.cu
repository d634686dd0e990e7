// Standalone check and timing of the bf16 tensor-core attention kernels (kernels/attention_tc*.cu), without Java:
// random non-zero bf16 inputs, outputs poisoned with NaN first, results compared against a float64 host reference
// computed from the same bf16 values, for every head dimension and several T (odd ones too); then the XL/1 shape
// (B256·H16·T256·dh72, and dh 64/128 beside it) timed with CUDA events (median of many runs). The forward runs twice:
// the kernel of kernels/attention_tc.cu ("fwd") and the one it replaced ("fwd v1", attention_tc_fwd_v1.cuh), both
// checked against float64 and timed side by side.
// Build and run: tools/attention-harness/run.sh (needs nvcc and a GPU).
#include "../../kernels/attention_tc.cu"
#include "../../kernels/attention_tc_bwd.cu"
#include "../../kernels/attention_tc_jvp.cu"
#include "attention_tc_fwd_v1.cuh"

#include "../harness_host.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

// Random bf16 values (never exactly zero), their float values beside.
static void randomBf16(size_t n, float lo, float hi, std::vector<uint16_t>& bits, std::vector<float>& vals) {
    bits.resize(n);
    vals.resize(n);
    for (size_t i = 0; i < n; i++) {
        float x = uniform(lo, hi);
        if (x == 0.0f) x = 0.25f;
        bits[i] = toBf16(x);
        vals[i] = fromBf16(bits[i]);
    }
}

template <typename T>
static T* upload(const std::vector<T>& h) {
    T* d;
    CHECK(cudaMalloc(&d, h.size() * sizeof(T)));
    CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

static float* poisoned(size_t n) {  // 0xFF bytes: NaN as fp32, NaN as bf16
    float* d;
    CHECK(cudaMalloc(&d, n * sizeof(float)));
    CHECK(cudaMemset(d, 0xFF, n * sizeof(float)));
    return d;
}

static std::vector<float> download(const void* d, size_t n, bool bf16) {
    std::vector<float> h(n);
    if (bf16) {
        std::vector<uint16_t> b(n);
        CHECK(cudaMemcpy(b.data(), d, n * 2, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < n; i++) h[i] = fromBf16(b[i]);
    } else {
        CHECK(cudaMemcpy(h.data(), d, n * 4, cudaMemcpyDeviceToHost));
    }
    return h;
}

// max |a − ref| / max(max |ref|, 1e-3) (NaN anywhere gives NaN). The floor keeps outputs whose exact value is ~0
// (gradQ and gradK at T = 1, where dS = dP − D vanishes) from dividing rounding noise by nothing.
static double relErr(const std::vector<float>& a, const std::vector<double>& ref) {
    double maxRef = 0.0, maxDiff = 0.0;
    for (size_t i = 0; i < ref.size(); i++) {
        maxRef = std::max(maxRef, std::fabs(ref[i]));
        const double d = std::fabs((double)a[i] - ref[i]);
        if (!(d <= maxDiff)) maxDiff = d;  // NaN sticks
    }
    return maxDiff / std::max(maxRef, 1e-3);
}

struct Reference {
    std::vector<double> out, lse, outDot, gq, gk, gv;
};

// float64 reference of forward, JVP and backward on [B, H, T, dh] inputs; out/outDot token-major [B, T, H·dh].
static Reference reference(int B, int H, int T, int dh, float scale, const std::vector<float>& q,
                           const std::vector<float>& k, const std::vector<float>& v, const std::vector<float>& qd,
                           const std::vector<float>& kd, const std::vector<float>& vd, const std::vector<float>& gOut) {
    Reference r;
    const size_t n = (size_t)B * H * T * dh;
    r.out.assign(n, 0);
    r.outDot.assign(n, 0);
    r.lse.assign((size_t)B * H * T, 0);
    r.gq.assign(n, 0);
    r.gk.assign(n, 0);
    r.gv.assign(n, 0);
    std::vector<double> s(T), sd(T), p(T), dp(T);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const size_t hb = ((size_t)b * H + h) * T * dh;
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY;
                for (int j = 0; j < T; j++) {
                    double a = 0, c = 0;
                    for (int d = 0; d < dh; d++) {
                        a += (double)q[hb + i * dh + d] * k[hb + j * dh + d];
                        c += (double)qd[hb + i * dh + d] * k[hb + j * dh + d] +
                             (double)q[hb + i * dh + d] * kd[hb + j * dh + d];
                    }
                    s[j] = scale * a;
                    sd[j] = scale * c;
                    mx = std::max(mx, s[j]);
                }
                double l = 0, mu = 0;
                for (int j = 0; j < T; j++) l += std::exp(s[j] - mx);
                for (int j = 0; j < T; j++) {
                    p[j] = std::exp(s[j] - mx) / l;
                    mu += p[j] * sd[j];
                }
                r.lse[((size_t)b * H + h) * T + i] = mx + std::log(l);
                const size_t ot = (((size_t)b * T + i) * H + h) * dh;
                double D = 0;
                for (int d = 0; d < dh; d++) {
                    double o = 0, od = 0;
                    for (int j = 0; j < T; j++) {
                        o += p[j] * v[hb + j * dh + d];
                        od += p[j] * (vd[hb + j * dh + d] + sd[j] * v[hb + j * dh + d]);
                    }
                    r.out[ot + d] = o;
                    r.outDot[ot + d] = od - mu * o;
                    D += (double)gOut[ot + d] * o;
                }
                // backward of row i: dP_j = dO·v_j, dS_j = P_j (dP_j − D)
                for (int j = 0; j < T; j++) {
                    double a = 0;
                    for (int d = 0; d < dh; d++) a += (double)gOut[ot + d] * v[hb + j * dh + d];
                    dp[j] = p[j] * (a - D);
                }
                for (int d = 0; d < dh; d++) {
                    double g = 0;
                    for (int j = 0; j < T; j++) g += dp[j] * k[hb + j * dh + d];
                    r.gq[hb + i * dh + d] = scale * g;
                }
                for (int j = 0; j < T; j++) {
                    for (int d = 0; d < dh; d++) {
                        r.gk[hb + j * dh + d] += scale * dp[j] * q[hb + i * dh + d];
                        r.gv[hb + j * dh + d] += p[j] * gOut[ot + d];
                    }
                }
            }
        }
    }
    return r;
}

typedef void (*FwdKernel)(const uint16_t*, const uint16_t*, const uint16_t*, void*, float*, int, int, float, int);
typedef void (*DqKernel)(const uint16_t*, const uint16_t*, const uint16_t*, const void*, const float*, const void*,
                         float*, float*, uint16_t*, int, int, float, int, int);
typedef void (*DkdvKernel)(const uint16_t*, const uint16_t*, const uint16_t*, const float*, const uint16_t*,
                           const float*, float*, float*, int, int, float);
typedef void (*JvpKernel)(const uint16_t*, const uint16_t*, const uint16_t*, const uint16_t*, const uint16_t*,
                          const uint16_t*, void*, void*, float*, int, int, float, int);

struct Kernels {
    FwdKernel fwd;
    FwdKernel fwdV1;  // the replaced forward: ceil(T / 64)·B·H blocks of 128 threads
    DqKernel dq;
    DkdvKernel dkdv;
    JvpKernel jvp;
};

static Kernels kernelsFor(int dh) {
    switch (dh) {
        case 16: return {attention_fwd_bf16_dh16, attention_fwd_bf16_v1_dh16, attention_bwd_dq_bf16_dh16, attention_bwd_dkdv_bf16_dh16, attention_jvp_bf16_dh16};
        case 32: return {attention_fwd_bf16_dh32, attention_fwd_bf16_v1_dh32, attention_bwd_dq_bf16_dh32, attention_bwd_dkdv_bf16_dh32, attention_jvp_bf16_dh32};
        case 64: return {attention_fwd_bf16_dh64, attention_fwd_bf16_v1_dh64, attention_bwd_dq_bf16_dh64, attention_bwd_dkdv_bf16_dh64, attention_jvp_bf16_dh64};
        case 72: return {attention_fwd_bf16_dh72, attention_fwd_bf16_v1_dh72, attention_bwd_dq_bf16_dh72, attention_bwd_dkdv_bf16_dh72, attention_jvp_bf16_dh72};
        case 128: return {attention_fwd_bf16_dh128, attention_fwd_bf16_v1_dh128, attention_bwd_dq_bf16_dh128, attention_bwd_dkdv_bf16_dh128, attention_jvp_bf16_dh128};
    }
    fprintf(stderr, "no kernels for dh %d\n", dh);
    exit(2);
}

// Launch shape of the current forward: ceil(T / ROWS)·B·H blocks of THREADS threads (TcFwdTiling of attention_tc.cu).
struct FwdLaunch {
    int blocks, threads;
};

template <int DH>
static FwdLaunch fwdLaunchFor(int B, int H, int T) {
    return {(T + TcFwdTiling<DH>::ROWS - 1) / TcFwdTiling<DH>::ROWS * B * H, TcFwdTiling<DH>::THREADS};
}

static FwdLaunch fwdLaunch(int dh, int B, int H, int T) {
    switch (dh) {
        case 16: return fwdLaunchFor<16>(B, H, T);
        case 32: return fwdLaunchFor<32>(B, H, T);
        case 64: return fwdLaunchFor<64>(B, H, T);
        case 72: return fwdLaunchFor<72>(B, H, T);
        case 128: return fwdLaunchFor<128>(B, H, T);
    }
    fprintf(stderr, "no forward tiling for dh %d\n", dh);
    exit(2);
}

static int failures = 0;
static const double TOL = 1e-2;  // bf16 P/dS/dO operands: ~2^-9 relative per element, 1e-2 of the max leaves margin

static void report(const char* what, int B, int H, int T, int dh, double err) {
    const bool ok = err <= TOL;  // false for NaN
    if (!ok) failures++;
    printf("%-22s B%d H%d T%-4d dh%-3d  max err / max ref = %.3e  %s\n", what, B, H, T, dh, err, ok ? "ok" : "FAIL");
}

static void checkCase(int B, int H, int T, int dh, bool bf16Out) {
    const size_t n = (size_t)B * H * T * dh, rows = (size_t)B * H * T;
    const float scale = 1.0f / std::sqrt((float)dh);
    std::vector<uint16_t> qb, kb, vb, qdb, kdb, vdb, gob;
    std::vector<float> q, k, v, qd, kd, vd, go;
    randomBf16(n, -2.0f, 2.0f, qb, q);
    randomBf16(n, -2.0f, 2.0f, kb, k);
    randomBf16(n, -1.0f, 1.0f, vb, v);
    randomBf16(n, -1.0f, 1.0f, qdb, qd);
    randomBf16(n, -1.0f, 1.0f, kdb, kd);
    randomBf16(n, -1.0f, 1.0f, vdb, vd);
    randomBf16(n, -1.0f, 1.0f, gob, go);  // gradOut is passed as bf16 when bf16Out, else as fp32 (same values)
    Reference ref = reference(B, H, T, dh, scale, q, k, v, qd, kd, vd, go);
    Kernels ks = kernelsFor(dh);

    uint16_t *dq_ = upload(qb), *dk = upload(kb), *dv = upload(vb), *dqd = upload(qdb), *dkd = upload(kdb),
             *dvd = upload(vdb);
    float *out = poisoned(n), *outDot = poisoned(n), *lse = poisoned(rows);
    const int blocks = (T + 63) / 64 * B * H;
    const FwdLaunch fl = fwdLaunch(dh, B, H, T);
    ks.fwd<<<fl.blocks, fl.threads>>>(dq_, dk, dv, out, lse, H, T, scale, bf16Out);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    report(bf16Out ? "fwd out (bf16)" : "fwd out (f32)", B, H, T, dh, relErr(download(out, n, bf16Out), ref.out));
    report("fwd lse", B, H, T, dh, relErr(download(lse, rows, false), ref.lse));
    CHECK(cudaMemset(out, 0xFF, n * 4));
    CHECK(cudaMemset(lse, 0xFF, rows * 4));
    ks.fwdV1<<<blocks, 128>>>(dq_, dk, dv, out, lse, H, T, scale, bf16Out);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    report(bf16Out ? "fwd v1 out (bf16)" : "fwd v1 out (f32)", B, H, T, dh,
           relErr(download(out, n, bf16Out), ref.out));
    report("fwd v1 lse", B, H, T, dh, relErr(download(lse, rows, false), ref.lse));

    CHECK(cudaMemset(out, 0xFF, n * 4));
    CHECK(cudaMemset(lse, 0xFF, rows * 4));
    ks.jvp<<<blocks, 128>>>(dq_, dk, dv, dqd, dkd, dvd, out, outDot, lse, H, T, scale, bf16Out);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    report("jvp out", B, H, T, dh, relErr(download(out, n, bf16Out), ref.out));
    report("jvp outDot", B, H, T, dh, relErr(download(outDot, n, bf16Out), ref.outDot));
    report("jvp lse", B, H, T, dh, relErr(download(lse, rows, false), ref.lse));

    // Backward from the reference out and lse (out in the same dtype as the forward would give).
    std::vector<float> refOut(ref.out.begin(), ref.out.end()), refLse(ref.lse.begin(), ref.lse.end());
    void *outIn, *gOutIn;
    if (bf16Out) {
        std::vector<uint16_t> ob(n);
        for (size_t i = 0; i < n; i++) ob[i] = toBf16(refOut[i]);
        outIn = upload(ob);
        gOutIn = upload(gob);
    } else {
        outIn = upload(refOut);
        gOutIn = upload(go);
    }
    float *lseIn = upload(refLse), *gq = poisoned(n), *gk = poisoned(n), *gv = poisoned(n), *delta = poisoned(rows);
    uint16_t* dOBf16 = (uint16_t*)poisoned(n / 2 + 1);
    ks.dq<<<blocks, 128>>>(dq_, dk, dv, outIn, lseIn, gOutIn, gq, delta, dOBf16, H, T, scale, bf16Out, bf16Out);
    CHECK(cudaGetLastError());
    ks.dkdv<<<blocks, 128>>>(dq_, dk, dv, lseIn, dOBf16, delta, gk, gv, H, T, scale);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    report("bwd gradQ", B, H, T, dh, relErr(download(gq, n, false), ref.gq));
    report("bwd gradK", B, H, T, dh, relErr(download(gk, n, false), ref.gk));
    report("bwd gradV", B, H, T, dh, relErr(download(gv, n, false), ref.gv));
    for (void* p : {(void*)dq_, (void*)dk, (void*)dv, (void*)dqd, (void*)dkd, (void*)dvd, (void*)out, (void*)outDot,
                    (void*)lse, outIn, gOutIn, (void*)lseIn, (void*)gq, (void*)gk, (void*)gv, (void*)delta,
                    (void*)dOBf16}) {
        CHECK(cudaFree(p));
    }
}

template <typename F>
static float medianMs(F launch, int reps) {
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) launch();
    CHECK(cudaDeviceSynchronize());
    std::vector<float> ms;
    for (int i = 0; i < reps; i++) {
        CHECK(cudaEventRecord(a));
        launch();
        CHECK(cudaEventRecord(b));
        CHECK(cudaEventSynchronize(b));
        float x;
        CHECK(cudaEventElapsedTime(&x, a, b));
        ms.push_back(x);
    }
    CHECK(cudaGetLastError());
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

static void timeShape(int B, int H, int T, int dh, int reps) {
    const size_t n = (size_t)B * H * T * dh, rows = (size_t)B * H * T;
    const float scale = 1.0f / std::sqrt((float)dh);
    std::vector<uint16_t> bits;
    std::vector<float> vals;
    randomBf16(n, -2.0f, 2.0f, bits, vals);
    uint16_t *q = upload(bits), *k = upload(bits), *v = upload(bits), *qd = upload(bits), *kd = upload(bits),
             *vd = upload(bits);
    void *out, *outDot, *gOut;
    CHECK(cudaMalloc(&out, n * 2));
    CHECK(cudaMalloc(&outDot, n * 2));
    CHECK(cudaMalloc(&gOut, n * 4));
    CHECK(cudaMemset(gOut, 0, n * 4));
    float *lse = poisoned(rows), *delta = poisoned(rows), *gq = poisoned(n), *gk = poisoned(n), *gv = poisoned(n);
    uint16_t* dOBf16 = (uint16_t*)poisoned(n / 2 + 1);
    Kernels ks = kernelsFor(dh);
    const int blocks = (T + 63) / 64 * B * H;
    const FwdLaunch fl = fwdLaunch(dh, B, H, T);
    const double perHead = (double)T * T * dh;  // T²·dh
    const double heads = (double)B * H;
    ks.fwd<<<fl.blocks, fl.threads>>>(q, k, v, out, lse, H, T, scale, 1);  // lse for the backward
    CHECK(cudaDeviceSynchronize());
    const float fwd = medianMs([&] { ks.fwd<<<fl.blocks, fl.threads>>>(q, k, v, out, lse, H, T, scale, 1); }, reps);
    const float fwdV1 = medianMs([&] { ks.fwdV1<<<blocks, 128>>>(q, k, v, out, lse, H, T, scale, 1); }, reps);
    const float bwd = medianMs([&] {
        ks.dq<<<blocks, 128>>>(q, k, v, out, lse, gOut, gq, delta, dOBf16, H, T, scale, 1, 0);
        ks.dkdv<<<blocks, 128>>>(q, k, v, lse, dOBf16, delta, gk, gv, H, T, scale);
    }, reps);
    const float dqOnly = medianMs([&] {
        ks.dq<<<blocks, 128>>>(q, k, v, out, lse, gOut, gq, delta, dOBf16, H, T, scale, 1, 0);
    }, reps);
    const float jvp = medianMs([&] {
        ks.jvp<<<blocks, 128>>>(q, k, v, qd, kd, vd, out, outDot, lse, H, T, scale, 1);
    }, reps);
    // FLOP conventions: forward 4·T²·dh per head (Q·Kᵀ, P·V); backward 10·T²·dh (FlashAttention's 2.5× forward; this
    // two-kernel scheme does 14); JVP 12·T²·dh (S, two for Ṡ, O, two for Ȯ).
    printf("TIME B%d H%d T%d dh%-3d  fwd %7.3f ms %6.1f TFLOP/s | bwd %7.3f ms %6.1f TFLOP/s (10·T²dh) | jvp %7.3f ms "
           "%6.1f TFLOP/s  (bwd: dq kernel %.3f ms)\n",
           B, H, T, dh, fwd, 4 * perHead * heads / fwd * 1e-9, bwd, 10 * perHead * heads / bwd * 1e-9, jvp,
           12 * perHead * heads / jvp * 1e-9, dqOnly);
    printf("FWD  B%d H%d T%d dh%-3d  new %7.3f ms %6.1f TFLOP/s | v1 %7.3f ms %6.1f TFLOP/s | speed-up %.2fx\n", B, H,
           T, dh, fwd, 4 * perHead * heads / fwd * 1e-9, fwdV1, 4 * perHead * heads / fwdV1 * 1e-9, fwdV1 / fwd);
    for (void* p : {(void*)q, (void*)k, (void*)v, (void*)qd, (void*)kd, (void*)vd, out, outDot, gOut, (void*)lse,
                    (void*)delta, (void*)gq, (void*)gk, (void*)gv, (void*)dOBf16}) {
        CHECK(cudaFree(p));
    }
}

int main(int argc, char** argv) {
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    const int dhs[] = {16, 32, 64, 72, 128};
    const int ts[] = {1, 17, 77, 130, 256, 300};
    for (int dh : dhs) {
        for (int T : ts) checkCase(1, 2, T, dh, false);
        checkCase(2, 3, 77, dh, true);
    }
    printf("correctness: %d failures\n", failures);
    const bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const int reps = quick ? 5 : 30;
    timeShape(256, 16, 256, 72, reps);
    timeShape(256, 16, 256, 64, reps);
    timeShape(128, 16, 256, 128, reps);
    timeShape(64, 16, 256, 72, reps);
    return failures == 0 ? 0 : 1;
}
