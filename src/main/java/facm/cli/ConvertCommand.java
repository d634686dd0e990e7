package facm.cli;

import facm.checkpoint.CheckpointDType;
import facm.checkpoint.CheckpointTensor;
import facm.checkpoint.SafetensorsWriter;
import facm.checkpoint.StateDict;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code convert --in X.pt --out Y.safetensors}: takes the model weights out of a torch.save checkpoint (loader rule
 * of facm-spec.md §8, see {@link StateDict}) or re-writes a safetensors file, optionally casting floating tensors.
 * The output is written atomically, so an interrupted run never leaves a half-written file under the output name.
 */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = "Convert a PyTorch .pt checkpoint (or a .safetensors file) to safetensors.")
public final class ConvertCommand implements Callable<Integer> {

    @Option(names = "--in", required = true, paramLabel = "FILE",
            description = "A torch.save checkpoint (.pt, .pth, .ckpt) or a .safetensors file.")
    Path in;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "The .safetensors file to write.")
    Path out;

    @Option(names = "--which", defaultValue = "auto", paramLabel = "auto|ema|model",
            description = "Weights to take from a training checkpoint: auto ('emas', else 'ema', else 'model', else "
                    + "the top level), ema, or model. Default: ${DEFAULT-VALUE}.")
    String which;

    @Option(names = "--dtype", defaultValue = "keep", paramLabel = "keep|f32|bf16",
            description = "Floating-point type to write: keep each tensor's own, or cast all floating tensors. "
                    + "Integer tensors are always kept. Default: ${DEFAULT-VALUE}.")
    String dtype;

    @Override
    public Integer call() throws IOException {
        PrintStream console = System.out;
        CheckpointDType target = parseTarget(dtype);
        StateDict.Which choice = StateDict.Which.parse(which);
        if (!Files.isRegularFile(in)) {
            throw new NoSuchFileException(in.toString(), null, "no such file");
        }
        Path outDir = out.toAbsolutePath().getParent();
        if (!Files.isDirectory(outDir)) {
            throw new NoSuchFileException(outDir.toString(), null, "the output folder does not exist");
        }
        long t0 = System.nanoTime();
        try (StateDict sd = StateDict.open(in, choice)) {
            console.printf("read %s: took %s (%s)%n", in, sd.chosen(), sd.summary());
            List<SafetensorsWriter.Entry> entries = new ArrayList<>();
            for (CheckpointTensor t : sd.tensors().values()) {
                boolean cast = target != null && t.dtype().isFloating();
                entries.add(cast ? SafetensorsWriter.Entry.cast(t, target) : SafetensorsWriter.Entry.of(t));
            }
            Map<String, String> metadata = new LinkedHashMap<>(sd.metadata());
            metadata.putIfAbsent("format", "pt");
            SafetensorsWriter.write(out, entries, metadata);
            console.printf("wrote %s: %s in %.1f s%n", out, summary(entries), (System.nanoTime() - t0) / 1e9);
        }
        return 0;
    }

    /** null for "keep". */
    private static CheckpointDType parseTarget(String s) {
        return switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "keep" -> null;
            case "f32", "fp32", "float32" -> CheckpointDType.F32;
            case "bf16", "bfloat16" -> CheckpointDType.BF16;
            default -> throw new IllegalArgumentException("--dtype must be keep, f32 or bf16, not '" + s + "'");
        };
    }

    private static String summary(List<SafetensorsWriter.Entry> entries) {
        Map<CheckpointDType, Long> bytes = new LinkedHashMap<>();
        entries.forEach(e -> bytes.merge(e.dtype(), e.data().byteSize(), Long::sum));
        return StateDict.summary(entries.size(), bytes);
    }
}
