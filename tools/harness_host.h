// Host helpers shared by the standalone kernel harnesses (tools/perf-harness, tools/attention-harness): CUDA status
// checks, bf16 rounding as facm.tensor.Bf16 does it (round to nearest even), and a deterministic xorshift64* source.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#define CHECK(call)                                                                                          \
    do {                                                                                                     \
        cudaError_t err_ = (call);                                                                           \
        if (err_ != cudaSuccess) {                                                                           \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, cudaGetErrorName(err_), \
                    cudaGetErrorString(err_));                                                               \
            exit(2);                                                                                         \
        }                                                                                                    \
    } while (0)
// After every kernel launch: launch errors (bad configuration) at once; faults surface at the next CHECKed sync.
#define CHECK_LAUNCH() CHECK(cudaGetLastError())

static uint16_t toBf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)((bits + rounding) >> 16);
}

static float fromBf16(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint64_t rngState = 0x9E3779B97F4A7C15ull;
static float uniform(float lo, float hi) {  // xorshift64*, deterministic
    rngState ^= rngState >> 12;
    rngState ^= rngState << 25;
    rngState ^= rngState >> 27;
    const double u = (double)((rngState * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
    return (float)(lo + (hi - lo) * u);
}
