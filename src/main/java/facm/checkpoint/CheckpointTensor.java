package facm.checkpoint;

import facm.tensor.Bf16;
import facm.tensor.Shapes;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * One named tensor of a checkpoint: its stored type and shape and a read-only view of its bytes (little-endian,
 * row-major, contiguous), usually a zero-copy slice of a memory-mapped file. The view is valid until the reader that
 * produced it is closed. The {@code to*} methods copy the values onto the heap, converting where that is exact or a
 * plain rounding (F16/BF16/F64 to float, float to bf16, narrower integers to wider ones).
 */
public record CheckpointTensor(String name, CheckpointDType dtype, int[] shape, MemorySegment data) {

    static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfDouble F64_LE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public CheckpointTensor {
        shape = shape.clone();
        long expected = Math.multiplyExact(Shapes.numel(shape), (long) dtype.bytes());
        if (data.byteSize() != expected) {
            throw new IllegalArgumentException("tensor '" + name + "' (" + dtype.safetensorsName() + " "
                    + Shapes.str(shape) + ") needs " + expected + " bytes, got " + data.byteSize());
        }
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    public long numel() {
        return Shapes.numel(shape);
    }

    public long byteSize() {
        return data.byteSize();
    }

    /** "name F32 [1152,32,1,1]" for messages. */
    public String describe() {
        return "'" + name + "' " + dtype.safetensorsName() + " " + Shapes.str(shape);
    }

    /** The same bytes under another name (used when a loader strips key prefixes). */
    public CheckpointTensor renamed(String newName) {
        return new CheckpointTensor(newName, dtype, shape, data);
    }

    /** Values of a floating tensor as floats: F32 as is, F16/BF16 exactly, F64 rounded to nearest. */
    public float[] toFloats() {
        int n = heapLength();
        float[] out = new float[n];
        switch (dtype) {
            case F32 -> MemorySegment.copy(data, F32_LE, 0, out, 0, n);
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Bf16.toFloat(data.getAtIndex(I16_LE, i));
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.float16ToFloat(data.getAtIndex(I16_LE, i));
                }
            }
            case F64 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = (float) data.getAtIndex(F64_LE, i);
                }
            }
            default -> throw notFloating("floats");
        }
        return out;
    }

    /** bf16 bit patterns of a floating tensor: BF16 as is, others rounded to nearest even (as {@link Bf16}). */
    public short[] toBf16Bits() {
        int n = heapLength();
        short[] out = new short[n];
        if (dtype == CheckpointDType.BF16) {
            MemorySegment.copy(data, I16_LE, 0, out, 0, n);
            return out;
        }
        if (!dtype.isFloating()) {
            throw notFloating("bf16");
        }
        for (int i = 0; i < n; i++) {
            out[i] = Bf16.fromFloat(floatAt(i));
        }
        return out;
    }

    /** Values of an integer or bool tensor as ints; I64 values must fit in 32 bits. */
    public int[] toInts() {
        int n = heapLength();
        int[] out = new int[n];
        switch (dtype) {
            case I32 -> MemorySegment.copy(data, I32_LE, 0, out, 0, n);
            case I64 -> {
                for (int i = 0; i < n; i++) {
                    long v = data.getAtIndex(I64_LE, i);
                    if (v != (int) v) {
                        throw new CheckpointException("tensor '" + name + "' element " + i + " = " + v
                                + " does not fit in an int32");
                    }
                    out[i] = (int) v;
                }
            }
            default -> {
                for (int i = 0; i < n; i++) {
                    out[i] = (int) integerAt(i);
                }
            }
        }
        return out;
    }

    /** Values of an integer or bool tensor as longs. */
    public long[] toLongs() {
        int n = heapLength();
        long[] out = new long[n];
        if (dtype == CheckpointDType.I64) {
            MemorySegment.copy(data, I64_LE, 0, out, 0, n);
            return out;
        }
        for (int i = 0; i < n; i++) {
            out[i] = integerAt(i);
        }
        return out;
    }

    /** Element i of a floating tensor as a float. */
    public float floatAt(long i) {
        return switch (dtype) {
            case F32 -> data.getAtIndex(F32_LE, i);
            case BF16 -> Bf16.toFloat(data.getAtIndex(I16_LE, i));
            case F16 -> Float.float16ToFloat(data.getAtIndex(I16_LE, i));
            case F64 -> (float) data.getAtIndex(F64_LE, i);
            default -> throw notFloating("floats");
        };
    }

    /** Element i of an integer or bool tensor. */
    public long integerAt(long i) {
        return switch (dtype) {
            case I64 -> data.getAtIndex(I64_LE, i);
            case I32 -> data.getAtIndex(I32_LE, i);
            case I16 -> data.getAtIndex(I16_LE, i);
            case I8 -> data.get(ValueLayout.JAVA_BYTE, i);
            case U8, BOOL -> data.get(ValueLayout.JAVA_BYTE, i) & 0xFF;
            default -> throw new CheckpointException("tensor " + describe() + " is floating point, not integer");
        };
    }

    private int heapLength() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new CheckpointException("tensor " + describe() + " has " + n
                    + " elements, too many for one Java array; use data() instead");
        }
        return (int) n;
    }

    private CheckpointException notFloating(String what) {
        return new CheckpointException("tensor " + describe() + " is not floating point: cannot read it as " + what);
    }
}
