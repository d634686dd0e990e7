package facm.classifier;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The architecture of a {@link Classifier}: a small pre-norm vision transformer. Images {@code [N, C, S, S]} are cut
 * into (S/p)² patches of C·p² values, embedded to {@code width} plus a fixed 2-D sin-cos position table, run through
 * {@code depth} blocks (RMSNorm → multi-head attention → residual, RMSNorm → SwiGLU MLP of {@code mlpHidden} →
 * residual), normalized once more and averaged over the tokens: that mean is the feature vector ({@code width}
 * values, what FID compares). A linear head maps it to {@code numClasses} logits. Immutable and validated; stored as
 * JSON in every classifier file's metadata.
 *
 * @param channels   image channels C
 * @param imageSize  image height = width S
 * @param patch      patch side p (S must be a multiple of it)
 * @param width      token width D (a multiple of 4 for the position table, and of heads)
 * @param depth      transformer blocks
 * @param heads      attention heads; the head dimension D/heads must be even, and on CUDA one the attention kernels
 *                   are built for (16, 32, 64, 72 or 128; the CPU takes any)
 * @param mlpHidden  SwiGLU hidden width F
 * @param numClasses classes K
 */
public record ClassifierConfig(int channels, int imageSize, int patch, int width, int depth, int heads, int mlpHidden,
                               int numClasses) {
    /** RMSNorm epsilon of every norm. */
    public static final float NORM_EPS = 1e-6f;

    public ClassifierConfig {
        require(channels >= 1, "channels must be >= 1, got " + channels);
        require(patch >= 1 && imageSize >= patch && imageSize % patch == 0,
                "image size " + imageSize + " must be a positive multiple of the patch size " + patch);
        require(width >= 4 && width % 4 == 0, "width must be a positive multiple of 4, got " + width);
        require(depth >= 0, "depth must be >= 0, got " + depth);
        require(heads >= 1 && width % heads == 0 && (width / heads) % 2 == 0,
                "width " + width + " must split into " + heads + " heads of an even size");
        require(mlpHidden >= 1, "mlp hidden width must be >= 1, got " + mlpHidden);
        require(numClasses >= 1, "classes must be >= 1, got " + numClasses);
    }

    /**
     * The shipped Fashion-MNIST classifier's architecture: 32×32×1 images as facm.data pads them, 8×8 patches (16
     * tokens), width 128, 2 blocks of 4 heads, SwiGLU 256, 10 classes (340,234 parameters). Few, large tokens: on a
     * 2-core CPU this learns far more per second than 4×4 patches (64 tokens; 82.9 % after 3 epochs and 17 minutes),
     * and more accurately than 16×16 patches (4 tokens) for the same time.
     */
    public static ClassifierConfig fashionMnist() {
        return new ClassifierConfig(1, 32, 8, 128, 2, 4, 256, 10);
    }

    /** The same architecture for other images and classes. */
    public ClassifierConfig withData(int newChannels, int newImageSize, int newClasses) {
        return new ClassifierConfig(newChannels, newImageSize, patch, width, depth, heads, mlpHidden, newClasses);
    }

    public int gridSize() {
        return imageSize / patch;
    }

    public int tokens() {
        return gridSize() * gridSize();
    }

    /** Values per patch: C·p². */
    public int patchFeatures() {
        return channels * patch * patch;
    }

    public int headDim() {
        return width / heads;
    }

    /** Every trainable tensor with its shape, in file order (PyTorch layout: linear weights are [out, in]). */
    public Map<String, int[]> parameterShapes() {
        Map<String, int[]> m = new LinkedHashMap<>();
        m.put("patch_embed.weight", new int[] {width, patchFeatures()});
        m.put("patch_embed.bias", new int[] {width});
        for (int i = 0; i < depth; i++) {
            String b = "blocks." + i + ".";
            m.put(b + "norm1.weight", new int[] {width});
            m.put(b + "attn.qkv.weight", new int[] {3 * width, width});
            m.put(b + "attn.qkv.bias", new int[] {3 * width});
            m.put(b + "attn.proj.weight", new int[] {width, width});
            m.put(b + "attn.proj.bias", new int[] {width});
            m.put(b + "norm2.weight", new int[] {width});
            m.put(b + "mlp.w12.weight", new int[] {2 * mlpHidden, width});
            m.put(b + "mlp.w12.bias", new int[] {2 * mlpHidden});
            m.put(b + "mlp.w3.weight", new int[] {width, mlpHidden});
            m.put(b + "mlp.w3.bias", new int[] {width});
        }
        m.put("norm.weight", new int[] {width});
        m.put("head.weight", new int[] {numClasses, width});
        m.put("head.bias", new int[] {numClasses});
        return m;
    }

    public long parameterCount() {
        long n = 0;
        for (int[] shape : parameterShapes().values()) {
            long e = 1;
            for (int d : shape) {
                e *= d;
            }
            n += e;
        }
        return n;
    }

    /** One line for logs. */
    public String summary() {
        return String.format(Locale.ROOT, "ViT classifier: %dx%dx%d images, patch %d (%d tokens), width %d, depth %d, "
                        + "heads %d, SwiGLU %d, %d classes, %,d parameters", channels, imageSize, imageSize, patch,
                tokens(), width, depth, heads, mlpHidden, numClasses, parameterCount());
    }

    public String toJson() {
        JsonObject o = new JsonObject();
        o.addProperty("channels", channels);
        o.addProperty("image_size", imageSize);
        o.addProperty("patch", patch);
        o.addProperty("width", width);
        o.addProperty("depth", depth);
        o.addProperty("heads", heads);
        o.addProperty("mlp_hidden", mlpHidden);
        o.addProperty("num_classes", numClasses);
        return o.toString();
    }

    /** Parses {@link #toJson()}; a missing or non-integer field is named. */
    public static ClassifierConfig fromJson(String json) {
        JsonObject o;
        try {
            o = JsonParser.parseString(json).getAsJsonObject();
        } catch (JsonParseException | IllegalStateException e) {
            throw new IllegalArgumentException("classifier config is not a JSON object: " + json);
        }
        return new ClassifierConfig(intField(o, "channels"), intField(o, "image_size"), intField(o, "patch"),
                intField(o, "width"), intField(o, "depth"), intField(o, "heads"), intField(o, "mlp_hidden"),
                intField(o, "num_classes"));
    }

    private static int intField(JsonObject o, String key) {
        JsonElement e = o.get(key);
        if (e == null || e.isJsonNull()) {
            throw new IllegalArgumentException("classifier config lacks '" + key + "'");
        }
        try {
            if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
                throw new NumberFormatException();
            }
            return e.getAsInt();
        } catch (NumberFormatException ex) {
            throw new IllegalArgumentException("classifier config field '" + key + "' is not an integer: " + e);
        }
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("invalid classifier config: " + message);
        }
    }
}
