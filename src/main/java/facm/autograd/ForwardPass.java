package facm.autograd;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.function.UnaryOperator;

/**
 * One forward pass of a network: each method runs its op now and, when the pass has a {@link Tape} and an input of
 * the op is tracked, saves what the op's backward needs and records that backward. Without a tape (inference, a frozen
 * teacher) nothing is saved and temporaries are freed as soon as the caller {@link #release}s them, so the same model
 * code serves inference and training.
 *
 * <p>Ownership: every tensor a method returns is a temporary of this pass; {@link #release} frees it unless the tape
 * saved it (the tape frees it after the backward), {@link #keep} hands it to the caller (e.g. the model output), and
 * {@link #close()} frees whatever temporaries are left. Tensors passed in from outside (inputs, weights) are never
 * freed by the pass; inputs given to a pass with a tape must stay open until its backward has run.
 *
 * <p>Mixed precision ({@link GemmPrecision#BF16}): activations and weights are cast to bf16 right before each GEMM,
 * which accumulates in fp32 and writes fp32; the master weights, norms, softmax and losses stay fp32 (see
 * {@link LinearLayer}). FP32 and TF32 take the f32 tensors as they are.
 *
 * <p>bf16 activations ({@link #bf16Inference}, tape-less BF16 passes only): the activations between GEMM-bound ops
 * are bf16, written by the op that makes them and read by the op that consumes them, so no cast pass exists:
 * rmsNormModulate writes bf16 (it always feeds a linear); a linear with a bf16 input writes bf16 with its bias fused
 * into the GEMM (qkv, w12, attn.proj, w3), except for the weights named in {@link Bf16Forms#f32Outputs} (the final
 * layer); qkNormRope of a bf16 qkv writes bf16 q, k, v when {@link Bf16Forms#attention} (a tensor-core attention
 * takes them) and f32 otherwise; attention of bf16 heads writes bf16; swiglu of a bf16 gu writes bf16;
 * gatedResidual adds a bf16 branch into the f32 residual stream. The residual stream, the conditioning and the
 * modulation vectors, norms' statistics and the output stay f32.
 */
public final class ForwardPass implements AutoCloseable, LayerOps<Tensor> {
    private final Backend be;
    private final GemmPrecision precision;
    private final Tape tape;
    private final Set<Tensor> live = Collections.newSetFromMap(new IdentityHashMap<>());
    private final LinearLayer linears;
    private final NetworkLayers layers;
    private final ElementwiseLayers elementwise;
    private final Bf16Forms bf16;
    private final Bf16Training training;
    private final PassDTypes dtypes;

    /**
     * How a BF16 pass that may record on a tape ({@link #bf16Training}) writes the operands of its GEMMs. For a
     * network whose rmsNormModulate and swiglu outputs (and attention outputs) feed nothing but a linear, as in
     * LightningDiT; not for one that reads a norm's output otherwise (the classifier's pooled features).
     *
     * @param operands  rmsNormModulate and swiglu write bf16, the operand of the linear they feed: the same bits the
     *                  linear's cast would make (the f32 value rounded once), so losses and gradients are unchanged to
     *                  the bit, and the tape keeps that bf16 tensor for the weight gradient as it kept the cast. Their
     *                  backwards read their inputs (f32), never these outputs.
     * @param attention qkNormRope writes bf16 q, k, v (rounded from the f32 heads) and attention writes the bf16
     *                  operand of the projection after it; the attention, its backward and JVP run on the tensor-core
     *                  kernels. This changes numerics (bf16 probabilities and heads). Only where the backend's
     *                  {@link NetworkOps#attentionTakes} BF16.
     */
    public record Bf16Training(boolean operands, boolean attention) {
        /** Bit-identical operand fusions only, f32 attention. */
        public static final Bf16Training OPERANDS = new Bf16Training(true, false);
    }

