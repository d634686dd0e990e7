package facm.training;

import facm.tensor.Backend;
import facm.tensor.Tensor;

/**
 * fp64 constants in device memory for the device-step forms of {@link facm.tensor.TrainingOps} (AdamW's bias
 * corrections, the EMAs' decays): the tensor dtypes have no F64, so each value is a pair of I32 words holding its
 * bits, low word first (the little-endian layout of a {@code double[]} that the kernels read). Filled once on the host
 * with the expressions the host forms use, so the device reads the very values the host would compute.
 */
final class Fp64Table {
    private Fp64Table() {
    }

    /** An I32 tensor {@code [2·values.length]} holding {@code values} as word pairs. */
    static Tensor upload(Backend be, String name, double[] values) {
        int[] words = new int[Math.multiplyExact(2, values.length)];
        for (int i = 0; i < values.length; i++) {
            long bits = Double.doubleToRawLongBits(values[i]);
            words[2 * i] = (int) bits;
            words[2 * i + 1] = (int) (bits >>> 32);
        }
        return be.upload(name, words, words.length);
    }
}
