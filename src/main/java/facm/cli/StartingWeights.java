package facm.cli;

import facm.checkpoint.CheckpointException;
import facm.model.ModelCheckpoint;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.training.EmaSet;
import facm.training.ModelInitializer;
import facm.training.TrainState;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * Where a run's weights come from (facm-spec.md §5.4): the teacher of a distillation run is the sampling EMA of its
 * checkpoint (the last EMA of a training checkpoint of ours, e.g. power_0.2; the plain weights of any other file),
 * and the student starts as a copy of those same weights, plus a zero-initialized auxiliary time embedder when the
 * student has one and the teacher does not (§3.7).
 */
final class StartingWeights {
    private StartingWeights() {
    }

    /** A checkpoint file and the key prefix of the weights to read from it ("" or "ema.NAME."). */
    record Source(Path file, String prefix, ModelConfig config) {
        String describe() {
            return file + (prefix.isEmpty() ? " (model weights)" : " (EMA " + prefix.substring(4, prefix.length() - 1)
                    + ")");
        }
    }

    /** The teacher's weights in {@code file}: the last EMA of a training checkpoint, else the model itself. */
    static Source teacherSource(Path file, ModelConfig fallback) throws IOException {
        String prefix = "";
        try {
            List<EmaSet.Spec> emas = EmaSet.parse(TrainState.peek(file).options().ema());
            if (!emas.isEmpty()) {
                prefix = "ema." + emas.get(emas.size() - 1).toString().replace(':', '_') + ".";
            }
        } catch (CheckpointException notATrainingCheckpoint) {
            // a converted or exported model file: its plain weights
        }
        return new Source(file, prefix, ModelCheckpoint.configOf(file, fallback));
    }

    /** The frozen teacher. */
    static ModelWeights teacher(Source s, Backend be) throws IOException {
        return ModelCheckpoint.load(s.file(), s.config(), be, s.prefix());
    }

    /**
     * The student {@code config} initialized from {@code s} (the teacher's weights), with a new auxiliary time embedder
     * (second linear zero) when {@code config} has one and the source does not.
     */
    static ModelWeights studentFrom(Source s, ModelConfig config, Backend be, long seed) throws IOException {
        return ModelInitializer.initializeFrom(s.file(), s.prefix(), config, be, seed);
    }
}
