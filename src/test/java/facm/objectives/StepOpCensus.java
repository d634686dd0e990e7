package facm.objectives;

import facm.autograd.Gradients;
import facm.backend.cpu.CpuBackend;
import facm.data.Batch;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.tensor.Backend;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import facm.tensor.Tensor;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Counts, per call site, the elementwise Backend ops (binary, axpby, convert, reduce, affine, fill, unary) of one FACM
 * step with a teacher in bf16 (as FacmTrainStep runs it, random Philox weights) on the CPU backend: which line of the autograd, model or
 * objective code asks for each op, how often and on what shapes. A tool (not a unit test) for finding traffic the
 * CUDA step could drop; the CUDA backend's own internal launches (inside network ops, GEMM) do not show. Run after
 * {@code tools/mvn.sh -q -o test-compile}:
 * <pre>java -cp target/classes:target/test-classes:$(cat cp.txt) facm.objectives.StepOpCensus [--model tiny]
 *      [--batch 4]</pre>
 */
public final class StepOpCensus {
    private static final Set<String> COUNTED = Set.of("binary", "axpby", "convert", "reduce", "affine", "fill",
            "unary", "copy", "scalar");
    private static final Map<String, int[]> CALLS = new TreeMap<>();
    private static boolean counting;

    private StepOpCensus() {
    }

    public static void main(String[] args) {
        String preset = "tiny";
        int batch = 4;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--model" -> preset = args[++i];
                case "--batch" -> batch = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        ModelConfig config = Presets.get(preset);
        try (CpuBackend cpu = new CpuBackend(2)) {
            Backend be = counted(cpu);
            try (ModelWeights w = ModelWeights.philox(config, be, 7);
                 ModelWeights teacher = ModelWeights.philox(config, be, 8);
                 Gradients grads = new Gradients(w)) {
                ConsistencyObjective facm = new ConsistencyObjective(7, GemmPrecision.BF16,
                        ConsistencyObjective.Options.defaults(ConsistencyObjective.Kind.FACM), teacher);
                Batch data = batch(config, batch);
                facm.lossAndGradients(w, grads, data, 0); // warm-up: bf16 weight caches and the like
                grads.zero();
                counting = true;
                float loss = facm.lossAndGradients(w, grads, data, 1);
                counting = false;
                int bits = Float.floatToRawIntBits(loss);
                for (Map.Entry<String, Tensor> g : new TreeMap<>(grads.asMap()).entrySet()) {
                    bits = 31 * bits + Arrays.hashCode(cpu.download(g.getValue()));
                }
                System.out.printf(Locale.ROOT, "model %s (depth %d), batch %d, bf16, loss %.6f, hash of the loss and"
                        + " gradient bits %08x%n", config.name(), config.depth(), batch, loss, bits);
                CALLS.entrySet().stream().sorted((a, b) -> Integer.compare(b.getValue()[0], a.getValue()[0]))
                        .forEach(e -> System.out.printf(Locale.ROOT, "%5d  %s%n", e.getValue()[0], e.getKey()));
            }
        }
    }

    private static Backend counted(Backend target) {
        InvocationHandler h = (proxy, method, args) -> {
            if (counting && COUNTED.contains(method.getName()) && args != null) {
                CALLS.computeIfAbsent(key(method.getName(), args), k -> new int[1])[0]++;
            }
            try {
                return method.invoke(target, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        };
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, h);
    }

    /** "op(args: shapes and dtypes, other values)  at Class.method:line < caller" of a call. */
    private static String key(String op, Object[] args) {
        StringBuilder s = new StringBuilder(op).append('(');
        for (Object a : args) {
            if (s.charAt(s.length() - 1) != '(') {
                s.append(", ");
            }
            s.append(a instanceof Tensor t ? t.dtype() + Arrays.toString(t.shape()) : String.valueOf(a));
        }
        s.append(")  at ");
        String where = StackWalker.getInstance().walk(frames -> frames
                .filter(f -> f.getClassName().startsWith("facm.") && !f.getClassName().equals(StepOpCensus.class
                        .getName()) && !f.getClassName().equals(Backend.class.getName()))
                .limit(2)
                .map(f -> f.getClassName().substring(f.getClassName().lastIndexOf('.') + 1) + "." + f.getMethodName()
                        + ":" + f.getLineNumber())
                .reduce((a, b) -> a + " < " + b).orElse("?"));
        return s.append(where).toString();
    }

    private static Batch batch(ModelConfig c, int batch) {
        int n = batch * c.inChannels() * c.inputSize() * c.inputSize();
        float[] images = new float[n];
        for (int i = 0; i < n; i++) {
            images[i] = (float) Math.tanh(Philox.normal(1, i));
        }
        int[] labels = new int[batch];
        for (int i = 0; i < batch; i++) {
            labels[i] = i % c.numClasses();
        }
        return new Batch(images, new int[] {batch, c.inChannels(), c.inputSize(), c.inputSize()}, labels, batch);
    }
}
