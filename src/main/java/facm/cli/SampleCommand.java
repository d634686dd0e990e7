package facm.cli;

import facm.backend.Backends;
import facm.checkpoint.SafetensorsWriter;
import facm.io.PngWriter;
import facm.io.SampleNpz;
import facm.model.LightningDiT;
import facm.model.ModelCheckpoint;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.sampling.ConsistencySampler;
import facm.sampling.EulerSampler;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** {@code sample}: generate with the consistency (1–2 NFE) or Euler sampler and write latents or a PNG grid. */
@Command(name = "sample", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Generate samples from a checkpoint. Writes .safetensors (samples [N,C,H,W] f32, labels [N] i32), "
                + ".npz (arr_0: images [N,H,W,C] uint8 0..255, or latents [N,C,H,W] f32; arr_1 and labels: [N] int64) "
                + "or, for 1- or 3-channel image models, a .png grid. Same seed, same device: same output.")
final class SampleCommand implements Runnable {
    @Option(names = "--ckpt", required = true, description = "checkpoint (.safetensors or PyTorch .pt)")
    Path ckpt;
    @Option(names = "--model", description = "architecture preset when the checkpoint has no config (e.g. XL/1)")
    String model;
    @Option(names = "--ema", description = "sample an EMA copy of a training checkpoint, e.g. power_0.2 or power:0.2 "
            + "(keys ema.<name>.*); default: the raw model weights")
    String ema;
    @Option(names = "--sampler", defaultValue = "consistency", description = "consistency | euler (default ${DEFAULT-VALUE})")
    String sampler;
    @Option(names = "--nfe", defaultValue = "1", description = "consistency sampler steps (network evaluations), default ${DEFAULT-VALUE}")
    int nfe;
    @Option(names = "--steps", defaultValue = "32", description = "Euler steps (default ${DEFAULT-VALUE})")
    int steps;
    @Option(names = "--cfg", defaultValue = "1.0", description = "Euler: classifier-free guidance scale (1 = off)")
    float cfg;
    @Option(names = "--cfg-interval", defaultValue = "0,1", split = ",", description = "Euler: guidance only for t in [lo,hi]")
    float[] cfgInterval;
    @Option(names = "--shift", defaultValue = "1.0", description = "Euler: timestep shift s (1 = none)")
    float shift;
    @Option(names = "--heun", description = "Euler: Heun correction")
    boolean heun;
    @Option(names = "--fm-branch", description = "Euler: feed 2 - t (the FM branch of a distilled FACM model)")
    boolean fmBranch;
    @Option(names = "--n", required = true, description = "number of samples")
    int n;
    @Option(names = "--classes", split = ",", description = "labels to cycle through (default: all classes)")
    List<Integer> classes;
    @Option(names = "--seed", defaultValue = "0")
    long seed;
    @Option(names = "--batch", defaultValue = "64", description = "samples per network call (default ${DEFAULT-VALUE})")
    int batch;
    @Option(names = "--device", defaultValue = "auto", description = "cpu | cuda | cuda:N | auto")
    String device;
    @Option(names = "--precision", defaultValue = "fp32", description = "fp32 | tf32 | bf16 matrix products")
    String precision;
    @Option(names = "--out", required = true, description = "output .safetensors, .npz or .png")
    Path out;

