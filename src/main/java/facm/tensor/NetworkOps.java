package facm.tensor;

/**
 * The LightningDiT layers (facm-spec.md §3) as backend ops, each defined once here and implemented by every backend
 * ({@code backend.network()}). All tensors are F32 unless stated; "rows" are the leading dimensions flattened. Each
 * op's backward and forward-mode (JVP) twins will sit next to it in this interface as the training issues add them.
 *
 * <p>Layout conventions: activations are token-major {@code [B, T, D]}; attention heads are {@code [B, H, T, dh]};
 * modulation vectors are one {@code [B, K·D]} tensor per block (K = 6 chunks in a block, 2 in the final layer) and ops
 * read chunk {@code c} (= elements {@code [c·D, (c+1)·D)} of each batch row) in place, so no slicing copies exist.
 */
public interface NetworkOps {

    /**
     * Patch embedding layout (§3.2 step 1, §3.5): x {@code [B,C,H,W]} → out {@code [B, (H/p)(W/p), C·p·p]} with
     * out[b, i·(W/p)+j, c·p² + pr·p + pc] = x[b, c, i·p+pr, j·p+pc] (the flattening of a conv weight {@code (D,C,p,p)}).
     */
    void patchify(Tensor x, int patch, Tensor out);

    /**
     * Output layout (§3.2 step 8, §3.5): tokens {@code [B, T, p·p·C]} → out {@code [B,C,H,W]} with
     * out[b, c, i·p+pr, j·p+pc] = tokens[b, i·(W/p)+j, (pr·p+pc)·C + c]. H and W come from out's shape.
     */
    void unpatchify(Tensor tokens, int patch, Tensor out);

    /**
     * Sinusoidal time features (§3.2 step 3): t {@code [B]} → out {@code [B, dim]}, half = dim/2,
     * f_k = exp(−ln(maxPeriod)·k/half), out[b,k] = cos(t_b f_k), out[b,half+k] = sin(t_b f_k). Computed in fp32 from
     * t as given (no scaling); arguments t·f_k are formed in fp64 on the CPU and fp32 on CUDA.
     */
    void timestepEmbedding(Tensor t, float maxPeriod, Tensor out);

    /** Row lookup: table {@code [V, D]}, ids {@code [B]} (I32, each in [0,V)) → out {@code [B, D]}. */
    void embedding(Tensor table, Tensor ids, Tensor out);

    /**
     * RMSNorm with optional adaLN modulation (§3.2 block, final layer): for x {@code [B, T, D]},
     * out = x·ρ ⊙ w ⊙ (1 + scale_b) + shift_b with ρ = (mean_D(x²) + eps)^(−½) per row, statistics in fp32.
     * {@code mod} {@code [B, K·D]} supplies shift = chunk {@code shiftChunk} and scale = chunk {@code scaleChunk}; with
     * {@code mod == null} it is plain RMSNorm (x may then have any rank, normalized over its last dimension).
     * {@code rstd} (rows, may be null) receives ρ for the backward pass.
     */
    void rmsNormModulate(Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk, int scaleChunk,
                         Tensor out, Tensor rstd);

    /** Gated residual (§3.2 block): h {@code [B,T,D]} += gate_b ⊙ a, gate = chunk {@code gateChunk} of mod {@code [B,K·D]}. */
    void gatedResidual(Tensor h, Tensor a, Tensor mod, int gateChunk);

    /**
     * {@link #gatedResidual} then {@link #rmsNormModulate} of the updated h, in one pass where the backend has a fused
     * kernel (the end of one block branch and the norm that feeds the next GEMM): h += gate ⊙ a (gate = chunk
     * {@code gateChunk} of mod), then out = RMSNormModulate(h) with weight, eps and the shift/scale chunks of
     * {@code mod2} (null: plain RMSNorm). a F32 or BF16, out F32 or BF16 and apart from h and a; rstd (rows, may be
     * null) as rmsNormModulate's. The result is by definition the two ops in sequence (this default, which is the CPU
     * reference); a fused implementation must match it bit for bit on the same backend.
     */
    default void gatedResidualRmsNormModulate(Tensor h, Tensor a, Tensor mod, int gateChunk, Tensor weight, float eps,
                                              Tensor mod2, int shiftChunk, int scaleChunk, Tensor out, Tensor rstd) {
        NetworkChecks.gatedResidualRmsNormModulate("gatedResidualRmsNormModulate", h, a, mod, gateChunk, weight, eps,
                mod2, shiftChunk, scaleChunk, out, rstd);
        gatedResidual(h, a, mod, gateChunk);
        rmsNormModulate(h, weight, eps, mod2, shiftChunk, scaleChunk, out, rstd);
    }

