package facm.cli;

import facm.backend.Backends;
import facm.data.Dataset;
import facm.data.Datasets;
import facm.eval.EvalReport;
import facm.eval.FeatureExtractor;
import facm.eval.FeatureNetworks;
import facm.eval.FidEvaluation;
import facm.io.SampleNpz;
import facm.model.LightningDiT;
import facm.model.ModelCheckpoint;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.sampling.EulerSampler;
import facm.tensor.Backend;
import facm.tensor.GemmPrecision;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/** {@code eval}: FID, class consistency and sampling time of a checkpoint at several NFEs. */
@Command(name = "eval", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Evaluate a checkpoint: for each NFE generate --n samples, and compute the FID against the data "
                + "(features of a classifier, float64 statistics), the class consistency (share of samples the "
                + "classifier puts in the class asked for) and the sampling time. Writes DIR/eval.json and "
                + "DIR/fid_vs_nfe.png and prints a table.")
final class EvalCommand implements Runnable {
    @Option(names = "--ckpt", required = true, description = "checkpoint (.safetensors or PyTorch .pt)")
    Path ckpt;
    @Option(names = "--model", description = "architecture preset when the checkpoint has no config")
    String model;
    @Option(names = "--ema", description = "evaluate an EMA copy of a training checkpoint, e.g. power_0.2")
    String ema;
    @Option(names = "--data", defaultValue = "fashion-mnist", description = "reference data: fashion-mnist (bundled "
            + "test split) or a folder (default ${DEFAULT-VALUE})")
    String data;
    @Option(names = "--nfe", defaultValue = "1,2", split = ",", description = "network evaluations per sample: "
            + "consistency steps, or Euler steps (default ${DEFAULT-VALUE})")
    List<Integer> nfes;
    @Option(names = "--sampler", defaultValue = "consistency", description = "consistency | euler (default "
            + "${DEFAULT-VALUE})")
    String sampler;
    @Option(names = "--fm-branch", description = "euler: feed 2 - t (the FM branch of a distilled FACM model)")
    boolean fmBranch;
    @Option(names = "--n", defaultValue = "10000", description = "samples per NFE (default ${DEFAULT-VALUE})")
    int n;
    @Option(names = "--ref-n", defaultValue = "-1", description = "data images for the reference statistics, spread "
            + "evenly over the data: 0 = all; default: as many as --n (equal-sized sets), at most all")
    int refN;
    @Option(names = "--batch", defaultValue = "500", description = "images per network call (default ${DEFAULT-VALUE})")
    int batch;
    @Option(names = "--seed", defaultValue = "0", description = "noise seed; sample i gets the noise `sample --seed` "
            + "gives it")
    long seed;
    @Option(names = "--classes", defaultValue = "cycle", description = "cycle (class i mod K for sample i) | random "
            + "(uniform from the seed) (default ${DEFAULT-VALUE})")
    String classes;
    @Option(names = "--classifier", description = "classifier .safetensors from train-classifier (default: the "
            + "bundled Fashion-MNIST classifier)")
    Path classifier;
    @Option(names = "--out", defaultValue = "runs/eval", description = "output folder (default ${DEFAULT-VALUE})")
    Path out;
    @Option(names = "--device", defaultValue = "auto", description = "cpu | cuda | cuda:N | auto")
    String device;
    @Option(names = "--precision", defaultValue = "fp32", description = "fp32 | tf32 matrix products of the "
            + "generator (default ${DEFAULT-VALUE})")
    String precision;

    private final PrintStream console = System.out;

    @Override
    public void run() {
        validate();
        try {
            ModelConfig cfg = ModelCheckpoint.configOf(ckpt, model == null ? null : Presets.get(model));
            if (!SampleNpz.isImage(cfg.inChannels())) {
                throw new IllegalArgumentException("eval scores images, and " + cfg.name() + " makes "
                        + cfg.inChannels() + "-channel latents: write them with sample --out FILE.npz, decode "
                        + "them with the VAE and score the images with an FID tool (see README)");
            }
            Backends.Selection sel = Backends.select(device);
            console.println("device:  " + sel.why());
            console.println("model:   " + cfg.summary());
            console.println("weights: " + SampleCommand.weightsName(ema));
            try (Backend be = sel.backend();
                 ModelWeights w = SampleCommand.loadWeights(ckpt, cfg, ema, be);
                 Dataset d = Datasets.open(data);
                 FeatureNetworks.Opened net = FeatureNetworks.open(classifier, be)) {
                evaluate(be, w, d, net.extractor(), net.source());
            }
        } catch (IOException e) {
            throw new IllegalStateException(e.getMessage(), e);
        }
    }

