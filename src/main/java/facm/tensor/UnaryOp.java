package facm.tensor;

/** Elementwise functions of one float argument. CPU and CUDA use the same definitions (computed in fp32). */
public enum UnaryOp {
    NEG, ABS, EXP, LOG, SQRT, RSQRT, SQUARE, SIGMOID,
    /** x * sigmoid(x). */
    SILU,
    TANH, COS, SIN
}
