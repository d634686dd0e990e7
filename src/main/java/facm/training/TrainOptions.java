package facm.training;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Everything a training run is configured with, validated at construction, printed at the start, written to
 * {@code config.json} and into every checkpoint. JSON keys are the {@code train} flags without dashes, in snake_case
 * ({@code weight_decay}, {@code log_every}); a config file may use dashes too. Unknown keys are errors.
 *
 * @param objective   "fm" (stage-1 flow matching, facm-spec.md §4)
 * @param model       model preset (ignored with {@code init}: the checkpoint's config is used)
 * @param data        dataset spec ("fashion-mnist", a folder of IDX files, latent shards or image class folders)
 * @param steps       total optimizer iterations (skipped ones included)
 * @param batch       samples per step
 * @param gradClip    global L2 norm to clip to; 0 = no clipping
 * @param ema         EMA spec, e.g. "power:0.05,power:0.2", "classic:0.9999" or "none"
 * @param precision   fp32, tf32 or bf16 (bf16 GEMMs with fp32 accumulation; master weights stay fp32)
 * @param init        checkpoint to start from (model weights only), or null for the §3.6 initialization
 * @param ckptEvery   steps between checkpoints (0 = only at the end)
 * @param sampleEvery steps between sample grids (0 = never; image data only)
 * @param sampleSteps Euler steps of the sample grids
 * @param labelDropout     fm: probability of replacing a label by the null class (§4: 0.1)
 * @param expandedInterval fm: the second half of each batch gets time input 2 − t (§4)
 * @param stage2      facm, scm and meanflow: the stage-2 hyper-parameters of §5.1 and §5.7
 */
public record TrainOptions(String objective, String model, String data, int steps, int batch, float lr, float beta1,
                           float beta2, float eps, float weightDecay, float gradClip, String ema, String device,
                           String precision, long seed, String out, String init, int logEvery, int ckptEvery,
                           int sampleEvery, int sampleSteps, float labelDropout, boolean expandedInterval,
                           Stage2 stage2) {

    public static final List<String> OBJECTIVES = List.of("facm", "fm", "scm", "meanflow");

    /**
     * The stage-2 options (facm-spec.md §5.1, §5.7); JSON keys as the field names in snake_case.
     *
     * @param teacher     checkpoint of the frozen teacher (distillation), or null: ground-truth velocity (§5.2b)
     * @param timeSampler "default" (arctan of a lognormal) or "log" (logit-normal)
     * @param timeMean    mean of n (log σ), §5.1: −0.8
     * @param timeStd     std of n, §5.1: 1.6
     * @param relaxP      p of α(t) = 1 − t^p
     * @param cfgScale    guidance scale w baked into the teacher velocity (≤ 1: none)
     * @param cfgLow      guidance interval low end
     * @param cfgHigh     guidance interval high end
     * @param cmClip      elementwise clip of the FACM residual (0: none)
     * @param normEps     c of the norm-L2 weighting
     * @param scmWarmup   sCM tangent warm-up steps
     * @param r2tRatio    MeanFlow: fraction of samples with r = t
     * @param auxTime     the student gets the auxiliary time embedder (§3.7; required by meanflow)
     */
    public record Stage2(String teacher, String timeSampler, float timeMean, float timeStd, float relaxP,
                         float cfgScale, float cfgLow, float cfgHigh, float cmClip, float normEps, int scmWarmup,
                         float r2tRatio, boolean auxTime) {
    }
    public static final List<String> PRECISIONS = List.of("fp32", "tf32", "bf16");

    public TrainOptions {
        require(OBJECTIVES.contains(objective), "objective must be one of " + OBJECTIVES + ", got '" + objective + "'");
        require(model != null && !model.isBlank(), "model preset is empty");
        require(data != null && !data.isBlank(), "data is empty");
        require(steps >= 1, "steps must be >= 1, got " + steps);
        require(batch >= 1, "batch must be >= 1, got " + batch);
        try {
            new AdamW.Options(lr, beta1, beta2, eps, weightDecay);
            EmaSet.parse(ema);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("train options: " + e.getMessage(), e);
        }
        require(gradClip >= 0 && Float.isFinite(gradClip), "grad_clip must be >= 0 (0 = off), got " + gradClip);
        require(PRECISIONS.contains(precision), "precision must be one of " + PRECISIONS + ", got '" + precision + "'");
        require(out != null && !out.isBlank(), "out (the run folder) is required");
        require(logEvery >= 1, "log_every must be >= 1, got " + logEvery);
        require(ckptEvery >= 0, "ckpt_every must be >= 0 (0 = only at the end), got " + ckptEvery);
        require(sampleEvery >= 0, "sample_every must be >= 0 (0 = never), got " + sampleEvery);
        require(sampleSteps >= 1, "sample_steps must be >= 1, got " + sampleSteps);
        require(labelDropout >= 0 && labelDropout <= 1, "label_dropout must be in [0, 1], got " + labelDropout);
        require(stage2 != null, "stage-2 options are missing");
        require(!objective.equals("meanflow") || stage2.auxTime(), "meanflow needs the auxiliary time embedder for r: "
                + "set aux_time (--aux-time)");
        require(!objective.equals("scm") || !stage2.auxTime(), "scm does not use the auxiliary time embedder: drop "
                + "aux_time");
        require(!objective.equals("fm") || stage2.teacher() == null, "the fm objective trains a teacher; --teacher "
                + "is for facm, scm and meanflow");
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("train options: " + message);
        }
    }

    public AdamW.Options adamW() {
        return new AdamW.Options(lr, beta1, beta2, eps, weightDecay);
    }

    /** Defaults for every key except {@code betas}, which depend on the objective (see {@link #resolve}). */
    static Map<String, JsonElement> defaults() {
        Map<String, JsonElement> d = new LinkedHashMap<>();
        d.put("objective", new JsonPrimitive("facm"));
        d.put("model", new JsonPrimitive("tiny"));
        d.put("data", new JsonPrimitive("fashion-mnist"));
        d.put("steps", new JsonPrimitive(1000));
        d.put("batch", new JsonPrimitive(64));
        d.put("lr", new JsonPrimitive(1e-4f));
        d.put("eps", new JsonPrimitive(1e-8f));
        d.put("weight_decay", new JsonPrimitive(0f));
        d.put("grad_clip", new JsonPrimitive(1f));
        d.put("ema", new JsonPrimitive("power:0.05,power:0.2"));
        d.put("device", new JsonPrimitive("auto"));
        d.put("precision", new JsonPrimitive("fp32"));
        d.put("seed", new JsonPrimitive(0L));
        d.put("init", com.google.gson.JsonNull.INSTANCE);
        d.put("log_every", new JsonPrimitive(10));
        d.put("ckpt_every", new JsonPrimitive(1000));
        d.put("sample_every", new JsonPrimitive(1000));
        d.put("sample_steps", new JsonPrimitive(32));
        d.put("label_dropout", new JsonPrimitive(0.1f));
        d.put("expanded_interval", new JsonPrimitive(true));
        d.put("teacher", com.google.gson.JsonNull.INSTANCE);
        d.put("time_sampler", new JsonPrimitive("default"));
        d.put("time_mean", new JsonPrimitive(-0.8f));
        d.put("time_std", new JsonPrimitive(1.6f));
        d.put("relax_p", new JsonPrimitive(0.5f));
        d.put("cfg_scale", new JsonPrimitive(1.75f));
        d.put("cfg_interval", new JsonPrimitive("0.125,1.0"));
        d.put("cm_clip", new JsonPrimitive(1f));
        d.put("norm_eps", new JsonPrimitive(1e-3f));
        d.put("scm_warmup", new JsonPrimitive(10_000));
        d.put("r2t_ratio", new JsonPrimitive(0f));
        d.put("aux_time", new JsonPrimitive(false));
        return d;
    }

    /** AdamW betas by objective: LightningDiT stage 1 uses (0.9, 0.95) (§4); FACM stage 2 uses (0.9, 0.999) (§5.1). */
    static float[] defaultBetas(String objective) {
        return objective.equals("fm") ? new float[] {0.9f, 0.95f} : new float[] {0.9f, 0.999f};
    }

    private static final List<String> KEYS = List.of("objective", "model", "data", "steps", "batch", "lr", "betas",
            "eps", "weight_decay", "grad_clip", "ema", "device", "precision", "seed", "out", "init", "log_every",
            "ckpt_every", "sample_every", "sample_steps", "label_dropout", "expanded_interval", "teacher", "time_sampler",
            "time_mean", "time_std", "relax_p", "cfg_scale", "cfg_interval", "cm_clip", "norm_eps", "scm_warmup",
            "r2t_ratio", "aux_time");

    /**
     * Options from layers of JSON objects, later layers winning: the defaults, then each of {@code layers} (e.g. a
     * config file, then the flags given on the command line). Keys may use dashes or underscores.
     */
    public static TrainOptions resolve(JsonObject... layers) {
        Map<String, JsonElement> merged = defaults();
        for (JsonObject layer : layers) {
            if (layer == null) {
                continue;
            }
            for (Map.Entry<String, JsonElement> e : layer.entrySet()) {
                String key = e.getKey().trim().replace('-', '_').toLowerCase(Locale.ROOT);
                if (!KEYS.contains(key)) {
                    throw new IllegalArgumentException("train options: unknown key '" + e.getKey() + "' (known: "
                            + String.join(", ", KEYS) + ")");
                }
                merged.put(key, e.getValue());
            }
        }
        try {
            String objective = string(merged, "objective");
            if (string(merged, "out") == null) {
                merged.put("out", new JsonPrimitive("runs/" + objective)); // the default job's folder
            }
            float[] betas = merged.containsKey("betas") && !merged.get("betas").isJsonNull()
                    ? betas(merged.get("betas")) : defaultBetas(objective);
            return new TrainOptions(objective, string(merged, "model"), string(merged, "data"),
                    merged.get("steps").getAsInt(), merged.get("batch").getAsInt(), merged.get("lr").getAsFloat(),
                    betas[0], betas[1], merged.get("eps").getAsFloat(), merged.get("weight_decay").getAsFloat(),
                    merged.get("grad_clip").getAsFloat(), string(merged, "ema"), string(merged, "device"),
                    string(merged, "precision").toLowerCase(Locale.ROOT), merged.get("seed").getAsLong(),
                    string(merged, "out"), string(merged, "init"), merged.get("log_every").getAsInt(),
                    merged.get("ckpt_every").getAsInt(), merged.get("sample_every").getAsInt(),
                    merged.get("sample_steps").getAsInt(), merged.get("label_dropout").getAsFloat(),
                    bool(merged, "expanded_interval"), stage2(merged));
        } catch (NumberFormatException | UnsupportedOperationException | IllegalStateException e) {
            throw new IllegalArgumentException("train options: a value has the wrong type (" + e.getMessage() + ")", e);
        }
    }

    private static Stage2 stage2(Map<String, JsonElement> m) {
        float[] interval = pair(m.get("cfg_interval"), "cfg_interval", "low,high");
        return new Stage2(string(m, "teacher"), string(m, "time_sampler"), m.get("time_mean").getAsFloat(),
                m.get("time_std").getAsFloat(), m.get("relax_p").getAsFloat(), m.get("cfg_scale").getAsFloat(),
                interval[0], interval[1], m.get("cm_clip").getAsFloat(), m.get("norm_eps").getAsFloat(),
                m.get("scm_warmup").getAsInt(), m.get("r2t_ratio").getAsFloat(), bool(m, "aux_time"));
    }

    private static boolean bool(Map<String, JsonElement> m, String key) {
        JsonElement e = m.get(key);
        if (e.isJsonPrimitive() && e.getAsJsonPrimitive().isBoolean()) {
            return e.getAsBoolean();
        }
        if (e.isJsonPrimitive() && e.getAsJsonPrimitive().isString()) {
            String s = e.getAsString().trim().toLowerCase(Locale.ROOT);
            if (s.equals("true") || s.equals("false")) {
                return Boolean.parseBoolean(s);
            }
        }
        throw new IllegalArgumentException("train options: " + key + " must be true or false, got " + e);
    }

    private static String string(Map<String, JsonElement> m, String key) {
        JsonElement e = m.get(key);
        return e == null || e.isJsonNull() ? null : e.getAsString();
    }

    /** "0.9,0.95" or [0.9, 0.95]. */
    private static float[] betas(JsonElement e) {
        return pair(e, "betas", "beta1,beta2");
    }

    /** Two numbers: "a,b" or [a, b]. */
    private static float[] pair(JsonElement e, String key, String form) {
        String[] parts;
        if (e.isJsonArray()) {
            parts = new String[e.getAsJsonArray().size()];
            for (int i = 0; i < parts.length; i++) {
                parts[i] = e.getAsJsonArray().get(i).getAsString();
            }
        } else {
            parts = e.getAsString().split(",");
        }
        if (parts.length != 2) {
            throw new IllegalArgumentException("train options: " + key + " needs two numbers (" + form + "), got " + e);
        }
        return new float[] {Float.parseFloat(parts[0].trim()), Float.parseFloat(parts[1].trim())};
    }

    /** Parses a config file's text: one JSON object. */
    public static JsonObject parseObject(String json, String source) {
        try {
            JsonElement e = JsonParser.parseString(json);
            if (!e.isJsonObject()) {
                throw new IllegalArgumentException(source + " must hold one JSON object, found " + e);
            }
            return e.getAsJsonObject();
        } catch (JsonParseException e) {
            throw new IllegalArgumentException(source + " is not valid JSON: " + e.getMessage(), e);
        }
    }

    public JsonObject toJsonObject() {
        JsonObject o = new JsonObject();
        o.addProperty("objective", objective);
        o.addProperty("model", model);
        o.addProperty("data", data);
        o.addProperty("steps", steps);
        o.addProperty("batch", batch);
        o.addProperty("lr", lr);
        com.google.gson.JsonArray b = new com.google.gson.JsonArray();
        b.add(beta1);
        b.add(beta2);
        o.add("betas", b);
        o.addProperty("eps", eps);
        o.addProperty("weight_decay", weightDecay);
        o.addProperty("grad_clip", gradClip);
        o.addProperty("ema", ema);
        o.addProperty("device", device);
        o.addProperty("precision", precision);
        o.addProperty("seed", seed);
        o.addProperty("out", out);
        if (init != null) {
            o.addProperty("init", init);
        }
        o.addProperty("log_every", logEvery);
        o.addProperty("ckpt_every", ckptEvery);
        o.addProperty("sample_every", sampleEvery);
        o.addProperty("sample_steps", sampleSteps);
        o.addProperty("label_dropout", labelDropout);
        o.addProperty("expanded_interval", expandedInterval);
        if (stage2.teacher() != null) {
            o.addProperty("teacher", stage2.teacher());
        }
        o.addProperty("time_sampler", stage2.timeSampler());
        o.addProperty("time_mean", stage2.timeMean());
        o.addProperty("time_std", stage2.timeStd());
        o.addProperty("relax_p", stage2.relaxP());
        o.addProperty("cfg_scale", stage2.cfgScale());
        com.google.gson.JsonArray ci = new com.google.gson.JsonArray();
        ci.add(stage2.cfgLow());
        ci.add(stage2.cfgHigh());
        o.add("cfg_interval", ci);
        o.addProperty("cm_clip", stage2.cmClip());
        o.addProperty("norm_eps", stage2.normEps());
        o.addProperty("scm_warmup", stage2.scmWarmup());
        o.addProperty("r2t_ratio", stage2.r2tRatio());
        o.addProperty("aux_time", stage2.auxTime());
        return o;
    }

    /** One line, for checkpoint metadata. */
    public String toJson() {
        return toJsonObject().toString();
    }

    /** Indented, for config.json and the start-of-run printout. */
    public String toPrettyJson() {
        return new GsonBuilder().setPrettyPrinting().create().toJson(toJsonObject());
    }

    public static TrainOptions fromJson(String json) {
        return resolve(parseObject(json, "train options JSON"));
    }

    /**
     * What a resumed run may change: its length, its bookkeeping, where it runs, and where its folder and its data
     * now are (the data must be the same samples for the resumed run to equal an uninterrupted one).
     */
    public static final List<String> CHANGEABLE_ON_RESUME = List.of("steps", "log_every", "ckpt_every",
            "sample_every", "sample_steps", "device", "out", "data", "teacher");

    /**
     * The options of a resumed run: the checkpoint's, with the {@link #CHANGEABLE_ON_RESUME} keys of {@code requested}
     * applied. Any other requested key whose value differs from the checkpoint's is an error naming it (changing, say,
     * the learning rate would silently break the resumed run's equality with an uninterrupted one).
     */
    public static TrainOptions forResume(TrainOptions saved, JsonObject... requested) {
        JsonObject base = saved.toJsonObject();
        JsonObject[] layers = new JsonObject[requested.length + 1];
        layers[0] = base;
        System.arraycopy(requested, 0, layers, 1, requested.length);
        JsonObject wanted = resolve(layers).toJsonObject();
        JsonObject result = base.deepCopy();
        for (Map.Entry<String, JsonElement> e : wanted.entrySet()) {
            JsonElement was = base.get(e.getKey());
            if (e.getValue().equals(was)) {
                continue;
            }
            if (!CHANGEABLE_ON_RESUME.contains(e.getKey())) {
                throw new IllegalArgumentException("resume: " + e.getKey() + " is " + was + " in the checkpoint but "
                        + e.getValue() + " was asked for; a resumed run may change only "
                        + String.join(", ", CHANGEABLE_ON_RESUME));
            }
            result.add(e.getKey(), e.getValue());
        }
        return resolve(result);
    }
}