    private void validate() {
        if (n < 2 || batch < 1) {
            throw new IllegalArgumentException("--n must be >= 2 (a covariance needs two samples) and --batch >= 1");
        }
        if (nfes == null || nfes.isEmpty() || nfes.stream().anyMatch(k -> k == null || k < 1)) {
            throw new IllegalArgumentException("--nfe must list positive step counts, e.g. 1,2,4; got " + nfes);
        }
        if (!sampler.equals("consistency") && !sampler.equals("euler")) {
            throw new IllegalArgumentException("unknown --sampler '" + sampler + "': consistency or euler");
        }
        if (fmBranch && !sampler.equals("euler")) {
            throw new IllegalArgumentException("--fm-branch applies to --sampler euler only");
        }
        if (!classes.equals("cycle") && !classes.equals("random")) {
            throw new IllegalArgumentException("unknown --classes '" + classes + "': cycle or random");
        }
        if (!precision.equalsIgnoreCase("fp32") && !precision.equalsIgnoreCase("tf32")) {
            throw new IllegalArgumentException("--precision must be fp32 or tf32 for eval, got " + precision);
        }
        if (refN < -1 || refN == 1) {
            throw new IllegalArgumentException("--ref-n must be 0 (all) or >= 2, got " + refN);
        }
    }

    /** The evaluation proper on open resources (tests call it with a stand-in feature network). */
    void evaluate(Backend be, ModelWeights weights, Dataset d, FeatureExtractor fx, String classifierSource)
            throws IOException {
        validate();
        ModelConfig cfg = weights.config();
        int[] shape = {cfg.inChannels(), cfg.inputSize(), cfg.inputSize()};
        if (!Arrays.equals(shape, d.sampleShape())) {
            throw new IllegalArgumentException("the model makes " + Arrays.toString(shape) + " samples, the data "
                    + d.describe() + " holds " + Arrays.toString(d.sampleShape()) + ": FID needs the same kind");
        }
        int references = refN == 0 ? d.size() : refN < 0 ? Math.min(n, d.size()) : refN;
        if (references > d.size()) {
            throw new IllegalArgumentException("--ref-n " + refN + " is more than the " + d.size() + " images of "
                    + d.describe());
        }
        boolean dataClasses = d.numClasses() == fx.numClasses();
        boolean sampleClasses = cfg.numClasses() == fx.numClasses();
        console.println("data:    " + d.describe());
        console.println("features: " + fx.describe() + " (" + fx.featureDim() + " features"
                + (sampleClasses ? "" : "; its " + fx.numClasses() + " classes are not the model's "
                + cfg.numClasses() + ": no class consistency") + ")");
        FidEvaluation.Reference ref = FidEvaluation.reference(d, references, batch, be, fx, dataClasses, console);
        if (ref.classifierAccuracy() != null) {
            console.printf(Locale.ROOT, "classifier accuracy on the %d reference images: %.2f %%%n", references,
                    100 * ref.classifierAccuracy());
        }
        int[] labels = FidEvaluation.labels(n, cfg.numClasses(), classes.equals("random"), seed);
        LightningDiT net = new LightningDiT(weights).precision(GemmPrecision.valueOf(precision.toUpperCase(Locale.ROOT)))
                .cacheBf16Weights(true); // frozen weights: one bf16 copy for the whole run
        List<FidEvaluation.NfeResult> results = new ArrayList<>();
        try (SampleCommand.BatchSampler s = batchSampler(net)) {
            for (int nfe : nfes) {
                FidEvaluation.NfeResult r = FidEvaluation.generated(nfe, labels, batch, be,
                        (start, y) -> SampleCommand.sampleBatch(net, s, nfe, y, start, n, seed), fx, ref,
                        sampleClasses, sampler + " NFE " + nfe, console);
                console.printf(Locale.ROOT, "NFE %d: FID %.4f%s, %.4f ms per network evaluation per image%n", nfe,
                        r.fidValue(), r.classConsistency() == null ? ""
                                : String.format(Locale.ROOT, ", class consistency %.1f %%", 100 * r.classConsistency()),
                        r.msPerEvaluationPerImage());
                results.add(r);
            }
        }
        EvalReport.Settings settings = new EvalReport.Settings(ckpt == null ? null : ckpt.toString(),
                SampleCommand.weightsName(ema), cfg.summary(), d.describe(), samplerName(), n, batch, seed, classes,
                be.describe(), precision.toLowerCase(Locale.ROOT), fx.describe(), classifierSource, fx.featureDim());
        List<Path> files = EvalReport.write(out, settings, ref, results);
        console.println();
        console.print(EvalReport.table(results));
        console.println("wrote " + files.get(0) + " and " + files.get(1));
    }

    private String samplerName() {
        return sampler.equals("euler") && fmBranch ? "euler (FM branch, time 2 - t)" : sampler;
    }

    private SampleCommand.BatchSampler batchSampler(LightningDiT net) {
        if (sampler.equals("consistency")) {
            return SampleCommand.consistencySampler(net, seed);
        }
        return SampleCommand.eulerSampler(net, k -> new EulerSampler.Options(k, 1f, 0f, 1f, 1f, false, fmBranch));
    }
}
