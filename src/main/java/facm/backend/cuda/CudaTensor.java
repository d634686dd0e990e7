package facm.backend.cuda;

import facm.cuda.DeviceBuffer;
import facm.tensor.DType;
import facm.tensor.Tensor;

/**
 * A tensor in device memory: one {@link DeviceBuffer} from the device's arena holding {@link #numel()} elements,
 * row-major from offset 0 (no strides). A view made by {@link #reshape(int...)} shares the buffer; closing the owner
 * returns the buffer to the arena and closes every view with it, closing a view does nothing.
 *
 * <p>Closing is stream-ordered: the buffer may be handed out again right away, which is safe because every op that
 * reads it was already queued on the device's main stream (see {@link DeviceBuffer}).
 */
public final class CudaTensor extends Tensor {

    /** The buffer shared by an owner and its views; {@code buffer == null} once the owner is closed. */
    private static final class Storage {
        private DeviceBuffer buffer;

        Storage(DeviceBuffer buffer) {
            this.buffer = buffer;
        }
    }

    private final CudaBackend backend;
    private final Storage storage;
    private final boolean owner;

    private CudaTensor(CudaBackend backend, String name, DType dtype, int[] shape, Storage storage, boolean owner) {
        super(name, dtype, shape);
        this.backend = backend;
        this.storage = storage;
        this.owner = owner;
    }

    /** A new owning tensor over {@code buffer}, which must hold at least numel elements of {@code dtype}. */
    static CudaTensor wrap(CudaBackend backend, String name, DType dtype, int[] shape, DeviceBuffer buffer) {
        CudaTensor t = new CudaTensor(backend, name, dtype, shape, new Storage(buffer), true);
        if (buffer.bytes() < t.bytes()) {
            throw new IllegalArgumentException(t.describe() + ": buffer '" + buffer.what() + "' holds " + buffer.bytes()
                    + " bytes, the tensor needs " + t.bytes());
        }
        return t;
    }

    @Override
    public CudaBackend backend() {
        return backend;
    }

    @Override
    protected Tensor view(String viewName, int[] newShape) {
        requireOpen();
        return new CudaTensor(backend, viewName, dtype(), newShape, storage, false);
    }

    @Override
    public boolean isClosed() {
        return storage.buffer == null;
    }

    /** Returns the buffer to the arena if this tensor owns it (its views become closed too). Idempotent. */
    @Override
    public void close() {
        if (owner && storage.buffer != null) {
            DeviceBuffer b = storage.buffer;
            storage.buffer = null;
            b.close();
        }
    }

    /** True if this tensor owns its buffer, false for a view. */
    public boolean isOwner() {
        return owner;
    }

    /** True if both tensors use the same device buffer (an owner and its views, or views of one owner). */
    @Override
    public boolean sharesStorageWith(Tensor other) {
        return other instanceof CudaTensor c && storage == c.storage;
    }

    /** The device buffer (throws if closed). For launchers and FFM calls; do not keep it beyond the tensor's life. */
    public DeviceBuffer buffer() {
        DeviceBuffer b = storage.buffer;
        if (b == null) {
            requireOpen();
        }
        return b;
    }

    /** The raw device address of element 0, for kernel arguments. */
    public long address() {
        return buffer().address();
    }
}
