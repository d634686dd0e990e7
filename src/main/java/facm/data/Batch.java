package facm.data;

/**
 * One batch on the host: images {@code [B, C, H, W]} in model space (row-major floats), labels {@code [B]}, and the
 * loader position after this batch (samples consumed since the start of training, for checkpoints).
 */
public record Batch(float[] images, int[] shape, int[] labels, long positionAfter) {
    public Batch {
        if (shape.length != 4 || (long) shape[0] * shape[1] * shape[2] * shape[3] != images.length
                || labels.length != shape[0]) {
            throw new IllegalArgumentException("batch: " + images.length + " values, shape "
                    + java.util.Arrays.toString(shape) + ", " + labels.length + " labels do not agree");
        }
    }

    public int size() {
        return shape[0];
    }
}
