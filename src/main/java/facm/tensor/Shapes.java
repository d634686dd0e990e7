package facm.tensor;

import java.util.Arrays;

/** Shape arithmetic and the one-line errors shape checks throw. */
public final class Shapes {
    private Shapes() {
    }

    public static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            n *= d;
        }
        return n;
    }

    public static String str(int[] shape) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < shape.length; i++) {
            if (i > 0) {
                b.append(',');
            }
            b.append(shape[i]);
        }
        return b.append(']').toString();
    }

    /** Normalizes a possibly negative axis against a rank. */
    public static int axis(int axis, int rank) {
        int a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) {
            throw new IllegalArgumentException("axis " + axis + " out of range for rank " + rank);
        }
        return a;
    }

    /** Product of the dimensions before {@code axis}. */
    public static long outer(int[] shape, int axis) {
        long n = 1;
        for (int i = 0; i < axis; i++) {
            n *= shape[i];
        }
        return n;
    }

    /** Product of the dimensions after {@code axis}. */
    public static long inner(int[] shape, int axis) {
        long n = 1;
        for (int i = axis + 1; i < shape.length; i++) {
            n *= shape[i];
        }
        return n;
    }

    /** The shape with {@code axis} removed. */
    public static int[] without(int[] shape, int axis) {
        int[] r = new int[shape.length - 1];
        for (int i = 0, j = 0; i < shape.length; i++) {
            if (i != axis) {
                r[j++] = shape[i];
            }
        }
        return r;
    }

    /** True if {@code b} equals the trailing dimensions of {@code a} (b broadcasts over a's leading dimensions). */
    public static boolean isSuffix(int[] a, int[] b) {
        if (b.length > a.length) {
            return false;
        }
        for (int i = 0; i < b.length; i++) {
            if (a[a.length - b.length + i] != b[i]) {
                return false;
            }
        }
        return true;
    }

    public static void requireSame(String what, Tensor a, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) {
            throw new ShapeException(what + ": shapes differ: " + a.describe() + " vs " + b.describe());
        }
    }

    public static void requireDType(String what, Tensor t, DType... allowed) {
        for (DType d : allowed) {
            if (t.dtype() == d) {
                return;
            }
        }
        throw new ShapeException(what + ": " + t.describe() + " has dtype " + t.dtype().lower() + ", expected one of "
                + Arrays.toString(allowed).toLowerCase(java.util.Locale.ROOT));
    }

    /**
     * {@code t} as the tensor type of {@code backend}, for op implementations: throws if it is null, belongs to another
     * backend, or has been closed; {@code op} names the caller in the message.
     */
    public static <T extends Tensor> T owned(String op, Tensor t, Backend backend, Class<T> type) {
        java.util.Objects.requireNonNull(t, () -> op + ": tensor argument is null");
        if (!type.isInstance(t) || t.backend() != backend) {
            throw new IllegalArgumentException(op + ": " + t.describe() + " belongs to "
                    + (type.isInstance(t) ? "another " + backend.device().kind().name().toLowerCase(java.util.Locale.ROOT)
                    + " backend" : t.backend().describe()) + ", not to this " + backend.describe());
        }
        if (t.isClosed()) {
            throw new IllegalStateException(op + ": tensor " + t.describe() + " was used after close()");
        }
        return type.cast(t);
    }

    /** Throws naming the op when {@code written} shares storage with any non-null tensor of {@code others}. */
    public static void requireNoSharing(String op, Tensor written, Tensor... others) {
        for (Tensor other : others) {
            if (other != null && written.sharesStorageWith(other)) {
                throw new ShapeException(op + ": " + written.describe() + " must not share storage with "
                        + other.describe());
            }
        }
    }

    /** Host data for an upload must hold exactly the shape's element count. */
    public static void requireHostLength(String op, String name, int length, int[] shape) {
        if (length != numel(shape)) {
            throw new ShapeException(op + " '" + name + "': " + length + " values given for shape " + str(shape)
                    + " (" + numel(shape) + " elements)");
        }
    }

    public static void requireRank(String op, String role, Tensor t, int rank) {
        if (t.rank() != rank) {
            throw new ShapeException(op + ": " + role + " should have rank " + rank + ", got " + t.describe());
        }
    }

    public static void requireShape(String what, Tensor t, int... expected) {
        if (!Arrays.equals(t.shape(), expected)) {
            throw new ShapeException(what + ": " + t.describe() + " should have shape " + str(expected));
        }
    }
}
