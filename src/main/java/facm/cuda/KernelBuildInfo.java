package facm.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;

/**
 * What native/build-kernels.sh put into the jar ({@code /facm/kernels/kernels.properties}): whether the kernels were
 * built, with which nvcc, SASS for which architectures, PTX for which, the module list, and whether the plain
 * {@code <module>.ptx} files that {@code --force-ptx} loads are there too. Readable without a GPU.
 */
public record KernelBuildInfo(boolean built, String reason, String nvcc, List<Integer> sass, int ptx,
                              List<String> modules, boolean ptxFiles) {
    public static final String RESOURCE = "/facm/kernels/kernels.properties";

    public static KernelBuildInfo read() {
        try (InputStream in = KernelBuildInfo.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                return new KernelBuildInfo(false, "this jar has no " + RESOURCE.substring(1)
                        + " (it was built without the native step)", "", List.of(), 0, List.of(), false);
            }
            Properties p = new Properties();
            p.load(in);
            boolean built = Boolean.parseBoolean(p.getProperty("built", "false"));
            return new KernelBuildInfo(built, p.getProperty("reason", built ? "" : "unknown"), p.getProperty("nvcc", ""),
                    ints(p.getProperty("sass", "")), parsePtx(p.getProperty("ptx", "")), strings(p.getProperty("modules", "")),
                    built && Boolean.parseBoolean(p.getProperty("ptxfiles", "false")));
        } catch (IOException e) {
            return new KernelBuildInfo(false, "cannot read " + RESOURCE + ": " + e.getMessage(), "", List.of(), 0, List.of(), false);
        }
    }

    private static int parsePtx(String s) {
        List<Integer> l = ints(s);
        return l.isEmpty() ? 0 : l.get(0);
    }

    private static List<Integer> ints(String s) {
        List<Integer> r = new ArrayList<>();
        for (String x : strings(s)) {
            r.add(Integer.parseInt(x.replaceAll("[^0-9]", "")));
        }
        return r;
    }

    private static List<String> strings(String s) {
        return Arrays.stream(s.split(",")).map(String::trim).filter(x -> !x.isEmpty()).toList();
    }

    /**
     * How a GPU of this compute capability runs our kernels: SASS built for the same major version and a minor version
     * no higher (binary compatible), else PTX JIT-compiled by the driver when the PTX target is not newer, else none.
     */
    public String codePathFor(int computeCapability) {
        if (!built) {
            return "none (kernels not built: " + reason + ")";
        }
        int best = -1;
        for (int s : sass) {
            if (s / 10 == computeCapability / 10 && s <= computeCapability && s > best) {
                best = s;
            }
        }
        if (best >= 0) {
            return "SASS sm_" + best;
        }
        if (ptx > 0 && ptx <= computeCapability) {
            return "PTX compute_" + ptx + " (JIT by the driver)";
        }
        return "none (built for sm_" + sass + ", PTX compute_" + ptx + ")";
    }

    /**
     * How this GPU runs the kernels when only the PTX is loaded ({@code --force-ptx}), or "none (...)" with the reason
     * when it cannot (no .ptx files in the jar, or PTX for a newer architecture than the GPU).
     */
    public String forcedPtxPathFor(int computeCapability) {
        if (!built) {
            return "none (kernels not built: " + reason + ")";
        }
        if (!ptxFiles) {
            return "none (this jar has no <module>.ptx files: it was built by an older native/build-kernels.sh)";
        }
        if (ptx <= 0 || ptx > computeCapability) {
            return "none (PTX compute_" + ptx + " is newer than sm_" + computeCapability + ")";
        }
        return "PTX compute_" + ptx + " (JIT by the driver, forced)";
    }

    public boolean runsOn(int computeCapability) {
        return !codePathFor(computeCapability).startsWith("none");
    }

    /** Why the GPU cannot be used, as one line for errors. */
    public String notBuiltMessage() {
        return "the CUDA kernels were not built into this jar: " + reason
                + ". Rebuild with nvcc 13.0 available (see native/README.md), or run with --device cpu";
    }
}
