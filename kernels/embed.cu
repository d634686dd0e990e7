// Input and output layouts and embeddings of LightningDiT (facm-spec.md §3.2 steps 1, 3, 4 and 8): patchify and
// unpatchify (pure index permutations), the sinusoidal timestep embedding and the class-table row lookup, with the
// backward kernels of the permutations and of the lookup at the end of the file.
// Launchers: facm.backend.cuda.CudaNetworkOps and CudaLayerBackward. CPU reference: facm.backend.cpu.CpuNetworkOps.
//
// All are memory bound and tiny next to the transformer blocks, so each is a plain grid-stride loop over the OUTPUT
// elements (coalesced writes; the reads are gathers that stay in L1/L2 at these sizes).
#include "common.cuh"

// Patch embedding layout (§3.2 step 1, §3.5). x [B,C,H,W] -> out [B, (H/p)(W/p), C·p·p] with
// out[b, i·(W/p)+j, c·p² + pr·p + pc] = x[b, c, i·p+pr, j·p+pc], the flattening of a conv weight (D, C, p, p).
// H and W are multiples of p (checked by the launcher).
extern "C" __global__ void patchify_fwd(const float* __restrict__ x, float* __restrict__ out, int B, int C, int H,
                                        int W, int p) {
    const int gw = W / p;
    const int tokens = (H / p) * gw;
    const int cols = C * p * p;
    const int64_t n = (int64_t)B * tokens * cols;
    GRID_STRIDE_LOOP(o, n) {
        const int col = (int)(o % cols);
        const int64_t bt = o / cols;
        const int tok = (int)(bt % tokens);
        const int b = (int)(bt / tokens);
        const int c = col / (p * p);
        const int pr = (col / p) % p;
        const int pc = col % p;
        const int i = tok / gw;
        const int j = tok % gw;
        out[o] = x[(((int64_t)b * C + c) * H + (i * p + pr)) * W + (j * p + pc)];
    }
}

// Output layout (§3.2 step 8, §3.5). tokens [B, T, p·p·C] -> out [B,C,H,W] with
// out[b, c, i·p+pr, j·p+pc] = tokens[b, i·(W/p)+j, (pr·p+pc)·C + c]. Note the channel is the FASTEST index of a
// token's p·p·C values here, unlike patchify where it is the slowest.
extern "C" __global__ void unpatchify_fwd(const float* __restrict__ tokens, float* __restrict__ out, int B, int C,
                                          int H, int W, int p) {
    const int gw = W / p;
    const int ntok = (H / p) * gw;
    const int64_t n = (int64_t)B * C * H * W;
    GRID_STRIDE_LOOP(o, n) {
        const int xw = (int)(o % W);
        const int64_t r = o / W;
        const int yh = (int)(r % H);
        const int64_t bc = r / H;
        const int c = (int)(bc % C);
        const int b = (int)(bc / C);
        const int tok = (yh / p) * gw + xw / p;
        const int col = ((yh % p) * p + (xw % p)) * C + c;
        out[o] = tokens[((int64_t)b * ntok + tok) * ((int64_t)p * p * C) + col];
    }
}

// Sinusoidal time features (§3.2 step 3): half = dim/2 (dim even, checked by the launcher),
// f_k = exp(−ln(maxPeriod)·k/half), out[b,k] = cos(t_b f_k), out[b,half+k] = sin(t_b f_k). The frequencies and
// arguments are formed in fp64 like the CPU reference (the contract allows fp32, but fp64 costs nothing at B·dim
// elements and keeps the two within an ulp even for large t, where an fp32 argument would be off by |t·f_k|·2^-24).
extern "C" __global__ void timestep_embedding_fwd(const float* __restrict__ t, float* __restrict__ out, int B,
                                                  int dim, double logMaxPeriod) {
    const int half = dim / 2;
    const int64_t n = (int64_t)B * dim;
    GRID_STRIDE_LOOP(o, n) {
        const int col = (int)(o % dim);
        const int b = (int)(o / dim);
        const int k = col < half ? col : col - half;
        const double arg = (double)t[b] * exp(-logMaxPeriod * (double)k / (double)half);
        out[o] = (float)(col < half ? cos(arg) : sin(arg));
    }
}

// Row lookup: out[b, :] = table[ids[b], :]. An id outside [0, V) cannot raise an error from the device without a
// host sync, so its row is written as NaN: the corruption is visible downstream instead of reading out of bounds.
extern "C" __global__ void embedding_fwd(const float* __restrict__ table, const int* __restrict__ ids,
                                         float* __restrict__ out, int B, int D, int V) {
    const int64_t n = (int64_t)B * D;
    GRID_STRIDE_LOOP(o, n) {
        const int d = (int)(o % D);
        const int b = (int)(o / D);
        const int id = ids[b];
        out[o] = (id >= 0 && id < V) ? table[(int64_t)id * D + d] : __int_as_float(0x7fc00000);
    }
}

