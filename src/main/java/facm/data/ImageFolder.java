package facm.data;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.awt.image.Raster;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

/**
 * Images in class folders, {@code root/<class>/*.png|jpg|jpeg}; classes are the sub-folders sorted by name (label =
 * position), files in each sorted by name. Hidden entries, files directly in the root and files of other types are
 * ignored. Every image is decoded once when the set is opened (in parallel) and kept as 8-bit values, so this is for
 * small image sets; large ones belong in latent shards. An image with one colour component (gray, with or without
 * alpha) gives one channel, any other gives RGB (sRGB, 8 bits, alpha dropped); all images must agree in size and
 * channels. Values are scaled to [-1, 1] by {@link PixelScale}.
 *
 * <p>Decoding uses javax.imageio from the java.desktop module, which the jlinked runtime of the GPU bundle
 * (tools/make-bundle.sh) leaves out: image folders need a full JDK 25. {@link Datasets} checks before loading this
 * class.
 */
public final class ImageFolder implements Dataset {
    private final Path root;
    private final List<String> classes;
    private final int[] labels;
    private final int channels;
    private final int height;
    private final int width;
    private final byte[] pixels;

    private ImageFolder(Path root, List<String> classes, int[] labels, int[] chw, byte[] pixels) {
        this.root = root;
        this.classes = List.copyOf(classes);
        this.labels = labels;
        this.channels = chw[0];
        this.height = chw[1];
        this.width = chw[2];
        this.pixels = pixels;
    }

    public static ImageFolder open(Path root) {
        if (!Files.isDirectory(root)) {
            throw new DataException("image folder " + root
                    + (Files.exists(root) ? " is not a folder" : " does not exist"));
        }
        List<Path> classDirs = ClassFolders.classFolders(root);
        if (classDirs.isEmpty()) {
            throw new DataException("image folder " + root + " has no class sub-folders (expected root/<class>/*.png"
                    + " or *.jpg)");
        }
        List<String> classes = new ArrayList<>();
        List<Path> files = new ArrayList<>();
        List<Integer> labelList = new ArrayList<>();
        for (Path dir : classDirs) {
            List<Path> images = ClassFolders.imagesIn(dir);
            if (images.isEmpty()) {
                throw new DataException("class folder " + dir + " holds no .png, .jpg or .jpeg files");
            }
            for (Path f : images) {
                files.add(f);
                labelList.add(classes.size());
            }
            classes.add(dir.getFileName().toString());
        }
        int[] labels = labelList.stream().mapToInt(Integer::intValue).toArray();

        Decoded first = decode(files.getFirst());
        int[] chw = {first.channels, first.height, first.width};
        long sampleBytes = (long) first.channels * first.height * first.width;
        if (sampleBytes * files.size() > Integer.MAX_VALUE - 8) {
            throw new DataException("image folder " + root + ": " + files.size() + " images of " + shape(chw)
                    + " do not fit in memory as one array (2 GiB); convert them to latent shards");
        }
        byte[] pixels = new byte[(int) (sampleBytes * files.size())];
        System.arraycopy(first.values, 0, pixels, 0, first.values.length);
        DataException[] errors = new DataException[files.size()];
        IntStream.range(1, files.size()).parallel().forEach(i -> {
            try {
                Decoded d = decode(files.get(i));
                if (d.channels != chw[0] || d.height != chw[1] || d.width != chw[2]) {
                    throw new DataException(files.get(i) + " is " + shape(new int[] {d.channels, d.height, d.width})
                            + " but " + files.getFirst() + " is " + shape(chw)
                            + ": all images must have the same size and channels");
                }
                System.arraycopy(d.values, 0, pixels, (int) (i * sampleBytes), d.values.length);
            } catch (DataException e) {
                errors[i] = e;
            }
        });
        for (DataException e : errors) {
            if (e != null) {
                throw e;
            }
        }
        return new ImageFolder(root, classes, labels, chw, pixels);
    }

    private static String shape(int[] chw) {
        return (chw[0] == 1 ? "gray " : "RGB ") + chw[2] + "×" + chw[1];
    }

    /** One decoded image: CHW 8-bit values. */
    private record Decoded(int channels, int height, int width, byte[] values) {
    }

    private static Decoded decode(Path file) {
        BufferedImage image;
        try {
            image = ImageIO.read(file.toFile());
        } catch (IOException | RuntimeException e) {
            throw new DataException("cannot decode " + file + ": " + e.getMessage(), e);
        }
        if (image == null) {
            throw new DataException("cannot decode " + file + ": not a PNG or JPEG that javax.imageio can read");
        }
        int w = image.getWidth();
        int h = image.getHeight();
        int plane = w * h;
        boolean gray = image.getColorModel().getColorSpace().getNumComponents() == 1;
        byte[] values = new byte[(gray ? 1 : 3) * plane];
        if (gray) {
            // The raster's own samples, so 16-bit gray is rescaled linearly (getRGB would apply a gamma).
            Raster raster = image.getRaster();
            int max = (1 << raster.getSampleModel().getSampleSize(0)) - 1;
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    int v = raster.getSample(x, y, 0);
                    values[y * w + x] = (byte) (max == 255 ? v : Math.round(v * 255.0 / max));
                }
            }
        } else {
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    int argb = image.getRGB(x, y);
                    values[y * w + x] = (byte) (argb >>> 16);
                    values[plane + y * w + x] = (byte) (argb >>> 8);
                    values[2 * plane + y * w + x] = (byte) argb;
                }
            }
        }
        return new Decoded(gray ? 1 : 3, h, w, values);
    }

    // ---------------------------------------------------------------- Dataset

    @Override
    public int size() {
        return labels.length;
    }

    @Override
    public int channels() {
        return channels;
    }

    @Override
    public int height() {
        return height;
    }

    @Override
    public int width() {
        return width;
    }

    @Override
    public int numClasses() {
        return classes.size();
    }

    @Override
    public void read(int index, float[] dst, int offset) {
        java.util.Objects.checkIndex(index, labels.length);
        int len = sampleLength();
        int from = index * len;
        for (int i = 0; i < len; i++) {
            dst[offset + i] = PixelScale.of(pixels[from + i]);
        }
    }

    @Override
    public int label(int index) {
        return labels[index];
    }

    @Override
    public List<String> classNames() {
        return classes;
    }

    @Override
    public String describe() {
        String names = classes.size() <= 10 ? " (" + String.join(", ", classes) + ")" : "";
        return "image folder " + root + ": " + labels.length + " images " + channels + "×" + height + "×" + width
                + ", " + classes.size() + " classes" + names;
    }
}
