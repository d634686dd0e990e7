package facm.data;

import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * MNIST-style IDX files (Fashion-MNIST, MNIST, EMNIST): an unsigned-byte image file (magic 2051: count, rows, cols)
 * and a label file (magic 2049: count), each gzipped or not (told apart by the gzip magic bytes, not the name). Every
 * image is padded with background to 32×32, centred (28×28 gets 2 pixels on each side, which makes it divisible by
 * the patch sizes and the 2^k downsamplings of the model), and scaled to [-1, 1] by {@link PixelScale}. The decoded
 * bytes stay on the heap (47 MB for the 60 000 training images); reads are lock-free.
 */
public final class IdxDataset implements Dataset {
    static final int IMAGES_MAGIC = 2051;
    static final int LABELS_MAGIC = 2049;
    /** Images are padded up to this side. */
    public static final int SIDE = 32;
    /** MNIST and Fashion-MNIST have 10 classes; a file with larger labels (EMNIST) gets max label + 1. */
    static final int MIN_CLASSES = 10;

    /** The bundled Fashion-MNIST test split (class-path resources; see its LICENSE there). */
    static final String BUNDLED_FOLDER = "/facm/data/fashion-mnist/";
    static final List<String> FASHION_CLASSES = List.of("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot");

    /** The two splits and the file-name prefix each has in the MNIST distribution. */
    public enum Split {
        TRAIN("train"), TEST("t10k");

        private final String filePrefix;

        Split(String filePrefix) {
            this.filePrefix = filePrefix;
        }

        public String imagesName() {
            return filePrefix + "-images-idx3-ubyte";
        }

        public String labelsName() {
            return filePrefix + "-labels-idx1-ubyte";
        }

