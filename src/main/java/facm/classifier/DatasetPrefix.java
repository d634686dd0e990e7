package facm.classifier;

import facm.data.Dataset;

import java.util.List;

/**
 * The first {@code n} samples of a data set (quick runs and tests: {@code train-classifier --limit}). Reads go to the
 * underlying set, which stays the caller's to close.
 */
public final class DatasetPrefix implements Dataset {
    private final Dataset data;
    private final int n;

    /** The first {@code n} samples of {@code data}, or all of them when n &lt;= 0 or larger than the set. */
    public DatasetPrefix(Dataset data, int n) {
        this.data = data;
        this.n = n <= 0 ? data.size() : Math.min(n, data.size());
    }

    @Override
    public int size() {
        return n;
    }

    @Override
    public int channels() {
        return data.channels();
    }

    @Override
    public int height() {
        return data.height();
    }

    @Override
    public int width() {
        return data.width();
    }

    @Override
    public int numClasses() {
        return data.numClasses();
    }

    @Override
    public void read(int index, float[] dst, int offset) {
        data.read(checked(index), dst, offset);
    }

    @Override
    public void readForEpoch(int index, long seed, long epoch, float[] dst, int offset) {
        data.readForEpoch(checked(index), seed, epoch, dst, offset);
    }

    @Override
    public int label(int index) {
        return data.label(checked(index));
    }

    @Override
    public List<String> classNames() {
        return data.classNames();
    }

    @Override
    public String describe() {
        return n == data.size() ? data.describe() : "first " + n + " of " + data.describe();
    }

    private int checked(int index) {
        if (index < 0 || index >= n) {
            throw new IndexOutOfBoundsException("sample " + index + " of " + describe());
        }
        return index;
    }
}
