package facm.data;

import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;

/**
 * Opens the data set a {@code --data} argument names:
 * <ul>
 * <li>{@value #BUNDLED} — the Fashion-MNIST test split inside the jar (10 000 images; write {@code ./fashion-mnist}
 * for a folder of that name);
 * <li>a folder with IDX files ({@code train-images-idx3-ubyte[.gz]} ...) — {@link IdxDataset}, split train when
 * present else test, or the one {@code --split} asks for (e.g. {@code /usr/share/datasets/fashion-mnist}, where
 * Debian's dataset-fashion-mnist package installs the full set, gives its 60 000 training images);
 * <li>a folder of {@code latents_rank{RR}_shard{SSS}.safetensors} — {@link LatentShards};
 * <li>a folder of class sub-folders holding PNG/JPEG files — {@link ImageFolder} (needs a full JDK: java.desktop).
 * </ul>
 */
public final class Datasets {
    public static final String BUNDLED = "fashion-mnist";
    /** Where Debian's dataset-fashion-mnist package puts the full data set (train and test). */
    static final String DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist";

    private Datasets() {
    }

    /** {@link #open(String, String)} with the default split. */
    public static Dataset open(String spec) {
        return open(spec, null);
    }

    /**
     * @param split "train", "test", or null for the default (train if present, else test); only IDX data has
     *              splits, so any other data set with a split given is an error.
     */
    public static Dataset open(String spec, String split) {
        if (spec == null || spec.isBlank()) {
            throw new DataException("no data set given: use '" + BUNDLED + "' or a folder (IDX files, latent shards, "
                    + "or class folders of images)");
        }
        IdxDataset.Split chosen = IdxDataset.Split.parse(split);
        if (spec.equals(BUNDLED)) {
            if (chosen == IdxDataset.Split.TRAIN) {
                throw new DataException("the bundled '" + BUNDLED + "' holds only the test split; for the 60 000 "
                        + "training images give a folder with the IDX files, e.g. " + DEBIAN_FASHION_MNIST
                        + " (Debian package dataset-fashion-mnist)");
            }
            return IdxDataset.bundledFashionMnist();
        }
        Path folder;
        try {
            folder = Path.of(spec);
        } catch (InvalidPathException e) {
            throw new DataException("'" + spec + "' is not a valid path: " + e.getMessage(), e);
        }
        if (!Files.exists(folder)) {
            throw new DataException("no data at '" + spec + "': no such file or folder (and not the bundled '"
                    + BUNDLED + "')");
        }
        if (!Files.isDirectory(folder)) {
            throw new DataException(folder + " is a file; the data must be '" + BUNDLED + "' or a folder (IDX files, "
                    + "latent shards, or class folders of images)");
        }
        if (IdxDataset.looksLikeIdxFolder(folder)) {
            return IdxDataset.open(folder, chosen);
        }
        if (chosen != null) {
            throw new DataException("a split (" + split + ") applies only to IDX folders, and " + folder
                    + " holds no IDX files");
        }
        if (LatentShards.looksLikeShardFolder(folder)) {
            return LatentShards.open(folder);
        }
        if (ClassFolders.present(folder)) {
            requireImageDecoding(folder);
            return ImageFolder.open(folder);
        }
        throw new DataException(folder + " holds no data set: looked for IDX files ("
                + IdxDataset.Split.TRAIN.imagesName() + "[.gz] and the like), latent shards "
                + "(latents_rank{RR}_shard{SSS}.safetensors) and class sub-folders of .png/.jpg images");
    }

    /** Image folders decode with javax.imageio; the jlinked GPU-bundle runtime has no java.desktop module. */
    private static void requireImageDecoding(Path folder) {
        if (ModuleLayer.boot().findModule("java.desktop").isEmpty()) {
            throw new DataException(folder + " is an image folder, and decoding PNG/JPEG needs the java.desktop "
                    + "module, which this Java runtime lacks (the GPU bundle's jlinked runtime leaves it out): run "
                    + "with a full JDK 25, or use IDX files or latent shards");
        }
    }
}
