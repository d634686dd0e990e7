package facm.tensor;

/** Elementwise functions of two float arguments. */
public enum BinaryOp {
    ADD, SUB, MUL, DIV, MAX, MIN
}
