package facm.checkpoint;

import facm.tensor.DType;

import java.util.Locale;

/**
 * Element types a checkpoint file may store: the safetensors set and the storages torch.save writes for them. Wider
 * than {@link DType}, which is what the engine computes in; {@link CheckpointTensor} converts between the two.
 */
public enum CheckpointDType {
    F64(8, "F64", "DoubleStorage", "fp64"),
    F32(4, "F32", "FloatStorage", "fp32"),
    F16(2, "F16", "HalfStorage", "fp16"),
    BF16(2, "BF16", "BFloat16Storage", "bf16"),
    I64(8, "I64", "LongStorage", "int64"),
    I32(4, "I32", "IntStorage", "int32"),
    I16(2, "I16", "ShortStorage", "int16"),
    I8(1, "I8", "CharStorage", "int8"),
    U8(1, "U8", "ByteStorage", "uint8"),
    BOOL(1, "BOOL", "BoolStorage", "bool");

    private final int bytes;
    private final String safetensorsName;
    private final String torchStorage;
    private final String shortName;

    CheckpointDType(int bytes, String safetensorsName, String torchStorage, String shortName) {
        this.bytes = bytes;
        this.safetensorsName = safetensorsName;
        this.torchStorage = torchStorage;
        this.shortName = shortName;
    }

    public int bytes() {
        return bytes;
    }

    /** The name in a safetensors header ("F32", "BF16", ...). */
    public String safetensorsName() {
        return safetensorsName;
    }

    /** The storage class torch.save names for this type, without the "torch." module ("FloatStorage"). */
    public String torchStorage() {
        return torchStorage;
    }

    /** Short human name for messages ("fp32", "bf16", "int64"). */
    public String shortName() {
        return shortName;
    }

    public boolean isFloating() {
        return this == F64 || this == F32 || this == F16 || this == BF16;
    }

    /** The type for a safetensors header name, or null when the name is not one we read. */
    public static CheckpointDType fromSafetensorsName(String name) {
        for (CheckpointDType t : values()) {
            if (t.safetensorsName.equals(name)) {
                return t;
            }
        }
        return null;
    }

    /** The type for a torch storage class name such as "FloatStorage", or null. */
    public static CheckpointDType fromTorchStorage(String className) {
        for (CheckpointDType t : values()) {
            if (t.torchStorage.equals(className)) {
                return t;
            }
        }
        return null;
    }

    /** The engine dtype this stores, or null where the engine has none (F64, F16, I64, ...). */
    public DType engineType() {
        return switch (this) {
            case F32 -> DType.F32;
            case BF16 -> DType.BF16;
            case I32 -> DType.I32;
            default -> null;
        };
    }

    public static CheckpointDType of(DType t) {
        return switch (t) {
            case F32 -> F32;
            case BF16 -> BF16;
            case I32 -> I32;
        };
    }

    /** Parses a --dtype style name: "f32", "fp32", "F32", "bf16", ... */
    public static CheckpointDType parse(String s) {
        String u = s.trim().toUpperCase(Locale.ROOT);
        for (CheckpointDType t : values()) {
            if (t.safetensorsName.equals(u) || t.shortName.toUpperCase(Locale.ROOT).equals(u)) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown dtype '" + s + "' (expected one of f64, f32, f16, bf16, i64, "
                + "i32, i16, i8, u8, bool)");
    }
}