    /**
     * How a {@link #bf16Inference} pass treats its activations.
     *
     * @param attention   whether the backend's attention takes bf16 q, k, v (else qkNormRope writes f32 heads and
     *                    the attention runs in f32)
     * @param f32Outputs  weights whose linear writes f32 even from a bf16 input (e.g. the final layer, whose output
     *                    is the model's)
     * @param weightCache bf16 copies of weights and biases kept across passes (returns a copy owned by the cache,
     *                    shaped like its argument), or null: each pass casts the weights it uses once
     */
    public record Bf16Forms(boolean attention, Set<Tensor> f32Outputs, UnaryOperator<Tensor> weightCache) {
        public Bf16Forms {
            f32Outputs = Collections.unmodifiableSet(identitySet(f32Outputs));
        }

        private static Set<Tensor> identitySet(Set<Tensor> ts) {
            Set<Tensor> s = Collections.newSetFromMap(new IdentityHashMap<>());
            s.addAll(ts);
            return s;
        }
    }

    /** A pass on {@code backend}; {@code tape} may be null (no gradients). Activations are f32. */
    public ForwardPass(Backend backend, GemmPrecision precision, Tape tape) {
        this(backend, precision, tape, null, null);
    }

    private ForwardPass(Backend backend, GemmPrecision precision, Tape tape, Bf16Forms bf16, Bf16Training training) {
        this.be = backend;
        this.precision = precision;
        this.tape = tape;
        this.bf16 = bf16;
        this.training = training;
        this.dtypes = new PassDTypes(bf16, training);
        this.linears = new LinearLayer(this);
        this.layers = new NetworkLayers(this);
        this.elementwise = new ElementwiseLayers(this);
    }

    /** A tape-less BF16 pass with bf16 activations between GEMM-bound ops (see the class comment). */
    public static ForwardPass bf16Inference(Backend backend, Bf16Forms forms) {
        return new ForwardPass(backend, GemmPrecision.BF16, null, java.util.Objects.requireNonNull(forms, "forms"),
                null);
    }

    /**
     * A BF16 pass ({@code tape} may be null) whose GEMM-operand producers write bf16 as {@code forms} says; the
     * activations a backward reads stay f32. Throws when {@code forms} asks for a bf16 attention the backend's
     * attention does not take.
     */
    public static ForwardPass bf16Training(Backend backend, Tape tape, Bf16Training forms) {
        java.util.Objects.requireNonNull(forms, "forms");
        if (forms.attention() && !backend.network().attentionTakes(DType.BF16)) {
            throw new UnsupportedOperationException("bf16Training: the " + backend.getClass().getSimpleName()
                    + " attention does not take bf16 q, k, v");
        }
        return new ForwardPass(backend, GemmPrecision.BF16, tape, null, forms);
    }

    /** A pass like this one (precision, bf16 forms) recording on {@code otherTape} (null: none). */
    ForwardPass sibling(Tape otherTape) {
        return new ForwardPass(be, precision, otherTape, bf16, training);
    }

    /** This pass's linears use the bf16 weight copies of {@code lender}'s (see LinearLayer#borrowWeightCopiesFrom). */
    void borrowWeightCopiesFrom(ForwardPass lender) {
        linears.borrowWeightCopiesFrom(lender.linears);
    }

    /** Makes {@code t} (the caller's, e.g. kept from a sibling pass) a temporary of this pass. */
    void adopt(Tensor t) {
        live.add(t);
    }

    /** Which outputs of this pass's ops are bf16. */
    PassDTypes dtypes() {
        return dtypes;
    }

    /** The bf16-activation forms of this pass, or null (all activations f32). */
    Bf16Forms bf16Forms() {
        return bf16;
    }

    public Backend backend() {
        return be;
    }

    public GemmPrecision precision() {
        return precision;
    }

    /** The tape, or null for a pass without gradients. */
    public Tape tape() {
        return tape;
    }

    // ---------------------------------------------------------------- ownership

    /** A new temporary of this pass (contents undefined on CUDA). */
    public Tensor alloc(String name, DType dtype, int... shape) {
        Tensor t = be.empty(name, dtype, shape);
        live.add(t);
        return t;
    }

    /** Frees temporaries of this pass that the caller no longer needs (the tape keeps those it saved). */
    public void release(Tensor... ts) {
        for (Tensor t : ts) {
            release(t);
        }
    }

