package facm.training;

import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The EMA copies of one training run, made from a spec like {@code power:0.05,power:0.2} (FACM, §5.6) or
 * {@code classic:0.9999} (LightningDiT stage 1); {@code none} or an empty spec keeps no EMA. All copies are updated
 * after every applied optimizer step.
 */
public final class EmaSet implements AutoCloseable {
    private final List<Ema> emas;
    /** Device-update state ({@link #enableDeviceUpdate}), one per copy in order; empty before. */
    private final List<Tensor> deviceUpdates = new ArrayList<>();
    private final List<Tensor> decayTables = new ArrayList<>();

    private EmaSet(List<Ema> emas) {
        this.emas = Collections.unmodifiableList(emas);
    }

    /** One parsed item of an EMA spec. */
    public record Spec(String kind, double value) {
        @Override
        public String toString() {
            return kind + ":" + number(value);
        }
    }

    /** Parses and validates a spec without allocating anything (for early, clear errors). */
    public static List<Spec> parse(String spec) {
        List<Spec> out = new ArrayList<>();
        if (spec == null || spec.isBlank() || spec.trim().equalsIgnoreCase("none")) {
            return out;
        }
        Set<String> seen = new LinkedHashSet<>();
        for (String item : spec.split(",")) {
            String t = item.trim().toLowerCase(Locale.ROOT);
            int colon = t.indexOf(':');
            if (colon < 0) {
                throw new IllegalArgumentException("EMA '" + item.trim() + "': write kind:value, e.g. power:0.2 or "
                        + "classic:0.9999");
            }
            String kind = t.substring(0, colon);
            double value;
            try {
                value = Double.parseDouble(t.substring(colon + 1));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("EMA '" + item.trim() + "': '" + t.substring(colon + 1)
                        + "' is not a number");
            }
            switch (kind) {
                case "power" -> PowerEma.gamma(value);
                case "classic" -> {
                    if (!(value >= 0 && value < 1)) {
                        throw new IllegalArgumentException("EMA '" + item.trim() + "': decay must be in [0, 1)");
                    }
                }
                default -> throw new IllegalArgumentException("EMA '" + item.trim() + "': kind must be power or "
                        + "classic, not '" + kind + "'");
            }
            Spec s = new Spec(kind, value);
            if (!seen.add(s.toString())) {
                throw new IllegalArgumentException("EMA '" + s + "' is listed twice");
            }
            out.add(s);
        }
        return out;
    }

    /** The EMAs of {@code spec}, each starting as a copy of {@code model}. */
    public static EmaSet create(String spec, ModelWeights model) {
        List<Ema> made = new ArrayList<>();
        try {
            for (Spec s : parse(spec)) {
                made.add(s.kind().equals("power") ? new PowerEma(s.value(), model) : new ClassicEma(s.value(), model));
            }
        } catch (RuntimeException e) {
            made.forEach(Ema::close);
            throw e;
        }
        return new EmaSet(made);
    }

    public List<Ema> all() {
        return emas;
    }

    public boolean isEmpty() {
        return emas.isEmpty();
    }

    /** The EMA called {@code name} ("power_0.2"; the spec spelling "power:0.2" works too), or an error listing them. */
    public Ema get(String name) {
        String want = name.trim().toLowerCase(Locale.ROOT).replace(':', '_');
        for (Ema e : emas) {
            if (e.name().equals(want)) {
                return e;
            }
        }
        throw new IllegalArgumentException("no EMA '" + name + "' in this run; it has "
                + emas.stream().map(Ema::name).toList());
    }

    /**
     * The copy used for sample grids: the last one listed (for {@code power:0.05,power:0.2} the σ_rel = 0.2 copy FACM
     * evaluates with), or null when there is none.
     */
    public Ema forSampling() {
        return emas.isEmpty() ? null : emas.get(emas.size() - 1);
    }

    /**
     * Updates every copy towards {@code model}: the k-th update of each copy as {@link Ema#update} does it, through
     * {@link TrainingOps#emaUpdateForeach} (one launch per copy on CUDA, bit-identical to Ema's per-tensor loop).
     */
    public void update(ModelWeights model) {
        TrainingOps ops = model.backend().training();
        for (Ema e : emas) {
            long k = e.updates() + 1;
            ops.emaUpdateForeach(trainable(e.weights(), e.weights()), trainable(e.weights(), model), e.decay(k));
            e.restoreUpdates(k);
        }
    }

    /**
     * Prepares {@link #updateOnDevice} for updates up to {@code lastUpdate}: per copy a device copy of its update count
     * and a table of β_k = {@link Ema#decay}(k) for k = 1 … lastUpdate (index 0 unused). Calling it again (after a
     * restore) uploads the counts again.
     */
    public void enableDeviceUpdate(int lastUpdate) {
        closeDeviceUpdates();
        for (Ema e : emas) {
            Backend be = e.weights().backend();
            double[] table = new double[Math.addExact(lastUpdate, 1)];
            for (int k = 1; k <= lastUpdate; k++) {
                table[k] = e.decay(k);
            }
            decayTables.add(Fp64Table.upload(be, "ema." + e.name() + ".decays", table));
            deviceUpdates.add(be.upload("ema." + e.name() + ".updates", new int[] {Math.toIntExact(e.updates())}, 1));
        }
    }

    /**
     * {@link #update} with each copy's decay from its device counter, skipped on the device when {@code control}'s
     * skip flag is set (no host read; capturable): one {@link TrainingOps#emaUpdateForeach} per copy, then its counter
     * advances unless skipped. {@link Ema#updates()} is stale until {@link #pullDeviceUpdates}.
     */
    public void updateOnDevice(ModelWeights model, TrainingOps ops, Tensor control) {
        if (deviceUpdates.size() != emas.size()) {
            throw new IllegalStateException("EMAs: updateOnDevice before enableDeviceUpdate");
        }
        for (int i = 0; i < emas.size(); i++) {
            ModelWeights average = emas.get(i).weights();
            ops.emaUpdateForeach(trainable(average, average), trainable(average, model), decayTables.get(i),
                    deviceUpdates.get(i), control);
            ops.advanceCounter(deviceUpdates.get(i), control);
        }
    }

    /** Copies the device update counts into {@link Ema#updates()} (one synchronizing read per copy). */
    public void pullDeviceUpdates() {
        for (int i = 0; i < deviceUpdates.size(); i++) {
            Tensor count = deviceUpdates.get(i);
            emas.get(i).restoreUpdates(count.backend().downloadInts(count)[0]);
        }
    }

    /** The trainable tensors of {@code from}, in the order of {@code table}'s parameter table. */
    private static List<Tensor> trainable(ModelWeights table, ModelWeights from) {
        List<Tensor> out = new ArrayList<>();
        for (ParameterTable.Entry e : table.table().entries()) {
            if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                out.add(from.get(e.key()));
            }
        }
        return out;
    }

    private void closeDeviceUpdates() {
        deviceUpdates.forEach(Tensor::close);
        decayTables.forEach(Tensor::close);
        deviceUpdates.clear();
        decayTables.clear();
    }

    /** The spec that recreates this set, e.g. "power:0.05,power:0.2" ("none" when empty). */
    public String spec() {
        return emas.isEmpty() ? "none" : String.join(",", emas.stream().map(Ema::spec).toList());
    }

    /** Shortest plain decimal of a value, for names: 0.2 → "0.2", 1e-4 → "0.0001". */
    static String number(double v) {
        return BigDecimal.valueOf(v).stripTrailingZeros().toPlainString();
    }

    @Override
    public void close() {
        closeDeviceUpdates();
        emas.forEach(Ema::close);
    }
}
