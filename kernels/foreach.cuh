// Multi-tensor ("foreach") launches: one grid covers a list of tensors, each block finds its tensor in a table that
// the host builds once per set of tensors (facm.backend.cuda.ForeachTable; the addresses of weights, gradients,
// moments and EMAs are fixed for a run) and uploads, so a whole optimizer phase is one launch instead of one per
// tensor (XL/1 has 404 trainable tensors) and a captured step replays it with no host work.
//
// Table layout (int64 words): `count` entries of FOREACH_FIELDS words, then count + 1 first blocks (ascending; entry e
// owns blocks [first[e], first[e + 1]), the last value is the grid size). Entry fields: up to four tensor addresses
// (unused ones 0), the element count, and the block count this tensor gets (which is the grid its own per-tensor
// launch would have had, where the result depends on it). Entries are never empty: the host leaves out tensors
// with no elements.
#pragma once

#include "common.cuh"

#define FOREACH_FIELDS 6
#define FOREACH_PTR0 0
#define FOREACH_PTR1 1
#define FOREACH_PTR2 2
#define FOREACH_PTR3 3
#define FOREACH_N 4
#define FOREACH_BLOCKS 5

// The entry that owns grid block `block`: binary search over the first blocks (log2(count) cached reads; every block
// of the grid walks the same top levels, so they stay in L1/L2).
__device__ __forceinline__ int foreach_entry(const int64_t* __restrict__ table, int count, int64_t block) {
    const int64_t* first = table + (int64_t)count * FOREACH_FIELDS;
    int lo = 0, hi = count - 1;  // first[lo] <= block < first[hi + 1]
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (first[mid] <= block) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

// The tensor of this block and the slice [begin, end) of its elements this block owns, for the chunked kernels
// (elementwise: each block takes `chunk` consecutive elements; which thread does an element does not change it).
struct ForeachSlice {
    const int64_t* entry;
    int64_t begin;
    int64_t end;
};

__device__ __forceinline__ ForeachSlice foreach_slice(const int64_t* __restrict__ table, int count, int64_t chunk) {
    const int64_t block = blockIdx.x;
    const int e = foreach_entry(table, count, block);
    const int64_t* entry = table + (int64_t)e * FOREACH_FIELDS;
    const int64_t first = table[(int64_t)count * FOREACH_FIELDS + e];
    const int64_t n = entry[FOREACH_N];
    const int64_t begin = (block - first) * chunk;
    const int64_t end = begin + chunk < n ? begin + chunk : n;
    return ForeachSlice{entry, begin, end};
}

template <typename T>
__device__ __forceinline__ T* foreach_ptr(const int64_t* entry, int field) {
    return reinterpret_cast<T*>(entry[field]);
}

#define FOREACH_SLICE_LOOP(i, slice) for (int64_t i = (slice).begin + threadIdx.x; i < (slice).end; i += blockDim.x)
