package facm.classifier;

import facm.autograd.ForwardPass;
import facm.autograd.Tape;
import facm.checkpoint.CheckpointException;
import facm.data.Dataset;
import facm.tensor.Backend;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A trained image classifier (architecture: {@link ClassifierConfig}) on one backend: logits for class consistency,
 * and its feature vectors (the mean-pooled last tokens) for FID. Images are {@code [N, C, H, W]} f32 in [-1, 1], as
 * the data loaders and the samplers give them. Each call runs one inference pass over the N images given and frees
 * its temporaries; the result is the caller's to close.
 *
 * <p>The Fashion-MNIST classifier ships in the jar ({@link #bundledFashionMnist}); {@code train-classifier} makes
 * others ({@link #load}).
 */
public final class Classifier implements AutoCloseable {
    /** The jar resource of the shipped Fashion-MNIST classifier. */
    public static final String BUNDLED_RESOURCE = "/facm/classifier/fashion-mnist-classifier.safetensors";

    private final ClassifierNetwork network;
    private final Map<String, String> metadata;
    private final String source;
    private GemmPrecision precision = GemmPrecision.FP32;

    Classifier(ClassifierWeights weights, Map<String, String> metadata, String source) {
        this.network = new ClassifierNetwork(weights);
        this.metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
        this.source = source;
    }

    /** An untrained classifier with {@link ClassifierWeights#initialize} weights (for training). */
    public static Classifier initialize(ClassifierConfig config, Backend be, long seed) {
        return from(new ClassifierWeights.Loaded(ClassifierWeights.initialize(config, be, seed), Map.of()),
                "untrained classifier (seed " + seed + ")");
    }

    /** A classifier file written by train-classifier; one-line errors for anything else. */
    public static Classifier load(Path file, Backend be) {
        try {
            return from(ClassifierWeights.load(file, file.toString(), be), file.toString());
        } catch (java.nio.file.NoSuchFileException e) {
            throw new CheckpointException("classifier file not found: " + file, e);
        } catch (IOException e) {
            throw new CheckpointException("cannot read classifier file " + file + ": " + e, e);
        }
    }

    /** The Fashion-MNIST classifier in the jar (32×32×1 images, 10 classes; its test accuracy is in describe()). */
    public static Classifier bundledFashionMnist(Backend be) {
        String source = "bundled " + BUNDLED_RESOURCE.substring(BUNDLED_RESOURCE.lastIndexOf('/') + 1);
        Path tmp = null;
        try (InputStream in = Classifier.class.getResourceAsStream(BUNDLED_RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException("the jar has no " + BUNDLED_RESOURCE + " (a build without the "
                        + "shipped classifier?)");
            }
            // The safetensors reader maps files; the resource may sit inside a jar, so it is read from a copy.
            tmp = Files.createTempFile("facm-classifier", ".safetensors");
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            return from(ClassifierWeights.load(tmp, source, be), source);
        } catch (IOException e) {
            throw new CheckpointException("cannot read the " + source + ": " + e, e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // a temporary file left behind is harmless
                }
            }
        }
    }

    private static Classifier from(ClassifierWeights.Loaded loaded, String source) {
        try {
            return new Classifier(loaded.weights(), loaded.metadata(), source);
        } catch (RuntimeException e) {
            loaded.weights().close();
            throw e;
        }
    }

    /** FP32 (default) or TF32 products; BF16 casts before each GEMM as the other networks do. */
    public Classifier precision(GemmPrecision p) {
        this.precision = p;
        return this;
    }

    public ClassifierConfig config() {
        return network.weights().config();
    }

    public ClassifierWeights weights() {
        return network.weights();
    }

    public Backend backend() {
        return network.weights().backend();
    }

    /** Length of a feature vector (the token width). */
    public int featureDim() {
        return config().width();
    }

    public int numClasses() {
        return config().numClasses();
    }

    /** Feature vectors {@code [N, featureDim]} of images {@code [N, C, H, W]}; the caller closes the result. */
    public Tensor features(Tensor images) {
        try (ForwardPass pass = new ForwardPass(backend(), precision, null)) {
            return pass.keep(network.features(pass, images));
        }
    }

    /** Logits {@code [N, numClasses]} of images {@code [N, C, H, W]}; the caller closes the result. */
    public Tensor logits(Tensor images) {
        try (ForwardPass pass = new ForwardPass(backend(), precision, null)) {
            return pass.keep(network.logits(pass, images));
        }
    }

    /** Features and logits of the same images from one pass; closing closes both. */
    public record Outputs(Tensor features, Tensor logits) implements AutoCloseable {
        @Override
        public void close() {
            try {
                features.close();
            } finally {
                logits.close();
            }
        }
    }

    /** {@link #features} and {@link #logits} of {@code images} in one pass (the head runs on the features). */
    public Outputs featuresAndLogits(Tensor images) {
        try (ForwardPass pass = new ForwardPass(backend(), precision, null)) {
            Tensor f = network.features(pass, images);
            Tensor z = network.head(pass, f);
            return new Outputs(pass.keep(f), pass.keep(z));
        }
    }

    /**
     * Training: logits recorded on {@code tape} (its parameters are this classifier's weights, registered by the
     * caller); images must stay open until the backward has run. The caller closes the result.
     */
    public Tensor logits(Tensor images, Tape tape) {
        try (ForwardPass pass = new ForwardPass(backend(), precision, tape)) {
            return pass.keep(network.logits(pass, images));
        }
    }

    /**
     * The fraction of the first {@code count} samples of {@code data} (all of them when count &lt;= 0 or larger) whose
     * arg-max logit is their label, evaluated {@code batch} images at a time.
     */
    public double accuracy(Dataset data, int count, int batch) {
        int n = count <= 0 ? data.size() : Math.min(count, data.size());
        if (n == 0 || batch < 1) {
            throw new IllegalArgumentException("accuracy: nothing to evaluate (" + n + " samples, batch " + batch
                    + ") on " + data.describe());
        }
        Backend be = backend();
        int len = data.sampleLength();
        long correct = 0;
        for (int start = 0; start < n; start += batch) {
            int b = Math.min(batch, n - start);
            float[] images = new float[b * len];
            for (int i = 0; i < b; i++) {
                data.read(start + i, images, i * len);
            }
            try (Tensor x = be.upload("images", images, b, data.channels(), data.height(), data.width());
                 Tensor z = logits(x)) {
                int[] predicted = argmaxRows(be.download(z), numClasses());
                for (int i = 0; i < b; i++) {
                    if (predicted[i] == data.label(start + i)) {
                        correct++;
                    }
                }
            }
        }
        return (double) correct / n;
    }

    /** Index of the largest value of each row of a row-major {@code [rows, k]} array (first one on ties). */
    public static int[] argmaxRows(float[] values, int k) {
        int rows = values.length / k;
        int[] out = new int[rows];
        for (int r = 0; r < rows; r++) {
            int best = 0;
            for (int i = 1; i < k; i++) {
                if (values[r * k + i] > values[r * k + best]) {
                    best = i;
                }
            }
            out[r] = best;
        }
        return out;
    }

    /** The file's metadata (accuracy, data, epochs, command, config, format). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** One line: where it came from, the architecture, and the test accuracy its file records. */
    public String describe() {
        String accuracy = "test accuracy not recorded";
        try {
            double acc = Double.parseDouble(metadata.getOrDefault("test_accuracy", ""));
            accuracy = String.format(Locale.ROOT, "test accuracy %.2f %% on %s", 100 * acc,
                    metadata.getOrDefault("test_data", "?"));
        } catch (NumberFormatException notRecorded) {
            // keep the default
        }
        return source + ": " + config().summary() + ", " + accuracy;
    }

    /** Writes the weights with {@code metadata} (e.g. accuracy, data, command) to a classifier file. */
    public void save(Path file, Map<String, String> extraMetadata) throws IOException {
        network.weights().save(file, extraMetadata);
    }

    @Override
    public void close() {
        network.close();
        network.weights().close();
    }

    @Override
    public String toString() {
        return describe();
    }
}
