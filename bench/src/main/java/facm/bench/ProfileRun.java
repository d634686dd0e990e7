package facm.bench;

import facm.cuda.KernelProfile;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.objectives.ConsistencyObjective;
import facm.sampling.ConsistencySampler;
import facm.tensor.Backend;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import facm.training.DeviceTrainStep;

import java.util.Locale;

/**
 * Where the GPU time of a FACM training step or a one-step sampling goes, kernel by kernel: the work of
 * {@link FacmTrainStep} (through {@link TrainStepFixture}, the same settings) or of {@link OneStepSampling} (the
 * consistency sampler with CUDA graphs off, so that every launch is visible), run a few times with
 * {@link KernelProfile} on, then the per-kernel table averaged per run. Warm-up runs go first (plans, caches and the
 * profile's event pool fill there), then the profile is reset and the measured runs follow.
 *
 * <pre>
 * java -cp benchmarks.jar:facm-engine.jar facm.bench.ProfileRun --work step --model XL/1 --batch 32 --steps 3 --top 40
 * java -cp benchmarks.jar:facm-engine.jar facm.bench.ProfileRun --work sample --model XL/1 --batch 256 --top 40
 * </pre>
 *
 * Options: {@code --work step|sample}, {@code --model PRESET} (XL/1), {@code --batch N} (32 for step, 256 for
 * sample), {@code --steps N} measured runs (3), {@code --warmup N} (2), {@code --top N} table rows (40),
 * {@code --precision bf16|tf32|fp32} (bf16), {@code --nfe N} for sample (1), {@code --step host|device} for step
 * (host: the trainer's default step; device: the device-side step run eagerly), {@code --backend cuda|cpu} (cpu only
 * tries the plumbing: nothing is timed there).
 */
public final class ProfileRun {

    /** The parsed command line. */
    record Options(String work, String model, int batch, int steps, int warmup, int top, String precision, int nfe,
                   String stepPath, String backend) {
        Options {
            if (!work.equals("step") && !work.equals("sample")) {
                throw new IllegalArgumentException("ProfileRun: --work must be step or sample, got " + work);
            }
            if (!stepPath.equals("host") && !stepPath.equals("device")) {
                throw new IllegalArgumentException("ProfileRun: --step must be host or device (a captured graph "
                        + "hides its launches), got " + stepPath);
            }
            if (batch < 1 || steps < 1 || warmup < 0 || top < 1 || nfe < 1) {
                throw new IllegalArgumentException("ProfileRun: need --batch, --steps, --top, --nfe >= 1 and --warmup"
                        + " >= 0, got batch " + batch + ", steps " + steps + ", top " + top + ", nfe " + nfe
                        + ", warmup " + warmup);
            }
        }

        static Options parse(String[] args) {
            String work = "step";
            String model = "XL/1";
            int batch = -1;
            int steps = 3;
            int warmup = 2;
            int top = 40;
            String precision = "bf16";
            int nfe = 1;
            String stepPath = "host";
            String backend = "cuda";
            for (int i = 0; i < args.length; i++) {
                String flag = args[i];
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("ProfileRun: " + flag + " needs a value");
                }
                String v = args[++i];
                switch (flag) {
                    case "--work" -> work = v;
                    case "--model" -> model = v;
                    case "--batch" -> batch = number(flag, v);
                    case "--steps" -> steps = number(flag, v);
                    case "--warmup" -> warmup = number(flag, v);
                    case "--top" -> top = number(flag, v);
                    case "--precision" -> precision = v;
                    case "--nfe" -> nfe = number(flag, v);
                    case "--step" -> stepPath = v;
                    case "--backend" -> backend = v;
                    default -> throw new IllegalArgumentException("ProfileRun: unknown option " + flag
                            + " (see the class comment for the options)");
                }
            }
            if (batch < 0) {
                batch = work.equals("step") ? 32 : 256;
            }
            return new Options(work, model, batch, steps, warmup, top, precision, nfe, stepPath, backend);
        }

