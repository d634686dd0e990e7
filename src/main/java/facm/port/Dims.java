package facm.port;

/**
 * The sizes one kernel-family case is run at. Each family reads the fields it needs (an attention case: batch,
 * tokens, heads, headDim; a GEMM: rows = batch·tokens, width, hidden). Two correctness sets (odd sizes that take the
 * scalar paths, aligned sizes that take the vectorized ones) and two benchmark sets (LightningDiT-XL/1 at batch 16,
 * and a smaller one for {@code --quick}).
 *
 * @param batch    B
 * @param tokens   T (sequence length of the attention and token ops)
 * @param heads    H
 * @param headDim  dh (attention head dimension; one of the sizes the attention kernels support)
 * @param width    D of the row ops (norms, modulation, embeddings); H·dh in a real model, but the odd set uses a
 *                 width that is not a multiple of 4 so the scalar (non-vec4) kernels run (attention needs dh ∈
 *                 {16, 32, 64, 72, 128}, which would make H·dh a multiple of 8)
 * @param hidden   F (SwiGLU hidden width; a GEMM's third dimension)
 * @param channels C of the image ops and the losses
 * @param image    height = width of the image ops
 * @param patch    patch size (divides image)
 * @param classes  rows of the embedding table, logits of the cross-entropy
 */
public record Dims(String label, int batch, int tokens, int heads, int headDim, int width, int hidden, int channels,
                   int image, int patch, int classes) {

    /** Odd sizes: no dimension a multiple of 4 where the kernels have a vec4 path, partial blocks everywhere. */
    public static final Dims ODD = new Dims("odd", 3, 37, 3, 32, 94, 93, 3, 6, 2, 11);
    /** Aligned, realistic shapes but small enough for the CPU reference: the vectorized and tiled paths. */
    public static final Dims ALIGNED = new Dims("aligned", 2, 64, 4, 72, 288, 768, 4, 8, 1, 17);
    /** LightningDiT-XL/1 (D 1152, 16 heads of 72, SwiGLU 3072, 32×16×16 latents) at batch 16. */
    public static final Dims BENCH = new Dims("xl-b16", 16, 256, 16, 72, 1152, 3072, 32, 16, 1, 1000);
    /** The same layer widths at batch 4 ({@code --quick}). */
    public static final Dims QUICK_BENCH = new Dims("xl-b4", 4, 256, 16, 72, 1152, 3072, 32, 16, 1, 1000);

    public Dims {
        if (batch < 1 || tokens < 1 || heads < 1 || headDim < 2 || headDim % 2 != 0 || width < 2 || width % 2 != 0
                || hidden < 1 || channels < 1
                || image < 1 || patch < 1 || image % patch != 0 || classes < 2) {
            throw new IllegalArgumentException("bad port-check sizes " + label);
        }
    }

    /** H·dh, the width of the attention activations (q, k, v heads side by side). */
    public int attentionWidth() {
        return heads * headDim;
    }

    /** Rows of a token-major activation, B·T. */
    public int rows() {
        return batch * tokens;
    }

    /** Tokens of the patchified image, (image/patch)². */
    public int patchTokens() {
        int side = image / patch;
        return side * side;
    }

    @Override
    public String toString() {
        return String.format("%s (B %d, T %d, H %d, dh %d, D %d, F %d, C %d, %dx%d/p%d)", label, batch, tokens,
                heads, headDim, width, hidden, channels, image, image, patch);
    }
}
