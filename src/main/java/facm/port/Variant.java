package facm.port;

import facm.tensor.DType;

import java.util.List;

/**
 * The code path a kernel family takes on a GPU, as reported by {@code port-check} and {@code info}: derived from the
 * compute capability, the case's dtype and which kernel modules the jar holds (so a family gains its tensor-core
 * name as soon as the module that provides it is built in).
 */
public enum Variant {
    /** One thread per element, grid-stride loop. */
    SIMT("fp32 SIMT grid-stride"),
    /** A warp or block per row, 128-bit loads where the row is 16-byte aligned. */
    ROWS("fp32 SIMT row-per-warp, vec4 when aligned"),
    /** Tree reductions (warp shuffles, then shared memory; partial sums across blocks). */
    REDUCTION("fp32 SIMT tree reduction"),
    /** Philox-4x32 counters, one thread per 4 numbers. */
    RANDOM("Philox-4x32 SIMT"),
    /** Scatter with fp32 atomics. */
    ATOMIC("fp32 SIMT atomics"),
    GEMM_FP32("cuBLASLt fp32"),
    GEMM_TF32("cuBLASLt tf32"),
    GEMM_BF16("cuBLASLt bf16"),
    /** Our fused attention kernels (fp32 SIMT online softmax, or the bf16 tensor-core ones when present). */
    ATTENTION("fused attention");

    private final String base;

    Variant(String base) {
        this.base = base;
    }

    /** e.g. "tensor-core mma.sync bf16 (attention_tc)" or "cuBLASLt bf16 tensor-core (wgmma)". */
    public String describe(int computeCapability, DType dtype, List<String> modules) {
        boolean tensorCores = computeCapability >= 80;
        return switch (this) {
            case GEMM_FP32 -> base + " SIMT";
            case GEMM_TF32 -> tensorCores ? base + " tensor-core" : base + " (no tensor cores: fp32 SIMT)";
            case GEMM_BF16 -> computeCapability >= 90 ? base + " tensor-core (wgmma)"
                    : tensorCores ? base + " tensor-core (mma.sync)" : base + " (no bf16 tensor cores)";
            case ATTENTION -> dtype == DType.BF16 && tensorCores && modules.stream().anyMatch(m -> m.startsWith("attention_tc"))
                    ? "tensor-core mma.sync bf16 flash attention (attention_tc)"
                    : "fp32 SIMT flash-style online softmax" + (dtype == DType.BF16 ? " (bf16 widened)" : "");
            default -> dtype == DType.BF16 ? base.replace("fp32", "bf16 I/O, fp32 math") : base;
        };
    }

    /** True for families whose code is cuBLASLt's, not ours (their SASS/PTX column is the library's). */
    public boolean isLibrary() {
        return this == GEMM_FP32 || this == GEMM_TF32 || this == GEMM_BF16;
    }
}
