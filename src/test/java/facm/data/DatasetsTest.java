package facm.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DatasetsTest {
    @TempDir
    Path dir;

    private static String error(String spec, String split) {
        return assertThrows(DataException.class, () -> Datasets.open(spec, split)).getMessage();
    }

    @Test
    void bundledNameGivesTheTestSplitOnly() {
        Dataset d = Datasets.open("fashion-mnist");
        assertEquals(10_000, d.size());
        assertEquals(10_000, Datasets.open("fashion-mnist", "test").size());
        String train = error("fashion-mnist", "train");
        assertTrue(train.contains("only the test split") && train.contains("/usr/share/datasets/fashion-mnist"),
                train);
    }

    @Test
    void recognisesIdxAndLatentFolders() throws IOException {
        Path idx = Files.createDirectory(dir.resolve("idx"));
        IdxTestFiles.writeSplit(idx, IdxDataset.Split.TRAIN, 3, true);
        IdxTestFiles.writeSplit(idx, IdxDataset.Split.TEST, 2, false);
        assertEquals(3, assertInstanceOf(IdxDataset.class, Datasets.open(idx.toString())).size());
        assertEquals(2, Datasets.open(idx.toString(), "test").size());

        Path latents = Files.createDirectory(dir.resolve("latents"));
        LatentShardsTest.writeShard(latents.resolve("latents_rank00_shard000.safetensors"), 0, 2, false);
        try (Dataset d = Datasets.open(latents.toString())) {
            assertInstanceOf(LatentShards.class, d);
        }
        String split = error(latents.toString(), "train");
        assertTrue(split.contains("applies only to IDX folders"), split);
    }

    @Test
    void unknownThingsAreClearErrors() throws IOException {
        assertTrue(error(dir.resolve("missing").toString(), null).contains("no such file or folder"));
        Path file = Files.writeString(dir.resolve("f.txt"), "x");
        assertTrue(error(file.toString(), null).contains("is a file"));
        Files.createDirectory(dir.resolve("empty-class"));
        String nothing = error(dir.toString(), null);
        assertTrue(nothing.contains("holds no data set") && nothing.contains("train-images-idx3-ubyte")
                && nothing.contains("latents_rank") && nothing.contains(".png"), nothing);
        assertTrue(error(" ", null).contains("no data set given"));
        assertTrue(error("fashion-mnist", "validation").contains("unknown split 'validation'"));
    }
}
