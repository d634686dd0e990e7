package facm.backend.cuda;

import facm.cuda.CudaDevice;
import facm.cuda.CudaGraph;
import facm.cuda.DeviceArena;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertUlps;
import static facm.backend.cuda.GpuCpuPair.values;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The foreach (multi-tensor) forms of CudaTrainingOps (kernels/adamw.cu, CudaForeach): one launch over a list of
 * tensors must give the very bits of the per-tensor GPU op applied tensor by tensor (AdamW, the EMA updates, the
 * zeroing, and the sum of squares, whose block partials and finishing order must be kept), and match the CPU (AdamW
 * and the EMA bit for bit, the sum within the per-tensor op's ulps). Sizes straddle the chunk (2048) and the sum's
 * block (2048 per block, 1024 blocks at most), include an empty tensor, and XL/1 shapes.
 */
@Tag("gpu")
class CudaForeachTest extends GpuCpuPairTestBase {
    private static final int[] SIZES = {1, 7, 0, 1000, 2048, 2049, 65537, 1152, 1152 * 1152, 3072 * 1152 + 5,
            6 * 1152, 2 * 1024 * 2048 + 3};
    private TrainingOps gpu;
    private TrainingOps cpu;

    @Override
    void opened() {
        gpu = p.gpu.training();
        cpu = p.cpu.training();
    }

    @Override
    void closing() {
        ((CudaTrainingOps) p.gpu.training()).close();
    }

    /** One tensor per size, the same values on both backends. */
    private List<GpuCpuPair.Both> set(String name, long seed, float lo, float hi) {
        List<GpuCpuPair.Both> out = new ArrayList<>();
        for (int i = 0; i < SIZES.length; i++) {
            out.add(p.upload(name + i, values(seed + i, SIZES[i], lo, hi), SIZES[i]));
        }
        return out;
    }

    private static List<Tensor> gpuOf(List<GpuCpuPair.Both> set) {
        return set.stream().map(GpuCpuPair.Both::gpu).toList();
    }

    private static List<Tensor> cpuOf(List<GpuCpuPair.Both> set) {
        return set.stream().map(GpuCpuPair.Both::cpu).toList();
    }

    private static void assertSetsBitEqual(String what, List<Tensor> expected, List<Tensor> actual) {
        for (int i = 0; i < expected.size(); i++) {
            float[] e = expected.get(i).backend().download(expected.get(i));
            float[] a = actual.get(i).backend().download(actual.get(i));
            assertBitEqual(what + " tensor " + i + " (n " + SIZES[i] + ")", e, a);
        }
    }

    /** AdamW's updated state: parameters, first and second moments. */
    private record Moments(List<GpuCpuPair.Both> params, List<GpuCpuPair.Both> ms, List<GpuCpuPair.Both> vs) {
    }

    /** The same values for the same seed, so two of them start equal. */
    private Moments moments(long seed) {
        return new Moments(set("p", seed, -1f, 1f), set("m", seed + 100, -0.1f, 0.1f),
                set("v", seed + 200, 1e-6f, 1e-2f));
    }

    /** An fp64 table as the I32 word pairs the device-step forms read (facm.training.Fp64Table's layout). */
    private Tensor fp64Table(double... values) {
        int[] words = new int[2 * values.length];
        for (int i = 0; i < values.length; i++) {
            long bits = Double.doubleToRawLongBits(values[i]);
            words[2 * i] = (int) bits;
            words[2 * i + 1] = (int) (bits >>> 32);
        }
        return p.upload("table", words, words.length).gpu();
    }

    @Test
    void adamwForeachIsBitIdenticalToPerTensorAndCpu() {
        var grads = set("g", 200, -1f, 1f);
        Moments foreach = moments(100), perTensor = moments(100);
        for (int step = 1; step <= 3; step++) {
            float scale = step == 2 ? 0.37f : 1f;
            gpu.adamwForeach(gpuOf(foreach.params()), gpuOf(grads), gpuOf(foreach.ms()), gpuOf(foreach.vs()), 1e-3f,
                    0.9f, 0.999f, 1e-8f, 0.01f, step, scale);
            cpu.adamwForeach(cpuOf(foreach.params()), cpuOf(grads), cpuOf(foreach.ms()), cpuOf(foreach.vs()), 1e-3f,
                    0.9f, 0.999f, 1e-8f, 0.01f, step, scale);
            for (int i = 0; i < SIZES.length; i++) {
                gpu.adamw(perTensor.params().get(i).gpu(), grads.get(i).gpu(), perTensor.ms().get(i).gpu(),
                        perTensor.vs().get(i).gpu(), 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step, scale);
            }
        }
        assertGpuStatesBitEqual("adamwForeach vs per tensor", perTensor, foreach);
        assertSetsBitEqual("adamwForeach param vs CPU", cpuOf(foreach.params()), gpuOf(foreach.params()));
        assertSetsBitEqual("adamwForeach m vs CPU", cpuOf(foreach.ms()), gpuOf(foreach.ms()));
        assertSetsBitEqual("adamwForeach v vs CPU", cpuOf(foreach.vs()), gpuOf(foreach.vs()));
    }

    @Test
    void deviceStepAdamwForeachIsBitIdenticalToPerTensorAndHonoursSkip() {
        var grads = set("g", 210, -1f, 1f);
        Moments foreach = moments(110), perTensor = moments(110);
        Tensor bias = fp64Table(0, 0, 1 - Math.pow(0.9f, 1), 1 - Math.pow(0.999f, 1), 1 - Math.pow(0.9f, 2),
                1 - Math.pow(0.999f, 2));
        Tensor counter = p.upload("counter", new int[] {1}, 1).gpu();
        Tensor control = p.upload("control", new float[] {0.37f, 0f}, TrainingOps.CONTROL_SIZE).gpu();
        Runnable foreachStep = () -> gpu.adamwForeach(gpuOf(foreach.params()), gpuOf(grads), gpuOf(foreach.ms()),
                gpuOf(foreach.vs()), 1e-4f, 0.9f, 0.999f, 1e-8f, 0f, bias, counter, control);
        foreachStep.run();
        for (int i = 0; i < SIZES.length; i++) {
            gpu.adamw(perTensor.params().get(i).gpu(), grads.get(i).gpu(), perTensor.ms().get(i).gpu(),
                    perTensor.vs().get(i).gpu(), 1e-4f, 0.9f, 0.999f, 1e-8f, 0f, bias, counter, control);
        }
        assertGpuStatesBitEqual("device adamwForeach vs per tensor", perTensor, foreach);
        p.gpu.copy(p.upload("skip", new float[] {0.37f, 1f}, 2).gpu(), control);
        foreachStep.run();
        assertGpuStatesBitEqual("device adamwForeach skipped", perTensor, foreach);
    }

    private static void assertGpuStatesBitEqual(String what, Moments expected, Moments actual) {
        assertSetsBitEqual(what + ": param", gpuOf(expected.params()), gpuOf(actual.params()));
        assertSetsBitEqual(what + ": m", gpuOf(expected.ms()), gpuOf(actual.ms()));
        assertSetsBitEqual(what + ": v", gpuOf(expected.vs()), gpuOf(actual.vs()));
    }

    @Test
    void emaForeachIsBitIdenticalToPerTensorAndCpu() {
        var theta = set("theta", 500, -1f, 1f);
        for (double decay : new double[] {0.0, 0.9999, 0.8312}) {
            var avg = set("avg", 600, -1f, 1f);
            var avg2 = set("avg", 600, -1f, 1f);
            if (decay == 0) {
                gpuOf(avg).forEach(t -> p.gpu.fill(t, Float.NaN)); // a copy must overwrite every element
            }
            gpu.emaUpdateForeach(gpuOf(avg), gpuOf(theta), decay);
            cpu.emaUpdateForeach(cpuOf(avg2), cpuOf(theta), decay);
            for (int i = 0; i < SIZES.length; i++) {
                Tensor a = avg2.get(i).gpu(), t = theta.get(i).gpu();
                if (decay == 0) {
                    p.gpu.copy(t, a);
                } else {
                    p.gpu.axpby((float) decay, a, (float) (1.0 - decay), t, a);
                }
            }
            assertSetsBitEqual("emaUpdateForeach decay " + decay + " vs per tensor", gpuOf(avg2), gpuOf(avg));
            assertSetsBitEqual("emaUpdateForeach decay " + decay + " vs CPU", cpuOf(avg2), gpuOf(avg));
        }
    }

    @Test
    void deviceStepEmaForeachIsBitIdenticalToPerTensor() {
        var theta = set("theta", 510, -1f, 1f);
        var avg = set("avg", 610, -1f, 1f);
        var avg2 = set("avg", 610, -1f, 1f);
        gpuOf(avg).forEach(t -> p.gpu.fill(t, Float.NaN));
        Tensor decays = fp64Table(0, 0, 0.8312, 0.9999);
        Tensor counter = p.upload("counter", new int[] {0}, 1).gpu();
        Tensor control = p.upload("control", new float[] {1f, 0f}, TrainingOps.CONTROL_SIZE).gpu();
        for (int k = 0; k < 3; k++) {
            gpu.emaUpdateForeach(gpuOf(avg), gpuOf(theta), decays, counter, control);
            for (int i = 0; i < SIZES.length; i++) {
                gpu.emaUpdate(avg2.get(i).gpu(), theta.get(i).gpu(), decays, counter, control);
            }
            assertSetsBitEqual("device emaUpdateForeach update " + (k + 1), gpuOf(avg2), gpuOf(avg));
            gpu.advanceCounter(counter, control);
            theta.forEach(t -> p.gpu.affine(t.gpu(), 0.5f, 0.25f, t.gpu()));
        }
    }

    @Test
    void zeroForeachOverwritesEveryElement() {
        var xs = set("x", 700, -1f, 1f);
        gpuOf(xs).forEach(t -> p.gpu.fill(t, Float.NaN));
        gpu.zeroForeach(gpuOf(xs));
        for (int i = 0; i < SIZES.length; i++) {
            assertBitEqual("zeroForeach tensor " + i, new float[SIZES[i]], p.gpu.download(xs.get(i).gpu()));
        }
    }

    @Test
    void sumOfSquaresForeachIsBitIdenticalToPerTensorAndCloseToCpu() {
        var xs = set("x", 800, -3f, 3f);
        var acc = p.upload("acc", new float[] {0.75f}, 1);
        var perTensor = p.upload("acc2", new float[] {0.75f}, 1);
        for (int round = 0; round < 2; round++) {
            gpu.sumOfSquaresForeach(gpuOf(xs), acc.gpu());
            cpu.sumOfSquaresForeach(cpuOf(xs), acc.cpu());
            for (var x : xs) {
                gpu.sumOfSquares(x.gpu(), perTensor.gpu());
            }
            assertBitEqual("sumOfSquaresForeach vs per tensor, round " + round, p.gpu.download(perTensor.gpu()),
                    p.gpu.download(acc.gpu()));
            // Each per-tensor accumulation is within 1 ulp of the CPU's; the chain of them within one per tensor.
            assertUlps("sumOfSquaresForeach vs CPU, round " + round, p.cpu.download(acc.cpu()),
                    p.gpu.download(acc.gpu()), 2 * SIZES.length * (round + 1), 0f);
        }
        // Another list (a new table), then the first again (the kept table): still the per-tensor bits.
        var ys = set("y", 900, -2f, 2f);
        gpu.sumOfSquaresForeach(gpuOf(ys).subList(3, 9), acc.gpu());
        gpu.sumOfSquaresForeach(gpuOf(xs), acc.gpu());
        for (var y : ys.subList(3, 9)) {
            gpu.sumOfSquares(y.gpu(), perTensor.gpu());
        }
        for (var x : xs) {
            gpu.sumOfSquares(x.gpu(), perTensor.gpu());
        }
        assertBitEqual("sumOfSquaresForeach over two lists", p.gpu.download(perTensor.gpu()),
                p.gpu.download(acc.gpu()));
    }

    @Test
    void foreachFormsReplayInACudaGraph() {
        var grads = set("g", 1000, -1f, 1f);
        Moments graph = moments(1100), eager = moments(1100);
        var avg = set("avg", 1400, -1f, 1f);
        Tensor bias = fp64Table(0, 0, 0.1, 0.001, 0.19, 0.002, 0.271, 0.003);
        Tensor decays = fp64Table(0, 0, 0.5, 0.9);
        Tensor counter = p.upload("counter", new int[] {0}, 1).gpu();
        Tensor control = p.upload("control", new float[] {0.5f, 0f}, TrainingOps.CONTROL_SIZE).gpu();
        Tensor acc = p.poisoned("acc", DType.F32, 1).gpu();
        Runnable step = deviceStep(grads, graph, avg, bias, decays, counter, control, acc);
        // Eager reference on copies of the same state: three steps.
        var eagerAvg = set("avg", 1400, -1f, 1f);
        Tensor eagerCounter = p.upload("counter", new int[] {0}, 1).gpu();
        Tensor eagerAcc = p.poisoned("acc", DType.F32, 1).gpu();
        Runnable eagerStep = deviceStep(grads, eager, eagerAvg, bias, decays, eagerCounter, control, eagerAcc);
        for (int s = 0; s < 3; s++) {
            eagerStep.run();
        }
        // The same three steps: one eager (builds the tables), then a captured graph replayed twice.
        step.run();
        CudaDevice device = p.gpu.cudaDevice();
        DeviceArena arena = device.arena();
        try (CudaGraph g = CudaGraph.capture("foreach step", device.stream(), arena.newPool("foreach step"), step)) {
            g.launch();
            g.launch();
            device.stream().synchronize();
        }
        assertBitEqual("graph sum of squares", p.gpu.download(eagerAcc), p.gpu.download(acc));
        assertGpuStatesBitEqual("graph adamw", eager, graph);
        assertSetsBitEqual("graph ema", gpuOf(eagerAvg), gpuOf(avg));
        assertEquals(3, p.gpu.downloadInts(counter)[0]);
    }

    /** The optimizer tail of a captured training step, all in foreach forms on the device's scalars. */
    private Runnable deviceStep(List<GpuCpuPair.Both> grads, Moments state, List<GpuCpuPair.Both> avg, Tensor bias,
                                Tensor decays, Tensor counter, Tensor control, Tensor acc) {
        return () -> {
            p.gpu.fill(acc, 0f);
            gpu.sumOfSquaresForeach(gpuOf(grads), acc);
            gpu.adamwForeach(gpuOf(state.params()), gpuOf(grads), gpuOf(state.ms()), gpuOf(state.vs()), 1e-3f, 0.9f,
                    0.999f, 1e-8f, 0f, bias, counter, control);
            gpu.emaUpdateForeach(gpuOf(avg), gpuOf(state.params()), decays, counter, control);
            gpu.advanceCounter(counter, control);
        };
    }

    @Test
    void listsOfDifferentLengthsAreRejected() {
        var a = set("a", 1500, -1f, 1f);
        var b = set("b", 1600, -1f, 1f);
        assertThrows(IllegalArgumentException.class, () -> gpu.emaUpdateForeach(gpuOf(a), gpuOf(b).subList(0, 3),
                0.5));
        assertThrows(IllegalArgumentException.class, () -> gpu.adamwForeach(gpuOf(a), gpuOf(b), gpuOf(a),
                gpuOf(b).subList(0, 2), 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f));
    }
}
