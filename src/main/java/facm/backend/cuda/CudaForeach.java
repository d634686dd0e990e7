package facm.backend.cuda;

import facm.cuda.CudaGraph;
import facm.cuda.CudaStream;
import facm.cuda.DeviceBuffer;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;
import facm.tensor.Shapes;
import facm.tensor.Tensor;
import facm.tensor.TrainingChecks;

import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.F64;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/**
 * The multi-tensor ("foreach") optimizer phases of {@link CudaTrainingOps}: AdamW, the EMA updates, the gradients'
 * sum of squares and their zeroing, each ONE launch (three for the sum) over a list of tensors instead of one per
 * tensor (kernels/adamw.cu, foreach section). Each is bit-identical to its per-tensor kernel launched tensor by tensor
 * in list order.
 *
 * <p>A table ({@link ForeachTable}) is built and uploaded the first time a list is seen, and kept, keyed by the kind
 * of launch and the tensors' addresses and sizes: the weights, gradients, moments and EMAs of a run are allocated once,
 * so every later step (and a captured CUDA graph's replays) reuses it with no host-to-device copy or allocation; a
 * list whose addresses changed (a restored checkpoint) simply gets a new table. The sum of squares keeps its fp64 block
 * partials with its table. A new table cannot be made during a graph capture (it is a host upload): the step that is
 * captured must have run eagerly once, as CapturedStep's first step does. Only past {@link #MAX_TABLES} different
 * lists is the least recently used table freed, so a captured graph (which holds the table's address) stays valid
 * while a run keeps using its handful of lists.
 */
final class CudaForeach implements AutoCloseable {
    /** Threads of the chunked kernels, and elements per block (8 per thread; any value gives the same bits). */
    private static final int THREADS = 256;
    private static final long CHUNK = 8L * THREADS;
    /** Threads of the sum kernels: SUMSQ_THREADS in kernels/adamw.cu, as the per-tensor sumOfSquares launch uses. */
    private static final int SUM_THREADS = 256;
    /** Tables kept (a run uses about five: AdamW, one per EMA, the gradients' sum and zeroing); the oldest goes. */
    private static final int MAX_TABLES = 64;

    private enum Kind { CHUNKED, SUM_OF_SQUARES }

