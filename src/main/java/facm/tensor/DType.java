package facm.tensor;

/** Element types a tensor can hold. Sizes are in bytes. */
public enum DType {
    F32(4),
    BF16(2),
    I32(4);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    public boolean isFloating() {
        return this != I32;
    }

    public String lower() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
