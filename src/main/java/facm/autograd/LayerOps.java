package facm.autograd;

import facm.tensor.Tensor;

/**
 * The layer calls a network is written against, once, for every kind of pass: {@link ForwardPass} runs them on plain
 * tensors ({@code V = Tensor}: inference, or training with a tape) and {@link DualPass} on {@link Dual} values
 * ({@code V = Dual}: primal and tangent together, the forward-mode JVP of facm-spec.md §6). Values of type V are
 * temporaries of the pass: {@link #release} them as soon as the next layer has consumed them (with a tape, the tape
 * keeps what it saved), {@link #keep} the ones the caller takes. Weights, tables and labels are plain tensors: they
 * are constants of the pass (zero tangent; their gradients, if any, go through the tape).
 *
 * @param <V> the value a layer takes and returns
 */
public interface LayerOps<V> {

    /** q, k, v {@code [B,H,T,dh]} of a fused qkv projection. */
    record Qkv<V>(V q, V k, V v) {
    }

    /** y = x·Wᵀ + b, W {@code [out, in...]}, x {@code [..., in]}; bias may be null. */
    V linear(String name, V x, Tensor weight, Tensor bias);

    /** SiLU(x) = x·σ(x). */
    V silu(String name, V x);

    /** a + b, same shapes. */
    V add(String name, V a, V b);

    /** a += b in place for a constant b (broadcast over leading dimensions). */
    void addConstantInPlace(V a, Tensor b);

    /** Patch layout [B,C,H,W] → [B, T, C·p²]. */
    V patchify(V x, int patch, int tokens, int features);

    /** Output layout [B, T, p²·C] → {@code outShape} [B, C, H, W]. */
    V unpatchify(V tokens, int patch, int[] outShape);

    /** Sinusoidal features {@code [B, dim]} of the times t {@code [B]}. */
    V timestepEmbedding(String name, V t, int dim, float maxPeriod);

    /** Rows of {@code table} picked by the I32 {@code ids}. */
    V embedding(String name, Tensor table, Tensor ids);

    /** RMSNorm of x with the adaLN shift/scale chunks of mod. */
    V rmsNormModulate(String name, V x, Tensor weight, float eps, V mod, int shiftChunk, int scaleChunk);

    /** h + gate ⊙ a (gate = chunk {@code gateChunk} of mod); consumes h and returns the updated residual stream. */
    V gatedResidual(V h, V a, V mod, int gateChunk);

    /** The residual stream after a gated residual and the norm of it that feeds the next GEMM. */
    record ResidualNorm<V>(V h, V normed) {
    }

    /**
     * {@link #gatedResidual} then {@link #rmsNormModulate} of the updated stream (the norm named {@code name}, with
     * the shift/scale chunks of {@code mod2}); consumes h like gatedResidual. A pass may fuse the two (a tape-less
     * {@link ForwardPass} does: NetworkOps.gatedResidualRmsNormModulate); the values are those of the sequence.
     */
    default ResidualNorm<V> gatedResidualRmsNormModulate(String name, V h, V a, V mod, int gateChunk, Tensor weight,
                                                         float eps, V mod2, int shiftChunk, int scaleChunk) {
        V updated = gatedResidual(h, a, mod, gateChunk);
        return new ResidualNorm<>(updated, rmsNormModulate(name, updated, weight, eps, mod2, shiftChunk, scaleChunk));
    }

    /** Heads from a fused qkv {@code [B,T,3·H·dh]}, qk-norm (null weights: none) and RoPE (null tables: none). */
    Qkv<V> qkNormRope(String name, V qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                      Tensor ropeSin);

    /** Softmax attention of heads {@code [B,H,T,dh]}, token-major output {@code [B,T,H·dh]}. */
    V attention(String name, V q, V k, V v, float scale);

    /** SiLU(g) ⊙ u of a fused [g; u] input {@code [..., 2F]} → {@code [..., F]}. */
    V swiglu(String name, V gu);

    /** Frees a temporary of this pass (null: nothing) unless the tape saved it. */
    void release(V value);

    default void release(V first, V second) {
        release(first);
        release(second);
    }

    default void release(V first, V second, V third) {
        release(first);
        release(second);
        release(third);
    }

    /** Hands a temporary of this pass to the caller, who then owns (closes) it. */
    V keep(V value);
}