        /** "train" or "test" (case-insensitive); null stays null (= choose automatically). */
        public static Split parse(String s) {
            if (s == null) {
                return null;
            }
            return switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "train" -> TRAIN;
                case "test", "t10k" -> TEST;
                default -> throw new DataException("unknown split '" + s + "': expected train or test");
            };
        }
    }

    private final String source;
    private final Split split;
    private final int count;
    private final int rows;
    private final int cols;
    private final byte[] pixels;
    private final byte[] labels;
    private final int numClasses;
    private final List<String> classNames;

    private IdxDataset(String source, Split split, Decoded images, Decoded labelFile, List<String> knownClassNames) {
        if (images.dims[0] != labelFile.dims[0]) {
            throw new DataException(source + ": " + images.name + " holds " + images.dims[0] + " images but "
                    + labelFile.name + " holds " + labelFile.dims[0] + " labels");
        }
        this.source = source;
        this.split = split;
        this.count = images.dims[0];
        this.rows = images.dims[1];
        this.cols = images.dims[2];
        if (rows > SIDE || cols > SIDE || rows < 1 || cols < 1) {
            throw new DataException(source + ": " + images.name + " holds " + rows + "×" + cols
                    + " images; IDX images are padded up to " + SIDE + "×" + SIDE + " and cannot be larger");
        }
        this.pixels = images.data;
        this.labels = labelFile.data;
        int maxLabel = 0;
        for (byte b : labels) {
            maxLabel = Math.max(maxLabel, b & 0xFF);
        }
        this.numClasses = Math.max(MIN_CLASSES, maxLabel + 1);
        this.classNames = knownClassNames != null && knownClassNames.size() == numClasses ? knownClassNames : null;
    }

    // ---------------------------------------------------------------- opening

    /** True when {@code folder} holds any of the IDX file names this class looks for. */
    static boolean looksLikeIdxFolder(Path folder) {
        for (Split s : Split.values()) {
            for (String name : List.of(s.imagesName(), s.labelsName())) {
                if (find(folder, name) != null) {
                    return true;
                }
            }
        }
        return false;
    }

    /**
     * Opens a split of the IDX files in {@code folder}; {@code split} null takes train when its image file is there,
     * else test.
     */
    public static IdxDataset open(Path folder, Split split) {
        if (!Files.isDirectory(folder)) {
            throw new DataException("IDX data folder " + folder + (Files.exists(folder) ? " is not a folder"
                    : " does not exist"));
        }
        if (split == null) {
            split = find(folder, Split.TRAIN.imagesName()) != null ? Split.TRAIN : Split.TEST;
            if (split == Split.TEST && find(folder, Split.TEST.imagesName()) == null) {
                throw new DataException("no IDX images in " + folder + ": looked for " + both(Split.TRAIN)
                        + " or " + both(Split.TEST));
            }
        }
        Path images = find(folder, split.imagesName());
        Path labelFile = find(folder, split.labelsName());
        if (images == null || labelFile == null) {
            throw new DataException("no IDX " + split.name().toLowerCase(Locale.ROOT) + " split in " + folder
                    + ": looked for " + both(split) + " and found "
                    + (images == null && labelFile == null ? "neither" : "only "
                    + (images != null ? images : labelFile).getFileName()));
        }
        String source = "IDX " + split.name().toLowerCase(Locale.ROOT) + " split of " + folder;
        return new IdxDataset(source, split, decode(images, IMAGES_MAGIC), decode(labelFile, LABELS_MAGIC), null);
    }

    /** The Fashion-MNIST test split bundled in the jar (10 000 images). */
    public static IdxDataset bundledFashionMnist() {
        String images = BUNDLED_FOLDER + Split.TEST.imagesName() + ".gz";
        String labelFile = BUNDLED_FOLDER + Split.TEST.labelsName() + ".gz";
        return new IdxDataset("fashion-mnist (bundled test split)", Split.TEST,
                decodeResource(images, IMAGES_MAGIC), decodeResource(labelFile, LABELS_MAGIC), FASHION_CLASSES);
    }

    private static String both(Split s) {
        return s.imagesName() + "(.gz) + " + s.labelsName() + "(.gz)";
    }

    /** The plain file if present, else the gzipped one, else null. */
    private static Path find(Path folder, String name) {
        for (String candidate : List.of(name, name + ".gz")) {
            Path p = folder.resolve(candidate);
            if (Files.isRegularFile(p)) {
                return p;
            }
        }
        return null;
    }

    // ---------------------------------------------------------------- decoding

    /** A parsed IDX file: its dimensions (first = count) and its payload bytes. */
    record Decoded(String name, int[] dims, byte[] data) {
    }

    static Decoded decode(Path file, int magic) {
        try (InputStream in = Files.newInputStream(file)) {
            return decode(file.toString(), in, magic);
        } catch (IOException e) {
            throw new DataException("cannot read " + file + ": " + e, e);
        }
    }

    private static Decoded decodeResource(String resource, int magic) {
        try (InputStream in = IdxDataset.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new DataException("the bundled data " + resource + " is not on the class path (a jar built "
                        + "without src/main/resources?)");
            }
            return decode("jar:" + resource, in, magic);
        } catch (IOException e) {
            throw new DataException("cannot read the bundled " + resource + ": " + e, e);
        }
    }

    /** Parses one IDX file from {@code raw}, gunzipping it when it starts with the gzip magic 1f 8b. */
    static Decoded decode(String name, InputStream raw, int magic) throws IOException {
        InputStream in = new BufferedInputStream(raw, 1 << 16);
        in.mark(2);
        boolean gzipped = in.read() == 0x1f && in.read() == 0x8b;
        in.reset();
        byte[] all;
        try {
            all = (gzipped ? new GZIPInputStream(in, 1 << 16) : in).readAllBytes();
        } catch (EOFException | ZipException e) {
            throw new DataException(name + " is a truncated or corrupt gzip file (" + e.getMessage() + ")", e);
        }
        int ndims = magic == IMAGES_MAGIC ? 3 : 1;
        String what = magic == IMAGES_MAGIC ? "images" : "labels";
        if (all.length < 4) {
            throw new DataException(name + " is truncated: " + all.length + " bytes, not even an IDX magic number");
        }
        int found = bigEndianInt(all, 0);
        if (found != magic) {
            String hint = found == (magic == IMAGES_MAGIC ? LABELS_MAGIC : IMAGES_MAGIC)
                    ? " (that is an IDX " + (magic == IMAGES_MAGIC ? "labels" : "images") + " file: files swapped?)"
                    : "";
            throw new DataException(name + ": bad magic number " + found + " (0x" + Integer.toHexString(found)
                    + "): IDX " + what + " files start with " + magic + hint);
        }
        int headerBytes = 4 + 4 * ndims;
        if (all.length < headerBytes) {
            throw new DataException(name + " is truncated: " + all.length + " bytes, the IDX " + what + " header has "
                    + headerBytes);
        }
        int[] dims = new int[ndims];
        long payload = 1;
        for (int d = 0; d < ndims; d++) {
            dims[d] = bigEndianInt(all, 4 + 4 * d);
            if (dims[d] < 0) {
                throw new DataException(name + ": dimension " + d + " of the header is negative (" + dims[d] + ")");
            }
            payload *= dims[d];
        }
        long have = all.length - headerBytes;
        if (have != payload) {
            String shape = Arrays.toString(dims);
            throw new DataException(have < payload
                    ? name + " is truncated: its header declares " + what + " " + shape + " = " + payload
                            + " bytes of data, the file has " + have
                    : name + " has " + (have - payload) + " bytes after the " + payload + " its header declares ("
                            + what + " " + shape + ")");
        }
        return new Decoded(name, dims, Arrays.copyOfRange(all, headerBytes, all.length));
    }

    private static int bigEndianInt(byte[] b, int at) {
        return (b[at] & 0xFF) << 24 | (b[at + 1] & 0xFF) << 16 | (b[at + 2] & 0xFF) << 8 | (b[at + 3] & 0xFF);
    }

    // ---------------------------------------------------------------- Dataset

    public Split split() {
        return split;
    }

    @Override
    public int size() {
        return count;
    }

    @Override
    public int channels() {
        return 1;
    }

    @Override
    public int height() {
        return SIDE;
    }

    @Override
    public int width() {
        return SIDE;
    }

    @Override
    public int numClasses() {
        return numClasses;
    }

    @Override
    public void read(int index, float[] dst, int offset) {
        java.util.Objects.checkIndex(index, count);
        Arrays.fill(dst, offset, offset + SIDE * SIDE, PixelScale.BACKGROUND);
        int top = (SIDE - rows) / 2;
        int left = (SIDE - cols) / 2;
        int from = index * rows * cols;
        for (int r = 0; r < rows; r++) {
            int to = offset + (top + r) * SIDE + left;
            for (int c = 0; c < cols; c++) {
                dst[to + c] = PixelScale.of(pixels[from + r * cols + c]);
            }
        }
    }

    @Override
    public int label(int index) {
        return labels[index] & 0xFF;
    }

    @Override
    public List<String> classNames() {
        return classNames != null ? classNames : Dataset.super.classNames();
    }

    @Override
    public String describe() {
        List<String> parts = new ArrayList<>();
        parts.add(count + " images 1×" + SIDE + "×" + SIDE
                + (rows == SIDE && cols == SIDE ? "" : " (" + rows + "×" + cols + " padded)"));
        parts.add(numClasses + " classes");
        return source + ": " + String.join(", ", parts);
    }
}
