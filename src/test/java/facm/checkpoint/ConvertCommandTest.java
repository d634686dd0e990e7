package facm.checkpoint;

import facm.cli.ConvertCommand;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ConvertCommandTest {
    @TempDir
    Path dir;

    private record Run(int code, String out, String err) {
    }

    private static Run run(String... args) {
        PrintStream saved = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        StringWriter err = new StringWriter();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            CommandLine cl = new CommandLine(new ConvertCommand());
            cl.setErr(new PrintWriter(err));
            cl.setExecutionExceptionHandler((ex, line, parsed) -> {
                err.write(ex.getMessage());
                return 1;
            });
            int code = cl.execute(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString());
        } finally {
            System.setOut(saved);
        }
    }

    @Test
    void convertsATrainingCheckpointsEmaAndCastsToBf16() throws IOException {
        Path in = CheckpointTestFiles.copyResource("training.pt", dir);
        Path out = dir.resolve("t.safetensors");
        Run r = run("--in", in.toString(), "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("took 'emas' (ema_models.1.ema_model.*) (2 tensors, 24 B fp64 + 24 B fp32)"),
                r.out());
        float[] w;
        try (SafetensorsReader s = SafetensorsReader.open(out)) {
            assertEquals(List.of("a.weight", "b.bias"), s.names());
            assertEquals(CheckpointDType.F64, s.dtype("b.bias"));
            assertEquals("training.pt", s.metadata().get("source"));
            assertEquals("pt", s.metadata().get("format"));
            w = s.readFloats("a.weight");
        }
        Path bf = dir.resolve("t16.safetensors");
        r = run("--in", out.toString(), "--out", bf.toString(), "--dtype", "bf16");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("took all tensors"), r.out());
        try (SafetensorsReader s = SafetensorsReader.open(bf)) {
            assertEquals(CheckpointDType.BF16, s.dtype("b.bias"));
            assertArrayEquals(w, s.readFloats("a.weight"), "test values are exact in bf16");
        }
        r = run("--in", in.toString(), "--out", dir.resolve("m.safetensors").toString(), "--which", "model",
                "--dtype", "f32");
        assertEquals(0, r.code(), r.err());
        try (SafetensorsReader s = SafetensorsReader.open(dir.resolve("m.safetensors"))) {
            assertEquals(CheckpointDType.F32, s.dtype("b.bias"));
            assertEquals("'model'", s.metadata().get("selected"));
        }
    }

    @Test
    void badChoicesAndFilesEndInOneLine() throws IOException {
        Path in = CheckpointTestFiles.copyResource("plain_p4.pt", dir);
        Run r = run("--in", in.toString(), "--out", dir.resolve("o.safetensors").toString(), "--which", "model");
        assertEquals(1, r.code());
        assertEquals(in + " has no 'model' entry; its top-level keys are [_orig_mod.module.blocks.0.norm1.weight, "
                + "_orig_mod.module.blocks.0.norm2.weight, _orig_mod.counts, _orig_mod.bytes, note]", r.err());
        r = run("--in", in.toString(), "--out", dir.resolve("o.safetensors").toString(), "--dtype", "f8");
        assertEquals("--dtype must be keep, f32 or bf16, not 'f8'", r.err());
        r = run("--in", dir.resolve("none.pt").toString(), "--out", dir.resolve("o.safetensors").toString());
        assertTrue(r.err().contains("none.pt: no such file"), r.err());
        r = run("--in", CheckpointTestFiles.copyResource("malicious_os.pt", dir).toString(), "--out",
                dir.resolve("o.safetensors").toString());
        assertTrue(r.err().contains("refusing to unpickle 'os.system'"), r.err());
        assertTrue(!dir.resolve("o.safetensors").toFile().exists());
    }
}
