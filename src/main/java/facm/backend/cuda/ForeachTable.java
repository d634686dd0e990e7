package facm.backend.cuda;

import java.util.function.LongUnaryOperator;

/**
 * The host side of a multi-tensor ("foreach") launch (kernels/foreach.cuh): for a list of tensors, one int64 table
 * that tells every block of ONE grid which tensor it works on. Per non-empty tensor an entry of {@link #FIELDS} words
 * (up to four addresses, the element count, the blocks it gets), then the first block of every entry and the grid
 * size (ascending, so a block finds its entry by binary search). Tensors with no elements get no entry, as their
 * per-tensor launches do nothing. Pure arithmetic, tested on the CPU; {@link CudaForeach} uploads it.
 *
 * @param words   the table
 * @param entries the entries (non-empty tensors)
 * @param blocks  the grid size: the sum of the entries' blocks
 */
record ForeachTable(long[] words, int entries, long blocks) {
    /** int64 words per entry; FOREACH_FIELDS in kernels/foreach.cuh. */
    static final int FIELDS = 6;
    static final int MAX_POINTERS = 4;
    static final int COUNT = 4;
    static final int BLOCKS = 5;
    /** The largest grid x dimension a launch may have. */
    static final long MAX_GRID = Integer.MAX_VALUE;

    /**
     * The table for tensors whose addresses are {@code addresses[t]} (1 to 4 per tensor, the same number for all) and
     * element counts {@code counts[t]}; {@code blocksFor} gives the blocks a tensor of n elements gets (n &gt; 0).
     */
    static ForeachTable build(String op, long[][] addresses, long[] counts, LongUnaryOperator blocksFor) {
        if (addresses.length != counts.length) {
            throw new IllegalArgumentException(op + ": " + addresses.length + " address tuples for " + counts.length
                    + " element counts");
        }
        int entries = 0;
        for (long n : counts) {
            if (n < 0) {
                throw new IllegalArgumentException(op + ": negative element count " + n);
            }
            entries += n > 0 ? 1 : 0;
        }
        long[] words = new long[Math.addExact(Math.multiplyExact(entries, FIELDS), entries + 1)];
        int firstAt = entries * FIELDS;
        int e = 0;
        long block = 0;
        for (int t = 0; t < counts.length; t++) {
            long[] ptrs = addresses[t];
            if (ptrs.length < 1 || ptrs.length > MAX_POINTERS || ptrs.length != addresses[0].length) {
                throw new IllegalArgumentException(op + ": tensor " + t + " has " + ptrs.length
                        + " addresses; every tensor needs the same number, 1 to " + MAX_POINTERS);
            }
            if (counts[t] == 0) {
                continue;
            }
            long blocks = blocksFor.applyAsLong(counts[t]);
            if (blocks < 1) {
                throw new IllegalStateException(op + ": " + blocks + " blocks for tensor " + t + " of " + counts[t]
                        + " elements");
            }
            System.arraycopy(ptrs, 0, words, e * FIELDS, ptrs.length);
            words[e * FIELDS + COUNT] = counts[t];
            words[e * FIELDS + BLOCKS] = blocks;
            words[firstAt + e] = block;
            block = Math.addExact(block, blocks);
            e++;
        }
        words[firstAt + entries] = block;
        if (block > MAX_GRID) {
            throw new IllegalArgumentException(op + ": " + counts.length + " tensors need " + block
                    + " blocks, more than one grid's " + MAX_GRID);
        }
        return new ForeachTable(words, entries, block);
    }

    /** Blocks of a chunked (elementwise) kernel: one per {@code chunk} elements. */
    static LongUnaryOperator chunks(long chunk) {
        return n -> (n + chunk - 1) / chunk;
    }

    /** The first block of entry e. */
    long firstBlock(int e) {
        return words[entries * FIELDS + e];
    }

    /** The entry owning grid block b: the binary search of foreach_entry in kernels/foreach.cuh, for the tests. */
    int entryOf(long b) {
        int lo = 0, hi = entries - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (firstBlock(mid) <= b) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    /** The table as int words, low word first (the upload's I32 tensor; the kernels read it as int64). */
    int[] int32Words() {
        int[] out = new int[Math.multiplyExact(2, words.length)];
        for (int i = 0; i < words.length; i++) {
            out[2 * i] = (int) words[i];
            out[2 * i + 1] = (int) (words[i] >>> 32);
        }
        return out;
    }
}
