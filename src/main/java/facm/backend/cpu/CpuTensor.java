package facm.backend.cpu;

import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;

/**
 * A tensor in host memory: a {@code float[]} for F32, a {@code short[]} of bf16 bit patterns for BF16, an
 * {@code int[]} for I32. The array holds exactly {@link #numel()} elements in row-major order starting at index 0;
 * there are no offsets or strides. A view made by {@link #reshape(int...)} shares the array; closing the owner drops
 * the array for the owner and all its views, closing a view does nothing.
 *
 * <p>The accessors {@link #f32()}, {@link #bf16()} and {@link #i32()} hand out the live storage so that CPU ops
 * (here and in later op packages) can read and write it without copies. They check the dtype and that the tensor is
 * still open; a caller must not keep the array beyond the tensor's lifetime.
 */
public final class CpuTensor extends Tensor {

    /** The array shared by an owner and its views; {@code array == null} once the owner is closed. */
    private static final class Storage {
        private Object array;

        Storage(Object array) {
            this.array = array;
        }
    }

    private final CpuBackend backend;
    private final Storage storage;
    private final boolean owner;

    private CpuTensor(CpuBackend backend, String name, DType dtype, int[] shape, Storage storage, boolean owner) {
        super(name, dtype, shape);
        this.backend = backend;
        this.storage = storage;
        this.owner = owner;
    }

    /** A new owning tensor over {@code array}, which must match the dtype and hold exactly numel elements. */
    static CpuTensor wrap(CpuBackend backend, String name, DType dtype, int[] shape, Object array) {
        CpuTensor t = new CpuTensor(backend, name, dtype, shape, new Storage(array), true);
        int length = switch (array) {
            case float[] f when dtype == DType.F32 -> f.length;
            case short[] s when dtype == DType.BF16 -> s.length;
            case int[] i when dtype == DType.I32 -> i.length;
            default -> throw new IllegalArgumentException(
                    "storage " + array.getClass().getSimpleName() + " does not fit " + t.describe());
        };
        if (length != t.numel()) {
            throw new ShapeException(t.describe() + ": storage holds " + length + " elements, shape needs " + t.numel());
        }
        return t;
    }

    /** A zero-filled owning tensor. */
    static CpuTensor allocate(CpuBackend backend, String name, DType dtype, int[] shape) {
        long n = facm.tensor.Shapes.numel(shape);
        if (n > Integer.MAX_VALUE - 8) {
            throw new ShapeException("empty " + name + " " + dtype.lower() + facm.tensor.Shapes.str(shape)
                    + ": " + n + " elements exceed the cpu backend's limit of one Java array (2^31 - 9)");
        }
        int len = (int) n;
        Object array = switch (dtype) {
            case F32 -> new float[len];
            case BF16 -> new short[len];
            case I32 -> new int[len];
        };
        return wrap(backend, name, dtype, shape, array);
    }

    @Override
    public CpuBackend backend() {
        return backend;
    }

    @Override
    protected Tensor view(String viewName, int[] newShape) {
        requireOpen();
        return new CpuTensor(backend, viewName, dtype(), newShape, storage, false);
    }

    @Override
    public boolean isClosed() {
        return storage.array == null;
    }

    /** Drops the array if this tensor owns it (its views become closed too); a view's close does nothing. */
    @Override
    public void close() {
        if (owner) {
            storage.array = null;
        }
    }

    /** True if this tensor owns its storage, false for a view. */
    public boolean isOwner() {
        return owner;
    }

    /** True if both tensors read and write the same array (an owner and its views, or views of one owner). */
    @Override
    public boolean sharesStorageWith(Tensor other) {
        return other instanceof CpuTensor c && storage == c.storage;
    }

    /** The live F32 storage (numel elements, row-major). Throws if the dtype is not F32 or the tensor is closed. */
    public float[] f32() {
        return (float[]) array(DType.F32);
    }

    /** The live BF16 storage as raw bit patterns (see {@link facm.tensor.Bf16}). */
    public short[] bf16() {
        return (short[]) array(DType.BF16);
    }

    /** The live I32 storage. */
    public int[] i32() {
        return (int[]) array(DType.I32);
    }

    /** The element count as an int (always fits: storage is one Java array). */
    public int size() {
        return (int) numel();
    }

    private Object array(DType wanted) {
        Object a = storage.array;
        if (a == null) {
            requireOpen();
        }
        if (dtype() != wanted) {
            throw new ShapeException(describe() + " has dtype " + dtype().lower() + ", its " + wanted.lower()
                    + " storage was asked for");
        }
        return a;
    }
}