    /** What a table was built for: two lists with the same key get the same table. */
    private record Key(Kind kind, long[] addresses, long[] counts) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && kind == k.kind && Arrays.equals(addresses, k.addresses)
                    && Arrays.equals(counts, k.counts);
        }

        @Override
        public int hashCode() {
            return 31 * (31 * kind.hashCode() + Arrays.hashCode(addresses)) + Arrays.hashCode(counts);
        }
    }

    /** An uploaded table; the sum keeps its partials (one fp64 per block) and totals (one per entry) in {@code sums}. */
    private record Uploaded(ForeachTable layout, CudaTensor words, DeviceBuffer sums) {
        long address() {
            return words.address();
        }

        void close() {
            words.close();
            if (sums != null) {
                sums.close();
            }
        }
    }

    private final CudaBackend backend;
    private final CudaStream stream;
    private final Kernel adamw;
    private final Kernel adamwControlled;
    private final Kernel ema;
    private final Kernel emaControlled;
    private final Kernel fill;
    private final Kernel sumPartial;
    private final Kernel sumTotals;
    private final Kernel sumAccumulate;
    private final Map<Key, Uploaded> tables = new LinkedHashMap<>(16, 0.75f, true);

    CudaForeach(CudaBackend backend, KernelLibrary lib, CudaStream stream) {
        this.backend = backend;
        this.stream = stream;
        adamw = lib.kernel("adamw_foreach_f32", PTR, I32, I64, F32, F32, F32, F32, F32, F64, F64, F32);
        adamwControlled = lib.kernel("adamw_controlled_foreach_f32", PTR, I32, I64, F32, F32, F32, F32, F32, PTR,
                I32, PTR, PTR);
        ema = lib.kernel("ema_foreach_f32", PTR, I32, I64, F32, F32, I32);
        emaControlled = lib.kernel("ema_controlled_foreach_f32", PTR, I32, I64, PTR, I32, PTR, PTR);
        fill = lib.kernel("fill_foreach_b32", PTR, I32, I64, I32);
        sumPartial = lib.kernel("sum_squares_foreach_partial", PTR, I32, PTR);
        sumTotals = lib.kernel("sum_squares_foreach_totals", PTR, I32, PTR, PTR);
        sumAccumulate = lib.kernel("sum_squares_foreach_accumulate", PTR, I32, PTR);
    }

    /** AdamW with host scalars (bias corrections from the host, as the per-tensor op computes them). */
    void adamw(List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs, float lr, float beta1,
               float beta2, float eps, float weightDecay, int step, float gradScale) {
        String op = "adamwForeach";
        Uploaded t = adamwTable(op, params, grads, ms, vs, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        if (t.layout().blocks() == 0) {
            return;
        }
        double bc1 = 1.0 - Math.pow(beta1, step);
        double bc2 = 1.0 - Math.pow(beta2, step);
        adamw.launch(stream, grid(t), 1, 1, THREADS, 1, 1, 0, t.address(), t.layout().entries(), CHUNK, lr, beta1,
                beta2, eps, weightDecay, bc1, bc2, gradScale);
    }

    /** AdamW on the device's scalars (addresses of the checked bias-correction table, counter and control). */
    void adamw(List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs, float lr, float beta1,
               float beta2, float eps, float weightDecay, long biasCorrections, int tableSteps, long counter,
               long control) {
        String op = "adamwForeach (device step)";
        Uploaded t = adamwTable(op, params, grads, ms, vs, lr, beta1, beta2, eps, weightDecay, 1, 1f);
        if (t.layout().blocks() == 0) {
            return;
        }
        adamwControlled.launch(stream, grid(t), 1, 1, THREADS, 1, 1, 0, t.address(), t.layout().entries(), CHUNK,
                lr, beta1, beta2, eps, weightDecay, biasCorrections, tableSteps, counter, control);
    }

    private Uploaded adamwTable(String op, List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs,
                                float lr, float beta1, float beta2, float eps, float weightDecay, int step,
                                float gradScale) {
        int n = sameSize(op, params, grads, ms, vs);
        long[][] addresses = new long[n][];
        long[] counts = new long[n];
        for (int i = 0; i < n; i++) {
            TrainingChecks.adamw(params.get(i), grads.get(i), ms.get(i), vs.get(i), lr, beta1, beta2, eps,
                    weightDecay, step, gradScale);
            addresses[i] = new long[] {f32(op, "param", params.get(i)), f32(op, "grad", grads.get(i)),
                    f32(op, "m", ms.get(i)), f32(op, "v", vs.get(i))};
            counts[i] = params.get(i).numel();
        }
        return table(op, Kind.CHUNKED, addresses, counts);
    }

    /** The host-scalar EMA update: averages ← θ when decay is 0, else axpby((float) decay, avg, (float) (1 − decay), θ). */
    void emaUpdate(List<Tensor> averages, List<Tensor> thetas, double decay) {
        Uploaded t = emaTable("emaUpdateForeach", averages, thetas);
        if (t.layout().blocks() == 0) {
            return;
        }
        ema.launch(stream, grid(t), 1, 1, THREADS, 1, 1, 0, t.address(), t.layout().entries(), CHUNK, (float) decay,
                (float) (1.0 - decay), decay == 0 ? 1 : 0);
    }

    /** The EMA update on the device's scalars (addresses of the checked decay table, counter and control). */
    void emaUpdate(List<Tensor> averages, List<Tensor> thetas, long decays, int tableSteps, long counter,
                   long control) {
        Uploaded t = emaTable("emaUpdateForeach (device step)", averages, thetas);
        if (t.layout().blocks() == 0) {
            return;
        }
        emaControlled.launch(stream, grid(t), 1, 1, THREADS, 1, 1, 0, t.address(), t.layout().entries(), CHUNK,
                decays, tableSteps, counter, control);
    }

    private Uploaded emaTable(String op, List<Tensor> averages, List<Tensor> thetas) {
        int n = sameSize(op, averages, thetas);
        long[][] addresses = new long[n][];
        long[] counts = new long[n];
        for (int i = 0; i < n; i++) {
            Shapes.requireSame(op + ": theta vs average", thetas.get(i), averages.get(i));
            addresses[i] = new long[] {f32(op, "average", averages.get(i)), f32(op, "theta", thetas.get(i))};
            counts[i] = averages.get(i).numel();
        }
        return table(op, Kind.CHUNKED, addresses, counts);
    }

    /** Every tensor (F32) filled with 0. */
    void zero(List<Tensor> tensors) {
        String op = "zeroForeach";
        Objects.requireNonNull(tensors, () -> op + ": tensors is null");
        long[][] addresses = new long[tensors.size()][];
        long[] counts = new long[tensors.size()];
        for (int i = 0; i < counts.length; i++) {
            addresses[i] = new long[] {f32(op, "tensor " + i, tensors.get(i))};
            counts[i] = tensors.get(i).numel();
        }
        Uploaded t = table(op, Kind.CHUNKED, addresses, counts);
        if (t.layout().blocks() > 0) {
            fill.launch(stream, grid(t), 1, 1, THREADS, 1, 1, 0, t.address(), t.layout().entries(), CHUNK,
                    Float.floatToRawIntBits(0f));
        }
    }

    /** acc[0] += Σ over the tensors of Σ x², as the per-tensor sumOfSquares calls in list order (accAddress: F32 [1]). */
    void sumOfSquares(List<Tensor> xs, Tensor acc, long accAddress) {
        String op = "sumOfSquaresForeach";
        Objects.requireNonNull(xs, () -> op + ": tensors is null");
        long[][] addresses = new long[xs.size()][];
        long[] counts = new long[xs.size()];
        for (int i = 0; i < counts.length; i++) {
            TrainingChecks.sumOfSquares(xs.get(i), acc);
            addresses[i] = new long[] {f32(op, "x " + i, xs.get(i))};
            counts[i] = xs.get(i).numel();
        }
        Uploaded t = table(op, Kind.SUM_OF_SQUARES, addresses, counts);
        int entries = t.layout().entries();
        if (entries == 0) {
            return;
        }
        long partials = t.sums().address();
        long totals = partials + t.layout().blocks() * Double.BYTES;
        sumPartial.launch(stream, grid(t), 1, 1, SUM_THREADS, 1, 1, 0, t.address(), entries, partials);
        sumTotals.launch(stream, entries, 1, 1, SUM_THREADS, 1, 1, 0, t.address(), entries, partials, totals);
        sumAccumulate.launch(stream, 1, 1, 1, 32, 1, 1, 0, totals, entries, accAddress);
    }

    /** The table for these tensors: the kept one, or a new one built and uploaded (not during a graph capture). */
    private Uploaded table(String op, Kind kind, long[][] addresses, long[] counts) {
        Key key = new Key(kind, flatten(addresses), counts);
        Uploaded kept = tables.get(key);
        if (kept != null) {
            return kept;
        }
        CudaGraph.requireNotCapturing(op + ": a new foreach table (host upload; the first step must run eagerly)");
        ForeachTable layout = ForeachTable.build(op, addresses, counts, kind == Kind.SUM_OF_SQUARES
                ? CudaTrainingOps::sumBlocks : ForeachTable.chunks(CHUNK));
        int[] words = layout.int32Words();
        CudaTensor uploaded = backend.upload(op + " table", words, words.length);
        DeviceBuffer sums = null;
        if (kind == Kind.SUM_OF_SQUARES && layout.entries() > 0) {
            try {
                long bytes = Math.multiplyExact(layout.blocks() + layout.entries(), (long) Double.BYTES);
                sums = backend.cudaDevice().arena().allocate(bytes, op + " partial sums");
            } catch (RuntimeException e) {
                uploaded.close();
                throw e;
            }
        }
        Uploaded made = new Uploaded(layout, uploaded, sums);
        tables.put(key, made);
        evictOldest();
        return made;
    }

    /** Frees the least recently used tables past {@link #MAX_TABLES} (stream-ordered frees: queued work is safe). */
    private void evictOldest() {
        Iterator<Uploaded> it = tables.values().iterator();
        while (tables.size() > MAX_TABLES && it.hasNext()) {
            Uploaded old = it.next();
            it.remove();
            old.close();
        }
    }

    private static long[] flatten(long[][] addresses) {
        int per = addresses.length == 0 ? 0 : addresses[0].length;
        long[] flat = new long[addresses.length * per];
        for (int i = 0; i < addresses.length; i++) {
            System.arraycopy(addresses[i], 0, flat, i * per, per);
        }
        return flat;
    }

    private static int grid(Uploaded t) {
        return Math.toIntExact(t.layout().blocks());
    }

    private long f32(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        return backend.requireF32(op + " " + role, t).address();
    }

    @SafeVarargs
    private static int sameSize(String op, List<Tensor>... lists) {
        for (List<Tensor> l : lists) {
            Objects.requireNonNull(l, () -> op + ": a tensor list is null");
            if (l.size() != lists[0].size()) {
                throw new IllegalArgumentException(op + ": tensor lists of different lengths "
                        + Arrays.stream(lists).map(List::size).toList());
            }
        }
        return lists[0].size();
    }

    /** Frees every table; the next call builds them again. */
    @Override
    public void close() {
        tables.values().forEach(Uploaded::close);
        tables.clear();
    }
}