    @Override
    public void release(Tensor t) {
        if (t != null && live.remove(t) && !savedByTape(t)) {
            t.close();
        }
    }

    /** Hands a temporary of this pass to the caller, who then owns (closes) it. */
    @Override
    public Tensor keep(Tensor t) {
        if (!live.remove(t)) {
            throw new IllegalArgumentException("keep: " + t.describe() + " is not a live temporary of this pass");
        }
        if (savedByTape(t)) {
            live.add(t);
            throw new IllegalStateException("keep: " + t.describe() + " is saved by the tape, which will free it");
        }
        return t;
    }

    boolean savedByTape(Tensor t) {
        return tape != null && tape.owns(t);
    }

    /**
     * Hands a temporary of this pass to the tape for a backward. Tensors from outside the pass (the caller's inputs)
     * are not the tape's to free: the caller keeps them open until the backward has run.
     */
    void saveForBackward(Tensor t) {
        if (live.contains(t)) {
            tape.save(t);
        }
    }

    /** Whether an op on {@code inputs} must record its backward. */
    boolean recording(Tensor... inputs) {
        return tape != null && tape.anyRequiresGrad(inputs);
    }

    // ---------------------------------------------------------------- linear layers

    /**
     * y = x·Wᵀ + b with W {@code [out, in...]} (a conv-shaped weight is flattened to {@code [out, in]}) and x
     * {@code [..., in]}; bias may be null. Backward: dX = dY·W, dW += dYᵀ·X (one GEMM each, in the pass's precision),
     * db += Σ_rows dY (fp32). See {@link LinearLayer}.
     */
    @Override
    public Tensor linear(String name, Tensor x, Tensor weight, Tensor bias) {
        return linears.forward(name, x, weight, bias);
    }

    // ---------------------------------------------------------------- elementwise

    /** SiLU(x) = x·σ(x); backward gradIn = gradOut·SiLU'(x), computed in place in the output's gradient. */
    @Override
    public Tensor silu(String name, Tensor x) {
        return silu(name, x, out -> be.unary(UnaryOp.SILU, x, out));
    }

    /**
     * The op's outputs are computed by {@code compute} (given the outputs this pass allocated, and the statistics
     * buffers when the op records, else null), and the backward is recorded as for the plain op. A forward-mode pass
     * ({@link DualPass}) passes its fused JVP op here, which writes the same primal plus the tangent in one go, so
     * the primal is computed once with or without a tape.
     */
    @FunctionalInterface
    interface Compute {
        void run(Tensor out, Tensor stats);
    }

    /** {@link Compute} for the three outputs of {@link #qkNormRope}. */
    @FunctionalInterface
    interface QkvCompute {
        void run(Tensor q, Tensor k, Tensor v, Tensor rstd);
    }

    Tensor silu(String name, Tensor x, java.util.function.Consumer<Tensor> compute) {
        return elementwise.silu(name, x, compute);
    }

    /** a + b, same shapes (a broadcast b must not need a gradient); gradients pass through unchanged. */
    @Override
    public Tensor add(String name, Tensor a, Tensor b) {
        return elementwise.add(name, a, b);
    }

    /**
     * a += b in place, for a constant b (e.g. a fixed position table, broadcast over leading dimensions): the gradient
     * of a passes through unchanged, so nothing is recorded. a must not be saved by the tape (its old value is lost).
     */
    @Override
    public void addConstantInPlace(Tensor a, Tensor b) {
        elementwise.addConstantInPlace(a, b);
    }

    // ---------------------------------------------------------------- network layers (NetworkOps)

    /** Patch layout [B,C,H,W] → [B, T, C·p²]. */
    @Override
    public Tensor patchify(Tensor x, int patch, int tokens, int features) {
        return layers.patchify(x, patch, tokens, features);
    }

    /** Output layout [B, T, p²·C] → [B, C, H, W] with the spatial shape of {@code like}. */
    @Override
    public Tensor unpatchify(Tensor tokens, int patch, int[] outShape) {
        return layers.unpatchify(tokens, patch, outShape);
    }