        private static int number(String flag, String v) {
            try {
                return Integer.parseInt(v);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("ProfileRun: " + flag + " takes a whole number, got '" + v + "'");
            }
        }
    }

    private ProfileRun() {
    }

    public static void main(String[] args) {
        Options o;
        try {
            o = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        System.out.printf(Locale.ROOT, "ProfileRun: work %s, model %s, batch %d, precision %s, %s, %d warm-up + %d "
                        + "measured runs, top %d%n", o.work(), o.model(), o.batch(), o.precision(),
                o.work().equals("step") ? o.stepPath() + " step" : "NFE " + o.nfe() + ", CUDA graphs off",
                o.warmup(), o.steps(), o.top());
        if (o.work().equals("step")) {
            profileStep(o);
        } else {
            profileSampling(o);
        }
    }

    /** The FACM step of FacmTrainStep: teacher CFG, FM anchor, JVP pass, loss, clip, AdamW, EMA, synchronize. */
    private static void profileStep(Options o) {
        try (TrainStepFixture fixture = new TrainStepFixture("ProfileRun", o.backend(), o.model(), o.batch(),
                FacmTrainStep.SETTINGS)) {
            ModelWeights teacher = fixture.own(ModelWeights.philox(fixture.config, fixture.backend, 2));
            ConsistencyObjective objective = fixture.own(new ConsistencyObjective(7,
                    OneStepSampling.precision(o.precision()),
                    ConsistencyObjective.Options.defaults(ConsistencyObjective.Kind.FACM), teacher));
            DeviceTrainStep deviceStep = o.stepPath().equals("device") ? fixture.deviceStep(objective, false) : null;
            fixture.ready("ProfileRun FACM step (" + o.precision() + ", " + o.stepPath() + " step)",
                    ModelFlops.FACM_STEP_FORWARDS);
            SampleCounter counter = new SampleCounter();
            Runnable step = deviceStep == null
                    ? () -> fixture.step(objective, counter, ModelFlops.FACM_STEP_FORWARDS)
                    : () -> fixture.step(deviceStep, counter, ModelFlops.FACM_STEP_FORWARDS);
            try {
                measure(o, fixture.backend, step, fixture.flopPerStep(ModelFlops.FACM_STEP_FORWARDS), "step",
                        o.batch() + " samples");
            } finally {
                if (deviceStep != null) {
                    fixture.finish(deviceStep);
                }
                KernelProfile.releaseEvents(); // while the device is still open
            }
        }
    }

    /** The consistency sampler of OneStepSampling, eager: noise upload, NFE forwards, state update, synchronize. */
    private static void profileSampling(Options o) {
        Backend be = TimingPreconditions.open(o.backend(), "ProfileRun");
        ModelWeights weights = null;
        ConsistencySampler sampler = null;
        Tensor y = null;
        try {
            ModelConfig c = Presets.get(o.model());
            weights = ModelWeights.philox(c, be, 1);
            LightningDiT net = new LightningDiT(weights).precision(OneStepSampling.precision(o.precision()));
            net.cacheBf16Weights(true); // frozen weights: one bf16 copy each, as `sample` and OneStepSampling do
            sampler = new ConsistencySampler(net, false);
            int[] shape = {o.batch(), c.inChannels(), c.inputSize(), c.inputSize()};
            float[] noise = new float[o.batch() * c.inChannels() * c.inputSize() * c.inputSize()];
            for (int i = 0; i < noise.length; i++) {
                noise[i] = Philox.normal(5, i);
            }
            int[] labels = new int[o.batch()];
            for (int i = 0; i < labels.length; i++) {
                labels[i] = i % c.numClasses();
            }
            y = be.upload("y", labels, o.batch());
            System.out.printf(Locale.ROOT, "%s on %s, batch %d, %s, NFE %d, %.1f GFLOP per image and evaluation%n",
                    c.summary(), be.describe(), o.batch(), o.precision(), o.nfe(),
                    ModelFlops.forwardPerImage(c) / 1e9);
            ConsistencySampler s = sampler;
            Tensor labelsOnDevice = y;
            Runnable sample = () -> {
                try (Tensor z = be.upload("z", noise, shape);
                     Tensor samples = s.sample(z, labelsOnDevice, o.nfe(), 9)) {
                    be.synchronize();
                }
            };
            try {
                measure(o, be, sample, (double) o.nfe() * o.batch() * ModelFlops.forwardPerImage(c), "sampling",
                        o.batch() + " images");
            } finally {
                KernelProfile.releaseEvents();
            }
        } finally {
            if (sampler != null) {
                sampler.close();
            }
            if (y != null) {
                y.close();
            }
            if (weights != null) {
                weights.close();
            }
            be.close();
        }
    }

    /** Warm-up with the profile on (the event pool grows there), reset, the measured runs, the table per run. */
    private static void measure(Options o, Backend be, Runnable run, double flopPerRun, String what, String items) {
        KernelProfile.enable();
        try {
            for (int i = 0; i < o.warmup(); i++) {
                run.run();
            }
            be.synchronize();
            if (o.warmup() > 0) {
                // Events for the measured runs up front, with a margin, so that none is created while measuring.
                long perRun = KernelProfile.recorded() / o.warmup();
                KernelProfile.reserve((int) Math.min(Integer.MAX_VALUE, perRun * o.steps() * 11 / 10 + 64));
            }
            KernelProfile.reset();
            long t0 = System.nanoTime();
            for (int i = 0; i < o.steps(); i++) {
                run.run();
            }
            be.synchronize();
            double hostMs = (System.nanoTime() - t0) / 1e6 / o.steps();
            KernelProfile.disable();
            System.out.printf(Locale.ROOT, "%nHost wall time per %s (%s): %.3f ms, %.1f TFLOP/s of it with the "
                    + "profile's events in (an unprofiled run is a little faster)%n", what, items, hostMs,
                    flopPerRun / hostMs / 1e9);
            System.out.print(KernelProfile.report(o.top(), o.steps()));
        } finally {
            KernelProfile.disable();
        }
    }
}