// ------------------------------------------------------------------------------------------- backward
// Gradients of activations are overwritten, gradients of parameters (the class table) accumulated (+=), as the
// contract facm.tensor.NetworkOps states.

// Backward of patchify = its inverse permutation: gradX[b, c, i·p+pr, j·p+pc] = gradTokens[b, i·(W/p)+j,
// c·p² + pr·p + pc]. One thread per element of gradX (coalesced writes, gathered reads).
extern "C" __global__ void patchify_bwd(const float* __restrict__ gradTokens, float* __restrict__ gradX, int B,
                                        int C, int H, int W, int p) {
    const int gw = W / p;
    const int ntok = (H / p) * gw;
    const int cols = C * p * p;
    const int64_t n = (int64_t)B * C * H * W;
    GRID_STRIDE_LOOP(o, n) {
        const int xw = (int)(o % W);
        const int64_t r = o / W;
        const int yh = (int)(r % H);
        const int64_t bc = r / H;
        const int c = (int)(bc % C);
        const int b = (int)(bc / C);
        const int tok = (yh / p) * gw + xw / p;
        const int col = c * p * p + (yh % p) * p + (xw % p);
        gradX[o] = gradTokens[((int64_t)b * ntok + tok) * cols + col];
    }
}

// Backward of unpatchify = its inverse permutation: gradTokens[b, i·(W/p)+j, (pr·p+pc)·C + c] =
// gradOut[b, c, i·p+pr, j·p+pc]. One thread per element of gradTokens.
extern "C" __global__ void unpatchify_bwd(const float* __restrict__ gradOut, float* __restrict__ gradTokens, int B,
                                          int C, int H, int W, int p) {
    const int gw = W / p;
    const int ntok = (H / p) * gw;
    const int cols = p * p * C;
    const int64_t n = (int64_t)B * ntok * cols;
    GRID_STRIDE_LOOP(o, n) {
        const int col = (int)(o % cols);
        const int64_t bt = o / cols;
        const int tok = (int)(bt % ntok);
        const int b = (int)(bt / ntok);
        const int c = col % C;
        const int within = col / C;  // pr·p + pc
        const int yh = (tok / gw) * p + within / p;
        const int xw = (tok % gw) * p + within % p;
        gradTokens[o] = gradOut[(((int64_t)b * C + c) * H + yh) * W + xw];
    }
}

// Backward of the lookup: gradTable[v, :] += gradOut[b, :] for every b with ids[b] == v, added one b after the other
// in increasing b, exactly the order of a sequential loop on the CPU. Deterministic without atomics: one block per
// table row (rows grid-strided), every thread scans all B ids (a uniform branch: the ids are the same for the whole
// block and come from L1 as broadcasts) and adds its columns of the matching gradOut rows. B is a batch (tens to a few
// hundred), so the scan costs far less than the rows it copies. Rows with no matching id are not touched, and ids
// outside [0, V) are ignored (the forward gave them NaN rows; the device cannot raise an error without a host sync).
extern "C" __global__ void embedding_bwd(const float* __restrict__ gradOut, const int* __restrict__ ids,
                                         float* __restrict__ gradTable, int B, int D, int V) {
    for (int v = blockIdx.x; v < V; v += gridDim.x) {
        float* row = gradTable + (int64_t)v * D;
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
            float acc = 0.0f;
            bool used = false;
            for (int b = 0; b < B; b++) {
                if (ids[b] == v) {
                    acc = used ? acc + gradOut[(int64_t)b * D + d] : row[d] + gradOut[(int64_t)b * D + d];
                    used = true;
                }
            }
            if (used) row[d] = acc;
        }
    }
}

// ------------------------------------------------------------------------------------------- forward mode (JVP)
// out as timestep_embedding_fwd (same fp64 formula, so bit-identical); outDot = [−f·sin(t f), f·cos(t f)]·tDot
// (tDot [B], nullptr = zero tangent), evaluated in fp64 and rounded once.
extern "C" __global__ void timestep_embedding_jvp(const float* __restrict__ t, const float* __restrict__ tDot,
                                                  float* __restrict__ out, float* __restrict__ outDot, int B,
                                                  int dim, double logMaxPeriod) {
    const int half = dim / 2;
    const int64_t n = (int64_t)B * dim;
    GRID_STRIDE_LOOP(o, n) {
        const int col = (int)(o % dim);
        const int b = (int)(o / dim);
        const int k = col < half ? col : col - half;
        const double f = exp(-logMaxPeriod * (double)k / (double)half);
        const double arg = (double)t[b] * f;
        out[o] = (float)(col < half ? cos(arg) : sin(arg));
        const double td = tDot != nullptr ? (double)tDot[b] : 0.0;
        outDot[o] = (float)(col < half ? -f * sin(arg) * td : f * cos(arg) * td);
    }
}