    /**
     * Attention input preparation (§3.2 Attention, §3.4): qkv {@code [B, T, 3·H·dh]} (per token: q heads, then k heads,
     * then v heads, head-major) → q, k, v {@code [B, H, T, dh]}. q and k are RMS-normalized over dh with weights
     * qWeight/kWeight {@code [dh]} (skipped when null: no qk-norm) and then rotated by the interleaved-pair RoPE with
     * tables cos/sin {@code [T, dh]} (skipped when null): x'[2p] = x[2p]·cos − x[2p+1]·sin,
     * x'[2p+1] = x[2p+1]·cos + x[2p]·sin, using the table entry at (token, 2p). eps is the RMSNorm epsilon.
     * {@code rstd} {@code [B, T, 2, H]} (may be null) receives ρ of q and k for the backward pass.
     */
    void qkNormRope(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos, Tensor ropeSin,
                    Tensor q, Tensor k, Tensor v, Tensor rstd);

    /**
     * Softmax attention (§3.2): per batch and head O = softmax(q kᵀ·scale) v, written token-major into out
     * {@code [B, T, H·dh]} (head-major within a token). No mask. {@code lse} {@code [B, H, T]} (may be null) receives the
     * natural-log sum-exp of the scaled scores per query row, for a backward pass that recomputes the probabilities.
     * CUDA uses a fused online-softmax kernel; the CPU materializes one row of scores at a time.
     */
    void attention(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse);

    /**
     * Whether {@link #attention}, {@link #attentionBackward} and {@link #attentionJvp} take q, k, v (and their
     * tangents) of {@code dtype}: F32 always; BF16 where the backend has a bf16 attention (the tensor-core kernels on
     * CUDA; on the CPU the reference that widens, computes and rounds). A bf16 training pass asks before it writes
     * bf16 heads.
     */
    default boolean attentionTakes(DType dtype) {
        return dtype == DType.F32;
    }

    /** SwiGLU (§3.2): gu {@code [rows, 2F]} (first F = gate g, last F = u) → out {@code [rows, F]} = SiLU(g) ⊙ u. */
    void swiglu(Tensor gu, Tensor out);

    // ================================================================ backward (reverse mode)
    // Conventions: gradients of activations ("gradX", "gradTokens", ...) are OVERWRITTEN; gradients of parameters
    // ("gradWeight", "gradTable", "gradMod") are ACCUMULATED (+=) so several uses add up. Any gradient output may be
    // null when the caller does not need it. Inputs are the forward's inputs and what the forward saved (rstd, lse, out).

    /** Inverse permutation of {@link #patchify}: gradX {@code [B,C,H,W]} from gradTokens. */
    default void patchifyBackward(Tensor gradTokens, int patch, Tensor gradX) {
        throw new UnsupportedOperationException("patchifyBackward");
    }

    /** Inverse permutation of {@link #unpatchify}: gradTokens {@code [B,T,p·p·C]} from gradOut {@code [B,C,H,W]}. */
    default void unpatchifyBackward(Tensor gradOut, int patch, Tensor gradTokens) {
        throw new UnsupportedOperationException("unpatchifyBackward");
    }

    /** gradTable[ids[b]] += gradOut[b] (rows of the same id add up). */
    default void embeddingBackward(Tensor gradOut, Tensor ids, Tensor gradTable) {
        throw new UnsupportedOperationException("embeddingBackward");
    }

    /**
     * Backward of {@link #rmsNormModulate} given the saved {@code rstd}: with n = x·ρ and s = 1 + scale,
     * gradWeight += Σ_rows gradOut·n·s; gradMod[scale] += Σ_tokens gradOut·n·w; gradMod[shift] += Σ_tokens gradOut;
     * gradX = ρ·(g − n·mean_D(g·n)) with g = gradOut·w·s. {@code mod == null}: plain RMSNorm (no gradMod).
     */
    default void rmsNormModulateBackward(Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk, int scaleChunk,
                                         Tensor rstd, Tensor gradOut, Tensor gradX, Tensor gradWeight, Tensor gradMod) {
        throw new UnsupportedOperationException("rmsNormModulateBackward");
    }

    /** Backward of h += gate ⊙ a: gradA = gate·gradH; gradMod[gate] += Σ_tokens a·gradH (gradH itself passes through). */
    default void gatedResidualBackward(Tensor a, Tensor mod, int gateChunk, Tensor gradH, Tensor gradA, Tensor gradMod) {
        throw new UnsupportedOperationException("gatedResidualBackward");
    }

    /**
     * Backward of {@link #qkNormRope}: gradQkv {@code [B,T,3·H·dh]} (overwritten) from gradQ/gradK/gradV {@code [B,H,T,dh]}
     * (RoPE transposed, then the RMSNorm backward with the saved rstd {@code [B,T,2,H]}); gradQWeight/gradKWeight
     * {@code [dh]} accumulate.
     */
    default void qkNormRopeBackward(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                                    Tensor ropeSin, Tensor rstd, Tensor gradQ, Tensor gradK, Tensor gradV,
                                    Tensor gradQkv, Tensor gradQWeight, Tensor gradKWeight) {
        throw new UnsupportedOperationException("qkNormRopeBackward");
    }

