package facm.port;

import facm.cuda.KernelBuildInfo;
import facm.tensor.DType;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * For {@code info}: which variant each kernel family will use on a GPU of a given compute capability, and whether our
 * kernels run as SASS or as PTX JIT-compiled by the driver. Needs no GPU (it reads kernels.properties only).
 */
public final class VariantReport {
    private VariantReport() {
    }

    /** One line per family id, e.g. "attention.fwd   f32: fp32 SIMT ...; bf16: tensor-core ...   [SASS sm_90]". */
    public static List<String> lines(int computeCapability, KernelBuildInfo info, boolean forcePtx) {
        String ours = forcePtx ? info.forcedPtxPathFor(computeCapability) : info.codePathFor(computeCapability);
        Map<String, List<KernelFamily>> byId = new LinkedHashMap<>();
        for (KernelFamily f : KernelFamilies.all()) {
            byId.computeIfAbsent(f.id(), k -> new ArrayList<>()).add(f);
        }
        List<String> out = new ArrayList<>();
        for (Map.Entry<String, List<KernelFamily>> e : byId.entrySet()) {
            Map<String, String> variants = new LinkedHashMap<>(); // "f32" / "bf16" -> names, no repeats
            boolean library = false;
            for (KernelFamily f : e.getValue()) {
                String dt = f.dtype() == DType.BF16 ? "bf16" : "f32";
                String v = f.variant().describe(computeCapability, f.dtype(), info.modules());
                library |= f.variant().isLibrary();
                variants.merge(dt, v, (a, b) -> a.contains(b) ? a : a + ", " + b);
            }
            StringBuilder s = new StringBuilder();
            variants.forEach((dt, v) -> s.append(s.isEmpty() ? "" : "; ").append(dt).append(": ").append(v));
            out.add(String.format(Locale.ROOT, "%-24s %s  [%s]", e.getKey(), s, library ? "cuBLASLt" : ours));
        }
        return out;
    }
}
