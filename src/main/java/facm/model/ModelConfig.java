package facm.model;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;

/**
 * A LightningDiT configuration (facm-spec.md §3.1, §3.5, §3.7). Immutable and validated at construction; printed at the
 * start of every run and stored as JSON in every checkpoint's metadata.
 *
 * @param name        preset name ("XL/1", "tiny", ...) or "custom"
 * @param depth       number of blocks
 * @param hidden      model width D
 * @param heads       attention heads (head dim = hidden / heads)
 * @param patch       patch size p (1 or 2 in the presets)
 * @param inputSize   latent/image height = width
 * @param inChannels  channels of the model input and output
 * @param numClasses  class labels; the class table has numClasses + 1 rows (last = null class)
 * @param qkNorm      RMSNorm on q and k per head
 * @param rope        2-D rotary embedding on q and k
 * @param auxTime     auxiliary time embedder for r (§3.7)
 */
public record ModelConfig(String name, int depth, int hidden, int heads, int patch, int inputSize, int inChannels,
                          int numClasses, boolean qkNorm, boolean rope, boolean auxTime) {

    /** Width of the sinusoidal time features (§3.2 step 3). */
    public static final int TIME_FEATURES = 256;
    public static final float MAX_PERIOD = 10000f;
    public static final float NORM_EPS = 1e-6f;

    private static final Gson GSON = new GsonBuilder().create();

    public ModelConfig {
        if (name == null || name.isBlank()) {
            name = "custom";
        }
        require(depth >= 1, "depth must be >= 1, got " + depth);
        require(hidden >= 2 && heads >= 1 && hidden % heads == 0,
                "hidden (" + hidden + ") must be a positive multiple of heads (" + heads + ")");
        require(patch >= 1, "patch must be >= 1, got " + patch);
        require(inputSize >= patch && inputSize % patch == 0,
                "input size " + inputSize + " must be a multiple of the patch size " + patch);
        require(inChannels >= 1, "in channels must be >= 1, got " + inChannels);
        require(numClasses >= 1, "num classes must be >= 1, got " + numClasses);
        require(!rope || (hidden / heads) % 4 == 0,
                "RoPE needs a head dim divisible by 4 (two axes of rotation pairs), got " + hidden / heads);
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("invalid model config: " + message);
        }
    }

    public int headDim() {
        return hidden / heads;
    }

    /** Tokens per side and in all. */
    public int gridSize() {
        return inputSize / patch;
    }

    public int tokens() {
        return gridSize() * gridSize();
    }

    /** Features per token before the patch embedding and after the final linear layer: C·p². */
    public int patchFeatures() {
        return inChannels * patch * patch;
    }

    /** SwiGLU hidden width F = floor(2/3 · 4 · D) (§3.1). */
    public int mlpHidden() {
        return (int) (2L * 4 * hidden / 3);
    }

    /** Row index of the null (unconditional) class in the class table. */
    public int nullClass() {
        return numClasses;
    }

    public String toJson() {
        return GSON.toJson(this);
    }

    /** Parses {@link #toJson()} output; every field is required and a missing or mistyped one is named. */
    public static ModelConfig fromJson(String json) {
        JsonObject raw;
        try {
            raw = JsonParser.parseString(json).getAsJsonObject();
        } catch (JsonParseException | IllegalStateException e) {
            throw new IllegalArgumentException("model config is not a JSON object: " + e.getMessage(), e);
        }
        // Accept the PyTorch reference's snake_case names (in_channels, qk_norm, ...) as well as ours.
        JsonObject o = new JsonObject();
        for (var e : raw.entrySet()) {
            o.add(e.getKey().replace("_", "").toLowerCase(java.util.Locale.ROOT), e.getValue());
        }
        return new ModelConfig(o.has("name") ? o.get("name").getAsString() : "custom", intField(o, "depth"),
                intField(o, "hidden"), intField(o, "heads"), intField(o, "patch"), intField(o, "inputSize"),
                intField(o, "inChannels"), intField(o, "numClasses"), boolField(o, "qkNorm"), boolField(o, "rope"),
                boolField(o, "auxTime"));
    }

    private static JsonElement field(JsonObject o, String key) {
        JsonElement e = o.get(key.toLowerCase(java.util.Locale.ROOT));
        if (e == null || e.isJsonNull()) {
            throw new IllegalArgumentException("model config JSON lacks '" + key + "'");
        }
        return e;
    }

    private static int intField(JsonObject o, String key) {
        try {
            return field(o, key).getAsInt();
        } catch (NumberFormatException | UnsupportedOperationException | IllegalStateException e) {
            throw new IllegalArgumentException("model config field '" + key + "' is not an integer: "
                    + o.get(key.toLowerCase(java.util.Locale.ROOT)));
        }
    }

    private static boolean boolField(JsonObject o, String key) {
        JsonElement e = field(o, key);
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) {
            throw new IllegalArgumentException("model config field '" + key + "' is not true/false: " + e);
        }
        return e.getAsBoolean();
    }

    /** Same architecture with another input geometry or class count (e.g. a preset applied to other data). */
    public ModelConfig withData(int newInputSize, int newInChannels, int newNumClasses) {
        return new ModelConfig(name, depth, hidden, heads, patch, newInputSize, newInChannels, newNumClasses, qkNorm,
                rope, auxTime);
    }

    /** The same network with (or without) the auxiliary time embedder of §3.7. */
    public ModelConfig withAuxTime(boolean on) {
        return new ModelConfig(name, depth, hidden, heads, patch, inputSize, inChannels, numClasses, qkNorm, rope, on);
    }

    public ModelConfig withDepth(int newDepth) {
        return new ModelConfig(name + "-d" + newDepth, newDepth, hidden, heads, patch, inputSize, inChannels,
                numClasses, qkNorm, rope, auxTime);
    }

    /** One line for logs. */
    public String summary() {
        return String.format(java.util.Locale.ROOT,
                "%s: depth %d, hidden %d, heads %d (dh %d), patch %d, input %dx%dx%d (%d tokens), %d classes, "
                        + "SwiGLU %d, qk-norm %s, rope %s, aux-time %s, %,d parameters",
                name, depth, hidden, heads, headDim(), patch, inChannels, inputSize, inputSize, tokens(), numClasses,
                mlpHidden(), qkNorm ? "on" : "off", rope ? "on" : "off", auxTime ? "on" : "off",
                ParameterTable.of(this).parameterCount());
    }
}