    /**
     * Backward of {@link #attention} recomputing the probabilities from the saved {@code lse} (flash-style, no score
     * matrix stored): with dO = gradOut per head, D_i = Σ_d dO_id·O_id, P = exp(s·qkᵀ − lse),
     * gradV = Pᵀ dO, dS = P ⊙ (dO vᵀ − D), gradQ = s·dS k, gradK = s·dSᵀ q. All three overwritten, {@code [B,H,T,dh]}.
     */
    default void attentionBackward(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse, Tensor gradOut,
                                   Tensor gradQ, Tensor gradK, Tensor gradV) {
        throw new UnsupportedOperationException("attentionBackward");
    }

    /** Backward of SwiGLU: gradGu {@code [rows, 2F]} = [gradOut·u·SiLU'(g), gradOut·SiLU(g)] (overwritten). */
    default void swigluBackward(Tensor gu, Tensor gradOut, Tensor gradGu) {
        throw new UnsupportedOperationException("swigluBackward");
    }

    /** gradIn = gradOut · SiLU'(x), SiLU'(x) = σ(x)(1 + x(1 − σ(x))) (overwritten; may alias gradOut). */
    default void siluBackward(Tensor x, Tensor gradOut, Tensor gradIn) {
        throw new UnsupportedOperationException("siluBackward");
    }

    // ================================================================ forward mode (JVP, facm-spec.md §6.2)
    // Each JVP op computes the primal output exactly as its forward op does AND the tangent output from the primal and
    // tangent inputs, in one pass. It also writes what the reverse pass of the primal needs (rstd, lse: may be null),
    // so gradients can flow through the primal of a JVP pass. Tangents are never saved for backward. A null tangent
    // input means a zero tangent. Linear layers, patchify/unpatchify and additions need no JVP op: their tangent is
    // the same linear map applied to the tangent (no bias). Labels, pos_embed and RoPE tables have zero tangents.

    /** out = features(t) as {@link #timestepEmbedding}; outDot = [−f·sin(t f), f·cos(t f)]·tDot ({@code [B]}). */
    default void timestepEmbeddingJvp(Tensor t, Tensor tDot, float maxPeriod, Tensor out, Tensor outDot) {
        throw new UnsupportedOperationException("timestepEmbeddingJvp");
    }

    /** out = SiLU(x); outDot = σ(x)(1 + x(1 − σ(x)))·xDot. */
    default void siluJvp(Tensor x, Tensor xDot, Tensor out, Tensor outDot) {
        throw new UnsupportedOperationException("siluJvp");
    }

    /**
     * Primal as {@link #rmsNormModulate}; with n = x·ρ, s = 1 + scale: outDot = w ⊙ ρ(ẋ − x·ρ²·mean_D(x ⊙ ẋ)) ⊙ s
     * + n ⊙ w ⊙ scaleDot + shiftDot, the modulation tangents read from {@code modDot} (same layout as mod; may be null).
     */
    default void rmsNormModulateJvp(Tensor x, Tensor xDot, Tensor weight, float eps, Tensor mod, Tensor modDot,
                                    int shiftChunk, int scaleChunk, Tensor out, Tensor outDot, Tensor rstd) {
        throw new UnsupportedOperationException("rmsNormModulateJvp");
    }

    /** h += gate ⊙ a and hDot += gateDot ⊙ a + gate ⊙ aDot (gate/gateDot = chunk of mod/modDot). */
    default void gatedResidualJvp(Tensor h, Tensor hDot, Tensor a, Tensor aDot, Tensor mod, Tensor modDot,
                                  int gateChunk) {
        throw new UnsupportedOperationException("gatedResidualJvp");
    }

    /** Primal as {@link #qkNormRope}; tangents qDot, kDot, vDot {@code [B,H,T,dh]} by the RMSNorm tangent rule and the
     * same rotation (RoPE is linear in q, k). */
    default void qkNormRopeJvp(Tensor qkv, Tensor qkvDot, int heads, Tensor qWeight, Tensor kWeight, float eps,
                               Tensor ropeCos, Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor qDot, Tensor kDot,
                               Tensor vDot, Tensor rstd) {
        throw new UnsupportedOperationException("qkNormRopeJvp");
    }

    /**
     * Fused attention forward and tangent (§6.4), no score matrix stored: per query row, with S = scale·q kᵀ,
     * Ṡ = scale·(q̇ kᵀ + q k̇ᵀ), P = softmax(S), μ = Σ_j P_j Ṡ_j: outDot = Σ_j P_j (v̇_j + Ṡ_j v_j) − μ·out.
     * out/outDot {@code [B,T,H·dh]}; lse as {@link #attention}.
     */
    default void attentionJvp(Tensor q, Tensor k, Tensor v, Tensor qDot, Tensor kDot, Tensor vDot, float scale,
                              Tensor out, Tensor outDot, Tensor lse) {
        throw new UnsupportedOperationException("attentionJvp");
    }

    /** out = SiLU(g) ⊙ u; outDot = SiLU'(g) ⊙ ġ ⊙ u + SiLU(g) ⊙ u̇ (gu and guDot {@code [rows, 2F]}). */
    default void swigluJvp(Tensor gu, Tensor guDot, Tensor out, Tensor outDot) {
        throw new UnsupportedOperationException("swigluJvp");
    }
}
