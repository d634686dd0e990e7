package facm.checkpoint;

import facm.tensor.Bf16;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The little-endian bytes of one tensor to be written, produced chunk by chunk so a writer never holds a second
 * copy of a large checkpoint: {@link #copyTo} fills {@code dst} with bytes [from, from + dst.byteSize()). Writers
 * call it with {@code from} a multiple of 8, so chunks never split an element.
 */
public interface TensorPayload {

    long byteSize();

    void copyTo(long from, MemorySegment dst);

    static TensorPayload of(float[] values) {
        return lazy(values.length * 4L, (from, dst) -> MemorySegment.copy(values, (int) (from / 4), dst,
                CheckpointTensor.F32_LE, 0, (int) (dst.byteSize() / 4)));
    }

    /** bf16 (or f16) raw bit patterns. */
    static TensorPayload ofShorts(short[] bits) {
        return lazy(bits.length * 2L, (from, dst) -> MemorySegment.copy(bits, (int) (from / 2), dst,
                CheckpointTensor.I16_LE, 0, (int) (dst.byteSize() / 2)));
    }

    static TensorPayload of(int[] values) {
        return lazy(values.length * 4L, (from, dst) -> MemorySegment.copy(values, (int) (from / 4), dst,
                CheckpointTensor.I32_LE, 0, (int) (dst.byteSize() / 4)));
    }

    static TensorPayload of(long[] values) {
        return lazy(values.length * 8L, (from, dst) -> MemorySegment.copy(values, (int) (from / 8), dst,
                CheckpointTensor.I64_LE, 0, (int) (dst.byteSize() / 8)));
    }

    /** Raw bytes, already in file order (U8, I8, BOOL, or any type encoded by the caller). */
    static TensorPayload of(byte[] bytes) {
        return lazy(bytes.length, (from, dst) -> MemorySegment.copy(bytes, (int) from, dst,
                ValueLayout.JAVA_BYTE, 0, (int) dst.byteSize()));
    }

    /** Bytes already laid out as the file wants them, e.g. a tensor view of another checkpoint (zero-copy). */
    static TensorPayload of(MemorySegment bytes) {
        return lazy(bytes.byteSize(), (from, dst) -> MemorySegment.copy(bytes, from, dst, 0, dst.byteSize()));
    }

    /**
     * {@code src} converted to floating type {@code target}, element by element: through float (exact for F16, BF16
     * and F32 sources), rounding to nearest even where {@code target} is narrower.
     */
    static TensorPayload cast(CheckpointTensor src, CheckpointDType target) {
        if (src.dtype() == target) {
            return of(src.data());
        }
        if (!src.dtype().isFloating() || !target.isFloating()) {
            throw new CheckpointException("cannot cast tensor " + src.describe() + " to " + target.safetensorsName()
                    + ": only floating types are cast");
        }
        int w = target.bytes();
        return lazy(src.numel() * w, (from, dst) -> {
            long first = from / w;
            long n = dst.byteSize() / w;
            for (long i = 0; i < n; i++) {
                float v = src.floatAt(first + i);
                switch (target) {
                    case F32 -> dst.setAtIndex(CheckpointTensor.F32_LE, i, v);
                    case BF16 -> dst.setAtIndex(CheckpointTensor.I16_LE, i, Bf16.fromFloat(v));
                    case F16 -> dst.setAtIndex(CheckpointTensor.I16_LE, i, Float.floatToFloat16(v));
                    case F64 -> dst.setAtIndex(CheckpointTensor.F64_LE, i, src.dtype() == CheckpointDType.F64
                            ? src.data().getAtIndex(CheckpointTensor.F64_LE, first + i) : v);
                    default -> throw new AssertionError(target);
                }
            }
        });
    }

    /** The chunk-filling half of a payload, for the factories above. */
    @FunctionalInterface
    interface ChunkCopy {
        void copy(long from, MemorySegment dst);
    }

    private static TensorPayload lazy(long size, ChunkCopy copy) {
        return new TensorPayload() {
            @Override
            public long byteSize() {
                return size;
            }

            @Override
            public void copyTo(long from, MemorySegment dst) {
                copy.copy(from, dst);
            }
        };
    }
}
