package facm.backend.cpu;

import facm.autograd.Dual;
import facm.autograd.Gradients;
import facm.autograd.Tape;
import facm.data.Batch;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.objectives.ConsistencyObjective;
import facm.objectives.FlowMatchingObjective;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.NetworkOps;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import facm.training.AdamW;
import facm.training.GradientNorm;
import facm.training.ModelInitializer;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Supplier;

/**
 * Manual timing of the CPU backend on the training work of the default CPU job (not a unit test): a stage-1 FM step
 * and a FACM step without a teacher (the default {@code train}: objective, gradient norm, AdamW, as the Trainer runs
 * them), then the FACM step's pieces: a no-grad forward, and a forward-mode JVP with and without a tape. With {@code --ops}, every Backend/NetworkOps/TrainingOps call
 * made through the model's backend is timed (calls counted; GEMMs split by shape), so the report shows where a
 * step's time goes: wall clock, or with {@code --threads 1} the thread's CPU time, which other load on a shared
 * machine does not inflate. Run after {@code tools/mvn.sh -q -o test-compile}:
 * <pre>java -cp target/classes:target/test-classes:$(cat cp.txt) facm.backend.cpu.CpuStepProfile [--model tiny]
 *      [--batch 64] [--steps 10] [--threads N] [--ops]</pre>
 * (cp.txt from {@code mvn -o dependency:build-classpath -Dmdep.outputFile=cp.txt}).
 */
public final class CpuStepProfile {
    private static final Map<String, long[]> OP_TIMES = new TreeMap<>();
    private static final java.lang.management.ThreadMXBean THREADS = java.lang.management.ManagementFactory
            .getThreadMXBean();
    /** With one thread, op timers read the calling thread's CPU time: other load on the machine does not count. */
    private static boolean opTimersOnCpuTime;

    private CpuStepProfile() {
    }

    public static void main(String[] args) {
        String preset = "tiny";
        int batch = 64, steps = 10, threads = Runtime.getRuntime().availableProcessors();
        boolean ops = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--model" -> preset = args[++i];
                case "--batch" -> batch = Integer.parseInt(args[++i]);
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--ops" -> ops = true;
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        ModelConfig config = Presets.get(preset);
        opTimersOnCpuTime = threads == 1;
        try (CpuBackend cpu = new CpuBackend(threads)) {
            Backend be = ops ? timed(Backend.class, cpu) : cpu;
            System.out.println(cpu.describe() + ", model " + config.name() + ", batch " + batch + ", " + steps
                    + " timed repetitions after " + Math.max(2, steps / 3) + " warm-up" + (ops ? ", op timers on" : ""));
            try (ModelWeights w = ModelInitializer.initialize(config, be, 7);
                 Gradients grads = new Gradients(w);
                 AdamW adam = new AdamW(w, new AdamW.Options(1e-4f, 0.9f, 0.999f, 1e-8f, 0f), be.training());
                 GradientNorm norm = new GradientNorm(be, be.training())) {
                Batch data = syntheticBatch(config, batch);
                FlowMatchingObjective fm = new FlowMatchingObjective(1, GemmPrecision.FP32,
                        FlowMatchingObjective.Options.defaults());
                LightningDiT model = new LightningDiT(w);
                int warm = Math.max(2, steps / 3);
                int[] step = {0};
                report("FM train step", warm, steps, batch, () -> {
                    grads.zero();
                    float loss = fm.lossAndGradients(w, grads, data, step[0]++);
                    double n = norm.compute(grads);
                    adam.update(w, grads, GradientNorm.clipFactor(n, 1.0));
                    return loss;
                });
                // The default job: FACM without a teacher (CFG on the student's own unguided forward).
                ConsistencyObjective facm = new ConsistencyObjective(1, GemmPrecision.FP32,
                        ConsistencyObjective.Options.defaults(ConsistencyObjective.Kind.FACM), null);
                report("FACM train step (no teacher)", warm, steps, batch, () -> {
                    grads.zero();
                    float loss = facm.lossAndGradients(w, grads, data, step[0]++);
                    double n = norm.compute(grads);
                    adam.update(w, grads, GradientNorm.clipFactor(n, 1.0));
                    return loss;
                });
                try (Tensor x = be.upload("x", data.images(), data.shape());
                     Tensor xDot = be.upload("xDot", noise(data.images().length, 3), data.shape());
                     Tensor t = be.upload("t", uniform(batch, 4), batch);
                     Tensor tDot = be.upload("tDot", uniform(batch, 5), batch);
                     Tensor y = be.upload("y", data.labels(), batch);
                     Tensor r = config.auxTime() ? be.upload("r", uniform(batch, 6), batch) : null) {
                    report("forward (no grad)", warm, steps, batch, () -> {
                        try (Tensor out = model.forward(x, t, y, r)) {
                            return 0f;
                        }
                    });
                    report("forward + JVP (no tape)", warm, steps, batch, () -> {
                        Dual d = model.jvp(x, xDot, t, tDot, y, r, null);
                        d.primal().close();
                        d.tangent().close();
                        return 0f;
                    });
                    report("forward + JVP on tape, backward", warm, steps, batch, () -> {
                        grads.zero();
                        try (Tape tape = Tape.forParameters(w, grads)) {
                            Dual d = model.jvp(x, xDot, t, tDot, y, r, tape);
                            d.tangent().close();
                            try (Tensor primal = d.primal();
                                 Tensor seed = be.upload("seed", noise((int) primal.numel(), 8), primal.shape())) {
                                tape.backward(primal, seed);
                            }
                        }
                        return 0f;
                    });
                }
            }
        }
    }