    @Override
    public void run() {
        String name = out.getFileName().toString().toLowerCase(Locale.ROOT);
        boolean png = name.endsWith(".png");
        if (!png && !name.endsWith(".safetensors") && !name.endsWith(".npz")) {
            throw new IllegalArgumentException("--out must end in .safetensors, .npz or .png, got " + out);
        }
        if (n < 1 || batch < 1) {
            throw new IllegalArgumentException("--n and --batch must be >= 1");
        }
        try {
            ModelConfig cfg0 = ModelCheckpoint.configOf(ckpt, model == null ? null : Presets.get(model));
            if (png && cfg0.inChannels() != 1 && cfg0.inChannels() != 3) {
                throw new IllegalArgumentException("a .png needs 1- or 3-channel images, but " + cfg0.name() + " makes "
                        + cfg0.inChannels() + "-channel latents: write .safetensors and decode them (see README)");
            }
            int[] labels = labels(cfg0);
            Backends.Selection sel = Backends.select(device);
            System.out.println("device: " + sel.why());
            System.out.println("model:  " + cfg0.summary());
            if (ema != null) {
                System.out.println("weights: " + weightsName(ema));
            }
            try (Backend be = sel.backend();
                 ModelWeights w = loadWeights(ckpt, cfg0, ema, be)) {
                LightningDiT net = new LightningDiT(w).precision(GemmPrecision.valueOf(precision.toUpperCase(Locale.ROOT)))
                        .cacheBf16Weights(true); // frozen weights: one bf16 copy for the whole run
                float[] all = generate(be, net, labels);
                write(cfg0, all, labels, png);
            }
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e.getMessage(), e);
        }
    }

    private int[] labels(ModelConfig c) {
        List<Integer> cls = classes;
        if (cls == null || cls.isEmpty()) {
            cls = java.util.stream.IntStream.range(0, c.numClasses()).boxed().toList();
        }
        for (int k : cls) {
            if (k < 0 || k > c.numClasses()) {
                throw new IllegalArgumentException("class " + k + " is outside 0.." + c.numClasses() + " ("
                        + c.numClasses() + " = unconditional)");
            }
        }
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            y[i] = cls.get(i % cls.size());
        }
        return y;
    }

    /** "EMA copy 'NAME'" or "raw model weights", for the run's header. */
    static String weightsName(String ema) {
        return ema == null ? "raw model weights" : "EMA copy '" + ema.replace(':', '_') + "'";
    }

    /** The model's own weights, or with {@code ema} (e.g. power_0.2 or power:0.2) its EMA copy ema.NAME.*. */
    static ModelWeights loadWeights(Path ckpt, ModelConfig config, String ema, Backend be) throws java.io.IOException {
        return ema == null ? ModelCheckpoint.load(ckpt, config, be)
                : ModelCheckpoint.load(ckpt, config, be, "ema." + ema.replace(':', '_') + ".");
    }

    /**
     * A sampler applied to one batch at a time: noise z drawn at Philox counters from noiseOffset of a run of
     * totalElements. One object per run and model, so the CUDA graphs it captures (one per batch shape) are reused
     * by every batch and every NFE; closing it frees them.
     */
    interface BatchSampler extends AutoCloseable {
        Tensor sample(Tensor z, Tensor y, int nfe, long noiseOffset, long totalElements);

        @Override
        void close();
    }

    /**
     * Samples {@code start .. start+labels.length-1} of an {@code n}-sample run: the noise of sample i is Philox(seed)
     * at counters from i·C·H·W, so every sample is the same whatever the batching (and the same in sample and eval).
     */
    static Tensor sampleBatch(LightningDiT net, BatchSampler sampler, int nfe, int[] labels, int start, int n,
                              long seed) {
        ModelConfig c = net.config();
        Backend be = net.weights().backend();
        int b = labels.length;
        long per = (long) c.inChannels() * c.inputSize() * c.inputSize();
        try (Tensor z = be.empty("z", DType.F32, b, c.inChannels(), c.inputSize(), c.inputSize());
             Tensor y = be.upload("y", labels, b)) {
            be.randomNormal(z, seed, start * per);
            return sampler.sample(z, y, nfe, start * per, n * per);
        }
    }

    /** The consistency sampler of {@code net} (nfe steps per call), re-noise from Philox(seed) (facm-spec.md §7). */
    static BatchSampler consistencySampler(LightningDiT net, long seed) {
        ConsistencySampler s = new ConsistencySampler(net);
        return new BatchSampler() {
            @Override
            public Tensor sample(Tensor z, Tensor y, int nfe, long offset, long total) {
                return s.sample(z, y, nfe, seed, offset, total);
            }

            @Override
            public void close() {
                s.close();
            }
        };
    }

    /** The Euler sampler of {@code net} with the options of an nfe-step call. */
    static BatchSampler eulerSampler(LightningDiT net, java.util.function.IntFunction<EulerSampler.Options> options) {
        EulerSampler s = new EulerSampler(net);
        return new BatchSampler() {
            @Override
            public Tensor sample(Tensor z, Tensor y, int nfe, long offset, long total) {
                return s.sample(z, y, options.apply(nfe));
            }

            @Override
            public void close() {
                s.close();
            }
        };
    }

    private BatchSampler chosenSampler(LightningDiT net) {
        return switch (sampler) {
            case "consistency" -> consistencySampler(net, seed);
            case "euler" -> eulerSampler(net, k -> new EulerSampler.Options(k, cfg, cfgInterval[0],
                    cfgInterval.length > 1 ? cfgInterval[1] : 1f, shift, heun, fmBranch));
            default -> throw new IllegalArgumentException("unknown --sampler '" + sampler + "': consistency or euler");
        };
    }

    private float[] generate(Backend be, LightningDiT net, int[] labels) {
        ModelConfig c = net.config();
        int per = c.inChannels() * c.inputSize() * c.inputSize();
        float[] all = new float[n * per];
        int evaluations = sampler.equals("euler") ? steps : nfe;
        long start = System.nanoTime();
        try (BatchSampler chosen = chosenSampler(net)) {
            for (int s = 0; s < n; s += batch) {
                int b = Math.min(batch, n - s);
                try (Tensor x = sampleBatch(net, chosen, evaluations, java.util.Arrays.copyOfRange(labels, s, s + b),
                        s, n, seed)) {
                    System.arraycopy(be.download(x), 0, all, s * per, b * per);
                }
                double secs = (System.nanoTime() - start) / 1e9;
                System.out.printf(Locale.ROOT, "sampled %d/%d  (%.1f samples/s)%n", s + b, n, (s + b) / secs);
            }
        }
        return all;
    }

    private void write(ModelConfig c, float[] all, int[] labels, boolean png) throws java.io.IOException {
        if (png) {
            int cols = (int) Math.ceil(Math.sqrt(n));
            PngWriter.writeGrid(out, all, n, c.inChannels(), c.inputSize(), c.inputSize(), cols);
        } else if (out.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".npz")) {
            SampleNpz.write(out, all, labels, c.inChannels(), c.inputSize(), c.inputSize());
        } else {
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("config", c.toJson());
            meta.put("sampler", sampler.equals("euler") ? "euler steps=" + steps + " cfg=" + cfg + " shift=" + shift
                    + " heun=" + heun + " fm_branch=" + fmBranch : "consistency nfe=" + nfe);
            meta.put("seed", Long.toString(seed));
            meta.put("checkpoint", ckpt.toString());
            SafetensorsWriter.write(out, List.of(
                    SafetensorsWriter.Entry.f32("samples", new int[] {n, c.inChannels(), c.inputSize(), c.inputSize()}, all),
                    SafetensorsWriter.Entry.i32("labels", new int[] {n}, labels)), meta);
        }
        System.out.println("wrote " + out);
    }
}
