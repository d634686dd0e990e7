package facm.training;

import facm.model.ModelWeights;

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

    /** Updates every copy towards {@code model}. */
    public void update(ModelWeights model) {
        for (Ema e : emas) {
            e.update(model);
        }
    }

    /** {@link Ema#enableDeviceUpdate} on every copy. */
    public void enableDeviceUpdate(int lastUpdate) {
        emas.forEach(e -> e.enableDeviceUpdate(lastUpdate));
    }

    /** {@link Ema#updateOnDevice} on every copy. */
    public void updateOnDevice(ModelWeights model, facm.tensor.TrainingOps ops, facm.tensor.Tensor control) {
        for (Ema e : emas) {
            e.updateOnDevice(model, ops, control);
        }
    }

    /** {@link Ema#pullDeviceUpdates} on every copy. */
    public void pullDeviceUpdates() {
        emas.forEach(Ema::pullDeviceUpdates);
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
        emas.forEach(Ema::close);
    }
}