    /** Sinusoidal time features (no gradient: time inputs are never tracked). */
    @Override
    public Tensor timestepEmbedding(String name, Tensor t, int dim, float maxPeriod) {
        return layers.timestepEmbedding(name, t, dim, maxPeriod);
    }

    /** Rows of {@code table} picked by {@code ids}; the table's gradient accumulates per id. */
    @Override
    public Tensor embedding(String name, Tensor table, Tensor ids) {
        return layers.embedding(name, table, ids);
    }

    /** RMSNorm of x with adaLN chunks of mod (null: plain RMSNorm); saves x, mod and the row statistics. */
    @Override
    public Tensor rmsNormModulate(String name, Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk,
                                  int scaleChunk) {
        return layers.rmsNormModulate(name, x, weight, eps, mod, shiftChunk, scaleChunk);
    }

    Tensor rmsNormModulate(String name, Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk,
                           int scaleChunk, Compute compute) {
        return layers.rmsNormModulate(name, x, weight, eps, mod, shiftChunk, scaleChunk, compute);
    }

    /**
     * The residual update h + gate ⊙ a (gate = chunk of mod). Consumes h (a temporary of this pass): without a
     * recording tape it is updated in place and returned; with one, a new tensor is returned and the old h stays
     * with the tape if an earlier op saved it.
     */
    @Override
    public Tensor gatedResidual(Tensor h, Tensor a, Tensor mod, int gateChunk) {
        return layers.gatedResidual(h, a, mod, gateChunk);
    }

    Tensor gatedResidual(Tensor h, Tensor a, Tensor mod, int gateChunk, java.util.function.Consumer<Tensor> update) {
        return layers.gatedResidual(h, a, mod, gateChunk, update);
    }

    /** Fused (one NetworkOps call, h updated in place) when nothing is recorded; the two layers otherwise. */
    @Override
    public ResidualNorm<Tensor> gatedResidualRmsNormModulate(String name, Tensor h, Tensor a, Tensor mod,
                                                             int gateChunk, Tensor weight, float eps, Tensor mod2,
                                                             int shiftChunk, int scaleChunk) {
        if (recording(h, a, mod, weight, mod2)) {
            return LayerOps.super.gatedResidualRmsNormModulate(name, h, a, mod, gateChunk, weight, eps, mod2,
                    shiftChunk, scaleChunk);
        }
        return layers.gatedResidualRmsNormModulate(name, h, a, mod, gateChunk, weight, eps, mod2, shiftChunk,
                scaleChunk);
    }

    /** q, k, v {@code [B,H,T,dh]} from a fused qkv projection (qk-norm and RoPE applied to q and k). */
    @Override
    public Qkv<Tensor> qkNormRope(String name, Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps,
                                  Tensor ropeCos, Tensor ropeSin) {
        return layers.qkNormRope(name, qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin);
    }

    Qkv<Tensor> qkNormRope(String name, Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps,
                           Tensor ropeCos, Tensor ropeSin, QkvCompute compute) {
        return layers.qkNormRope(name, qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, compute);
    }

    /** Softmax attention, token-major output {@code [B,T,H·dh]}; saves q, k, v, the output and the log-sum-exp. */
    @Override
    public Tensor attention(String name, Tensor q, Tensor k, Tensor v, float scale) {
        return layers.attention(name, q, k, v, scale);
    }

    Tensor attention(String name, Tensor q, Tensor k, Tensor v, float scale, Compute compute) {
        return layers.attention(name, q, k, v, scale, compute);
    }

    /** SiLU(g) ⊙ u of a fused [g; u] input {@code [..., 2F]} → {@code [..., F]}; saves the input. */
    @Override
    public Tensor swiglu(String name, Tensor gu) {
        return layers.swiglu(name, gu);
    }

    Tensor swiglu(String name, Tensor gu, java.util.function.Consumer<Tensor> compute) {
        return layers.swiglu(name, gu, compute);
    }

    /** Frees the temporaries left and the bf16 weight copies the tape did not save. */
    @Override
    public void close() {
        for (Tensor t : live) {
            if (!savedByTape(t)) {
                t.close();
            }
        }
        live.clear();
        linears.close();
    }
}
