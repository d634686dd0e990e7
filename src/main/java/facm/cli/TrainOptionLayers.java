package facm.cli;

import com.google.gson.JsonObject;
import facm.training.TrainOptions;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;

/**
 * The two option layers of {@link TrainCommand} that {@link TrainOptions#resolve} puts over the defaults: the
 * {@code --config} file (or the embedded default job), then the flags given on the command line.
 */
final class TrainOptionLayers {
    private TrainOptionLayers() {
    }

    /** The flags given on the command line, as a JSON layer over the config file. */
    static JsonObject flags(TrainCommand c) {
        JsonObject o = new JsonObject();
        put(o, "objective", c.objective);
        put(o, "model", c.model);
        put(o, "data", c.data);
        put(o, "steps", c.steps);
        put(o, "batch", c.batch);
        put(o, "lr", c.lr);
        put(o, "betas", c.betas);
        put(o, "eps", c.eps);
        put(o, "weight_decay", c.weightDecay);
        put(o, "grad_clip", c.gradClip);
        put(o, "ema", c.ema);
        put(o, "device", c.device);
        put(o, "precision", c.precision);
        put(o, "seed", c.seed);
        put(o, "out", c.out == null ? null : c.out.toString());
        put(o, "init", c.init == null ? null : c.init.toString());
        put(o, "log_every", c.logEvery);
        put(o, "ckpt_every", c.ckptEvery);
        put(o, "sample_every", c.sampleEvery);
        put(o, "sample_steps", c.sampleSteps);
        put(o, "label_dropout", c.labelDropout);
        if (c.expandedInterval != null) {
            o.addProperty("expanded_interval", c.expandedInterval);
        }
        put(o, "teacher", c.teacher == null ? null : c.teacher.toString());
        put(o, "time_sampler", c.timeSampler);
        put(o, "time_mean", c.timeMean);
        put(o, "time_std", c.timeStd);
        put(o, "relax_p", c.relaxP);
        put(o, "cfg_scale", c.cfgScale);
        put(o, "cfg_interval", c.cfgInterval);
        put(o, "cm_clip", c.cmClip);
        put(o, "norm_eps", c.normEps);
        put(o, "scm_warmup", c.scmWarmup);
        put(o, "r2t_ratio", c.r2tRatio);
        if (c.auxTime != null) {
            o.addProperty("aux_time", c.auxTime);
        }
        return o;
    }

    private static void put(JsonObject o, String key, Object v) {
        if (v instanceof Number n) {
            o.addProperty(key, n);
        } else if (v != null) {
            o.addProperty(key, v.toString());
        }
    }

    /**
     * The --config layer: the file, or the embedded default job for {@code --config default} and for a bare
     * {@code train} (no flags at all; the flags' own defaults are the reference values of facm-spec §5.1, sized for
     * XL/1 on 64 GPUs, while the default job is sized to finish on a 2-core CPU).
     */
    static JsonObject configLayer(TrainCommand c) throws IOException {
        boolean bare = flags(c).isEmpty() && c.config == null && !c.resume;
        if (bare || (c.config != null && c.config.toString().equals("default"))) {
            try (java.io.InputStream in = TrainCommand.class.getResourceAsStream(TrainCommand.DEFAULT_JOB)) {
                if (in == null) {
                    throw new IllegalStateException("the jar lacks its default job " + TrainCommand.DEFAULT_JOB);
                }
                if (bare) {
                    System.out.println("no arguments: the default job (" + TrainCommand.DEFAULT_JOB + " in the jar; "
                            + "the same as train --config default); train --help lists the options");
                }
                return TrainOptions.parseObject(new String(in.readAllBytes(), StandardCharsets.UTF_8),
                        TrainCommand.DEFAULT_JOB);
            }
        }
        return c.config == null ? null
                : TrainOptions.parseObject(Files.readString(c.config, StandardCharsets.UTF_8), c.config.toString());
    }
}
