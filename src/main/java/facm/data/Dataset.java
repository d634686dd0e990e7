package facm.data;

import java.util.ArrayList;
import java.util.List;

/**
 * A labelled set of same-shaped samples {@code [C, H, W]}, already in model space (images scaled to [-1, 1], latents
 * normalized). Reads must be safe from several threads at once: {@link BatchLoader} reads on its prefetch thread.
 */
public interface Dataset extends AutoCloseable {

    int size();

    int channels();

    int height();

    int width();

    /** Number of classes; every {@link #label} is in {@code [0, numClasses)}. */
    int numClasses();

    /** Writes sample {@code index} ({@code channels·height·width} floats, row-major CHW) into {@code dst} at offset. */
    void read(int index, float[] dst, int offset);

    /**
     * The sample as a training epoch sees it. Datasets with a per-epoch random choice (the flipped copy of
     * {@link LatentShards}) make it here, as a pure function of (seed, epoch, index); the others read as
     * {@link #read}.
     */
    default void readForEpoch(int index, long seed, long epoch, float[] dst, int offset) {
        read(index, dst, offset);
    }

    int label(int index);

    /** Class names, index = label (folder names of an image folder, the article names of Fashion-MNIST, ...). */
    default List<String> classNames() {
        List<String> names = new ArrayList<>(numClasses());
        for (int c = 0; c < numClasses(); c++) {
            names.add(Integer.toString(c));
        }
        return names;
    }

    /** One line for logs: what, where from, how many, shape, classes. */
    String describe();

    default int sampleLength() {
        return channels() * height() * width();
    }

    /** {@code [C, H, W]}. */
    default int[] sampleShape() {
        return new int[] {channels(), height(), width()};
    }

    /** Releases files or mappings held open; reads afterwards fail. The default holds nothing. */
    @Override
    default void close() {
    }
}
