package facm.port;

import facm.backend.cpu.CpuBackend;
import facm.cuda.KernelBuildInfo;
import facm.tensor.DType;
import facm.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Every port-check row is a well-formed call of the public op interfaces: run on the CPU backend at both correctness
 * sizes it writes every output element (no NaN left from the poisoned outputs), twice from the same seed it gives the
 * same values, and only bf16 rows may be refused. This is what lets the GPU path pass on its first run.
 */
class FamilyRegistryTest {
    private static CpuBackend cpu;

    @BeforeAll
    static void open() {
        cpu = new CpuBackend(2);
    }

    @AfterAll
    static void close() {
        cpu.close();
    }

    @Test
    void everyRowRunsOnTheCpuAndFillsItsOutputs() {
        List<String> problems = new ArrayList<>();
        int ran = 0;
        for (KernelFamily f : KernelFamilies.all()) {
            for (Dims d : List.of(Dims.ODD, Dims.ALIGNED)) {
                try {
                    float[][] first = run(f, d);
                    float[][] again = run(f, d);
                    for (int i = 0; i < first.length; i++) {
                        for (float v : first[i]) {
                            if (!Float.isFinite(v)) {
                                problems.add(f.label() + " at " + d.label() + ": output " + i + " has " + v);
                                break;
                            }
                        }
                        assertEquals(0.0, PortCheck.maxRelativeError(first[i], again[i]), f.label() + " reruns differ");
                    }
                    ran++;
                } catch (UnsupportedOperationException | IllegalArgumentException e) {
                    if (f.dtype() != DType.BF16) {
                        problems.add(f.label() + " at " + d.label() + " refused: " + e.getMessage());
                    }
                }
            }
        }
        if (!problems.isEmpty()) {
            fail(problems.size() + " problems:\n" + String.join("\n", problems));
        }
        assertTrue(ran > 100, "rows run: " + ran);
    }

    private static float[][] run(KernelFamily f, Dims d) {
        try (CaseInputs in = new CaseInputs(cpu, f.dtype(), f.seed())) {
            Prepared p = f.op().prepare(in, d);
            p.run().run();
            assertFalse(p.outputs().isEmpty(), f.label() + " has no outputs");
            assertTrue(in.bytesTouched() > 0);
            float[][] out = new float[p.outputs().size()][];
            for (int i = 0; i < out.length; i++) {
                Tensor t = p.outputs().get(i);
                out[i] = cpu.download(t);
            }
            return out;
        }
    }

    @Test
    void computeBoundRowsCountFlopsAndLabelsAreUnique() {
        for (KernelFamily f : KernelFamilies.all()) {
            if (f.computeBound()) {
                assertTrue(f.flops().flops(Dims.BENCH) > 1e9, f.label());
            }
            assertTrue(f.tolerance() > 0 && f.tolerance() < 0.1, f.label());
        }
        assertEquals(KernelFamilies.all().size(), KernelFamilies.all().stream().map(KernelFamily::label).distinct().count());
        for (String must : List.of("attention.fwd", "attention.bwd", "attention.jvp", "rmsnorm.bwd", "gemm.fwd",
                "adamw.fwd", "qk_norm_rope.jvp", "swiglu.jvp")) {
            assertTrue(KernelFamilies.ids().contains(must), must);
        }
    }

    @Test
    void variantsNameTensorCoresFromTheComputeCapabilityAndModules() {
        List<String> mods = List.of("attention", "attention_tc");
        assertEquals("cuBLASLt bf16 tensor-core (wgmma)", Variant.GEMM_BF16.describe(90, DType.BF16, mods));
        assertEquals("cuBLASLt bf16 tensor-core (mma.sync)", Variant.GEMM_BF16.describe(86, DType.BF16, mods));
        assertTrue(Variant.ATTENTION.describe(90, DType.BF16, mods).startsWith("tensor-core mma.sync bf16"));
        assertTrue(Variant.ATTENTION.describe(90, DType.BF16, List.of("attention")).startsWith("fp32 SIMT"));
        assertTrue(Variant.ATTENTION.describe(90, DType.F32, mods).startsWith("fp32 SIMT"));
        KernelBuildInfo info = new KernelBuildInfo(true, "", "nvcc", List.of(80, 90), 80, List.of("attention"), true);
        List<String> lines = VariantReport.lines(90, info, false);
        assertEquals(KernelFamilies.ids().size(), lines.size());
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("attention.fwd") && l.endsWith("[SASS sm_90]")), lines.toString());
        assertTrue(VariantReport.lines(90, info, true).get(0).endsWith("[PTX compute_80 (JIT by the driver, forced)]"));
    }
}
