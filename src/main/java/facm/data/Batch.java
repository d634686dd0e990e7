package facm.data;

import java.util.Arrays;

/**
 * One batch on the host: images {@code [B, C, H, W]} in model space (row-major floats), labels {@code [B]}, the loader
 * position after this batch (samples consumed since the start of training, for checkpoints), and the dataset indices
 * the samples came from ({@code [B]}; -1 where a batch was not drawn from a dataset).
 */
public record Batch(float[] images, int[] shape, int[] labels, long positionAfter, int[] indices) {
    public Batch {
        if (shape.length != 4 || (long) shape[0] * shape[1] * shape[2] * shape[3] != images.length
                || labels.length != shape[0] || indices.length != shape[0]) {
            throw new IllegalArgumentException("batch: " + images.length + " values, shape "
                    + Arrays.toString(shape) + ", " + labels.length + " labels, " + indices.length
                    + " indices do not agree");
        }
    }

    /** A batch that did not come from a dataset (tests, synthetic data): its indices are all -1. */
    public Batch(float[] images, int[] shape, int[] labels, long positionAfter) {
        this(images, shape, labels, positionAfter, filled(labels.length, -1));
    }

    public int size() {
        return shape[0];
    }

    private static int[] filled(int n, int value) {
        int[] a = new int[n];
        Arrays.fill(a, value);
        return a;
    }
}
