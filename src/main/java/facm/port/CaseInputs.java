package facm.port;

import facm.tensor.Backend;
import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Makes the tensors of one family case on one backend. The data come from a generator seeded by the family, so the
 * CPU and the CUDA run of the same case see bit-identical inputs as long as the case asks for them in the same order
 * (it does: it is the same code). Every tensor made here is counted in the case's bytes moved and closed with it.
 */
public final class CaseInputs implements AutoCloseable {
    private final Backend backend;
    private final DType activations;
    private final SplittableRandom random;
    private final List<Tensor> tensors = new ArrayList<>();

    CaseInputs(Backend backend, DType activations, long seed) {
        this.backend = backend;
        this.activations = activations;
        this.random = new SplittableRandom(seed);
    }

    public Backend backend() {
        return backend;
    }

    /** The dtype of the case's activations (F32, or BF16 for the bf16 variant of a family). */
    public DType dtype() {
        return activations;
    }

    /** Values uniform in [lo, hi), never exactly zero, as an F32 tensor. */
    public Tensor f32(String name, float lo, float hi, int... shape) {
        return track(backend.upload(name, values(lo, hi, shape), shape));
    }

    /** Values uniform in [lo, hi) in the case's activation dtype (BF16: the values rounded to bf16 first). */
    public Tensor act(String name, float lo, float hi, int... shape) {
        return typed(activations, name, lo, hi, shape);
    }

    /** Values uniform in [lo, hi) as {@code dtype}. */
    public Tensor typed(DType dtype, String name, float lo, float hi, int... shape) {
        float[] v = values(lo, hi, shape);
        if (dtype == DType.BF16) {
            short[] bits = new short[v.length];
            for (int i = 0; i < v.length; i++) {
                bits[i] = Bf16.fromFloat(v[i]);
            }
            return track(backend.uploadBf16(name, bits, shape));
        }
        return track(backend.upload(name, v, shape));
    }

    /** Integers uniform in [0, bound) (I32). */
    public Tensor ints(String name, int bound, int... shape) {
        int[] v = new int[(int) Shapes.numel(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = random.nextInt(bound);
        }
        return track(backend.upload(name, v, shape));
    }

    /** An output of the case's activation dtype, filled with NaN so an element a kernel skips cannot pass. */
    public Tensor out(String name, int... shape) {
        return out(activations, name, shape);
    }

    /** An output of {@code dtype}, NaN-filled (I32 outputs are not used by any family). */
    public Tensor out(DType dtype, String name, int... shape) {
        Tensor t = track(backend.empty(name, dtype, shape));
        backend.fill(t, Float.NaN);
        return t;
    }

    /** An F32 accumulator (gradients of parameters accumulate: they start from random values, not NaN). */
    public Tensor accumulator(String name, int... shape) {
        return f32(name, -0.5f, 0.5f, shape);
    }

    /** Bytes of every tensor of the case: inputs read once plus outputs written once, the bandwidth-bound traffic. */
    long bytesTouched() {
        long b = 0;
        for (Tensor t : tensors) {
            b += t.bytes();
        }
        return b;
    }

    private float[] values(float lo, float hi, int[] shape) {
        float[] v = new float[(int) Shapes.numel(shape)];
        for (int i = 0; i < v.length; i++) {
            float x;
            do {
                x = (float) (lo + (hi - lo) * random.nextDouble());
            } while (x == 0f);
            v[i] = x;
        }
        return v;
    }

    private Tensor track(Tensor t) {
        tensors.add(t);
        return t;
    }

    @Override
    public void close() {
        for (Tensor t : tensors) {
            if (!t.isClosed()) {
                t.close();
            }
        }
        tensors.clear();
    }
}
