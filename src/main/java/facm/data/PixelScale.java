package facm.data;

/**
 * 8-bit pixel values to model space: v ↦ v / 127.5 − 1, so 0 → −1 (background and padding) and 255 → +1. This is
 * ToTensor() followed by Normalize(0.5, 0.5), the usual preprocessing of diffusion models (facm-spec.md §2.1 applies
 * the same map to RGB before encoding).
 */
final class PixelScale {
    /** Value for every byte 0..255, computed in double and rounded once. */
    private static final float[] MODEL_SPACE = new float[256];

    static {
        for (int v = 0; v < 256; v++) {
            MODEL_SPACE[v] = (float) (v / 127.5 - 1.0);
        }
    }

    /** Model-space value of padding, i.e. of a black pixel. */
    static final float BACKGROUND = -1f;

    private PixelScale() {
    }

    static float of(byte unsignedValue) {
        return MODEL_SPACE[unsignedValue & 0xFF];
    }
}
