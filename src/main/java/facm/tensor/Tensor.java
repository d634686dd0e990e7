package facm.tensor;

import java.util.Arrays;

/**
 * A dense, row-major tensor owned by one backend. A tensor either owns its storage (and frees it on
 * {@link #close()}) or is a view made by {@link #reshape(int...)} that shares its parent's storage and frees nothing.
 * Ops live on {@link Backend}; a tensor is only shape, dtype and storage.
 */
public abstract class Tensor implements AutoCloseable {
    private final int[] shape;
    private final DType dtype;
    private final String name;
    private final long numel;

    protected Tensor(String name, DType dtype, int[] shape) {
        this.shape = shape.clone();
        this.dtype = dtype;
        this.name = name;
        this.numel = Shapes.numel(shape);
    }

    public final int[] shape() {
        return shape.clone();
    }

    /** Size of dimension {@code i}; negative values count from the end. */
    public final int dim(int i) {
        return shape[Shapes.axis(i, shape.length)];
    }

    public final int rank() {
        return shape.length;
    }

    public final long numel() {
        return numel;
    }

    public final long bytes() {
        return numel * dtype.bytes();
    }

    public final DType dtype() {
        return dtype;
    }

    public final String name() {
        return name;
    }

    public abstract Backend backend();

    public final Device device() {
        return backend().device();
    }

    /** A view with another shape of the same number of elements, sharing this tensor's storage. */
    public final Tensor reshape(int... newShape) {
        if (Shapes.numel(newShape) != numel) {
            throw new ShapeException("reshape " + describe() + " to " + Shapes.str(newShape) + ": element counts differ");
        }
        return view(name, newShape);
    }

    /** Subclasses return a non-owning tensor over the same storage. */
    protected abstract Tensor view(String viewName, int[] newShape);

    /**
     * True if both tensors read and write the same storage (an owner and its views, or views of one owner). Tensors of
     * different backends never share storage.
     */
    public abstract boolean sharesStorageWith(Tensor other);

    /** True once the storage has been freed (by this tensor or, for a view, by its owner). */
    public abstract boolean isClosed();

    /** Frees the storage if this tensor owns it; idempotent. */
    @Override
    public abstract void close();

    protected final void requireOpen() {
        if (isClosed()) {
            throw new IllegalStateException("tensor " + describe() + " was used after close()");
        }
    }

    /** e.g. {@code "x f32[2,3] cuda:0"}. */
    public final String describe() {
        return (name == null || name.isEmpty() ? "" : name + " ") + dtype.lower() + Shapes.str(shape) + " " + device();
    }

    @Override
    public String toString() {
        return describe();
    }

    public final boolean sameShape(Tensor o) {
        return Arrays.equals(shape, o.shape);
    }
}