    private static void report(String what, int warm, int reps, int batch, Supplier<Float> work) {
        for (int i = 0; i < warm; i++) {
            work.get();
        }
        OP_TIMES.clear();
        double best = Double.MAX_VALUE, total = 0;
        float last = 0;
        long cpu0 = processCpuNanos();
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            last = work.get();
            double s = (System.nanoTime() - t0) * 1e-9;
            best = Math.min(best, s);
            total += s;
        }
        double cpuSeconds = (processCpuNanos() - cpu0) * 1e-9 / reps;
        System.out.printf(Locale.ROOT, "%-34s mean %8.1f ms  best %8.1f ms  cpu %8.1f ms  (%.0f samples/s, "
                + "last loss %.4f)%n", what, total / reps * 1e3, best * 1e3, cpuSeconds * 1e3, batch * reps / total,
                last);
        if (!OP_TIMES.isEmpty()) {
            double elapsed = opTimersOnCpuTime ? cpuSeconds * reps : total;
            double timed = OP_TIMES.values().stream().mapToLong(v -> v[0]).sum() * 1e-9;
            OP_TIMES.entrySet().stream()
                    .sorted((a, b) -> Long.compare(b.getValue()[0], a.getValue()[0]))
                    .limit(25)
                    .forEach(e -> System.out.printf(Locale.ROOT, "    %-58s %7.1f ms/rep %5.1f%%  %5d calls/rep%n",
                            e.getKey(), e.getValue()[0] * 1e-6 / reps, 100 * e.getValue()[0] * 1e-9 / elapsed,
                            e.getValue()[1] / reps));
            System.out.printf(Locale.ROOT, "    %-58s %7.1f ms/rep %5.1f%%%n", "(outside timed ops)",
                    (elapsed - timed) * 1e3 / reps, 100 * (elapsed - timed) / elapsed);
        }
    }

    /** CPU time of the whole process (all threads, JIT and GC included): less sensitive to other load than wall time. */
    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                .getOperatingSystemMXBean()).getProcessCpuTime();
    }

    private static long opClock() {
        return opTimersOnCpuTime ? THREADS.getCurrentThreadCpuTime() : System.nanoTime();
    }

    /** {@code target} behind a proxy that times each call into OP_TIMES; network()/training() are proxied too. */
    @SuppressWarnings("unchecked")
    private static <T> T timed(Class<T> type, T target) {
        InvocationHandler h = (proxy, method, args) -> {
            String name = method.getName();
            if (name.equals("network")) {
                return timed(NetworkOps.class, (NetworkOps) method.invoke(target, args));
            }
            if (name.equals("training")) {
                return timed(TrainingOps.class, (TrainingOps) method.invoke(target, args));
            }
            String key = name.equals("gemm") ? gemmKey(args) : type.getSimpleName() + "." + name;
            long t0 = opClock();
            try {
                return method.invoke(target, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            } finally {
                long[] acc = OP_TIMES.computeIfAbsent(key, k -> new long[2]);
                acc[0] += opClock() - t0;
                acc[1]++;
            }
        };
        return (T) Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[] {type}, h);
    }

    /** "gemm m×n×k (batch) tA tB" of a gemm call. */
    private static String gemmKey(Object[] args) {
        Tensor a = (Tensor) args[0], b = (Tensor) args[2], out = (Tensor) args[4];
        boolean ta = (Boolean) args[1], tb = (Boolean) args[3];
        int k = ta ? a.dim(-2) : a.dim(-1);
        StringBuilder s = new StringBuilder("gemm ");
        s.append(out.dim(-2)).append('x').append(out.dim(-1)).append('x').append(k);
        if (out.rank() == 3) {
            s.append(" b").append(out.dim(0));
        }
        return s.append(ta ? " Ta" : "").append(tb ? " Tb" : "").toString();
    }

    private static Batch syntheticBatch(ModelConfig c, int batch) {
        int[] shape = {batch, c.inChannels(), c.inputSize(), c.inputSize()};
        float[] images = noise(batch * c.inChannels() * c.inputSize() * c.inputSize(), 1);
        for (int i = 0; i < images.length; i++) {
            images[i] = (float) Math.tanh(images[i]);
        }
        int[] labels = new int[batch];
        for (int i = 0; i < batch; i++) {
            labels[i] = i % c.numClasses();
        }
        return new Batch(images, shape, labels, batch);
    }

    private static float[] noise(int n, long seed) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = Philox.normal(seed, i);
        }
        return v;
    }

    private static float[] uniform(int n, long seed) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = Philox.uniform(seed, i);
        }
        return v;
    }
}
