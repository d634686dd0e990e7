package facm.checkpoint;

import facm.checkpoint.TorchGlobals.PickledTensor;
import facm.checkpoint.TorchGlobals.PyGlobal;
import facm.checkpoint.TorchGlobals.StorageRef;
import facm.tensor.Shapes;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A file written by torch.save (PyTorch 1.6 and later): a zip holding {@code <folder>/data.pkl}, the pickled object,
 * and {@code <folder>/data/<key>}, one entry per storage. The folder name varies ("archive", the file's stem, ...),
 * so data.pkl is found by suffix. The pickle is run by {@link RestrictedUnpickler}, which only builds plain data and
 * tensors; tensor bytes stay in the memory-mapped zip until read. Valid until {@link #close()}.
 */
public final class TorchCheckpoint implements AutoCloseable {
    private final ZipArchive zip;
    private final String folder;
    private final Map<String, StorageRef> storages = new HashMap<>();
    private final Map<String, MemorySegment> storageBytes = new HashMap<>();
    private final Object root;

    private TorchCheckpoint(ZipArchive zip, String folder) {
        this.zip = zip;
        this.folder = folder;
        checkByteOrder();
        String pkl = folder + "data.pkl";
        MemorySegment code = zip.entry(pkl);
        if (code.byteSize() > Integer.MAX_VALUE - 8) {
            throw new CheckpointException(zip.file() + ": " + pkl + " is over 2 GiB, which no state dict needs");
        }
        try {
            this.root = RestrictedUnpickler.load(code.toArray(ValueLayout.JAVA_BYTE), pkl, this::persistentLoad);
        } catch (CheckpointException e) {
            throw new CheckpointException(zip.file() + ": " + e.getMessage(), e);
        }
    }

    public static TorchCheckpoint open(Path file) throws IOException {
        ZipArchive zip = ZipArchive.open(file);
        try {
            TorchCheckpoint c = new TorchCheckpoint(zip, findFolder(zip));
            zip = null;
            return c;
        } finally {
            if (zip != null) {
                zip.close();
            }
        }
    }

    /** The folder that holds data.pkl, with its trailing slash ("" when data.pkl is at the top). */
    private static String findFolder(ZipArchive zip) {
        List<String> found = new ArrayList<>();
        for (String n : zip.names()) {
            if (n.equals("data.pkl") || (n.endsWith("/data.pkl") && n.indexOf('/') == n.length() - 9)) {
                found.add(n);
            }
        }
        if (found.size() != 1) {
            throw new CheckpointException(zip.file() + " is a zip but not a torch.save checkpoint: "
                    + (found.isEmpty() ? "no <folder>/data.pkl" : "several data.pkl " + found) + " among "
                    + zip.names().size() + " entries");
        }
        String pkl = found.get(0);
        return pkl.substring(0, pkl.length() - "data.pkl".length());
    }

    private void checkByteOrder() {
        String name = folder + "byteorder";
        if (zip.contains(name)) {
            String order = new String(zip.entry(name).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII)
                    .trim();
            if (!order.equals("little")) {
                throw new CheckpointException(zip.file() + " was saved on a '" + order
                        + "'-endian machine; only little-endian checkpoints are read");
            }
        }
    }

    /** torch's persistent id: ('storage', torch.XStorage, key, location, numel). */
    private Object persistentLoad(Object pid) {
        if (!(pid instanceof List<?> t) || t.size() != 5 || !"storage".equals(t.get(0))
                || !(t.get(1) instanceof PyGlobal type) || !(t.get(2) instanceof String key)
                || !(t.get(4) instanceof Long numel) || numel < 0) {
            throw new IllegalArgumentException("persistent id " + pid + " is not ('storage', type, key, "
                    + "location, numel)");
        }
        CheckpointDType dtype = TorchGlobals.storageType(type.module(), type.name());
        if (dtype == null) {
            throw new IllegalArgumentException("persistent id names '" + type.qualified()
                    + "', which is not a storage type");
        }
        String location = String.valueOf(t.get(3));
        StorageRef ref = new StorageRef(dtype, key, location, numel);
        StorageRef seen = storages.putIfAbsent(key, ref);
        if (seen != null && !seen.equals(ref)) {
            throw new IllegalArgumentException("storage '" + key + "' is described twice differently: " + seen
                    + " and " + ref);
        }
        return seen != null ? seen : ref;
    }

    public Path file() {
        return zip.file();
    }

    /** The folder name inside the zip ("archive" for most files). */
    public String folder() {
        return folder.isEmpty() ? "" : folder.substring(0, folder.length() - 1);
    }

    /**
     * The unpickled object: Map (dict, OrderedDict, argparse.Namespace), List (list, tuple), String, Long,
     * BigInteger, Double, Boolean, byte[], null, or a tensor (use {@link #isTensor} / {@link #tensor}).
     */
    public Object root() {
        return root;
    }

    public static boolean isTensor(Object value) {
        return value instanceof PickledTensor;
    }

    /**
     * The bytes of a pickled tensor as a {@link CheckpointTensor} called {@code name}. The tensor must be contiguous
     * (row-major strides) and lie inside its storage; errors name the key.
     */
    public CheckpointTensor tensor(String name, Object pickledTensor) {
        if (!(pickledTensor instanceof PickledTensor t)) {
            throw new CheckpointException(file() + ": '" + name + "' is " + TorchGlobals.describe(pickledTensor)
                    + ", not a tensor");
        }
        int[] shape = t.size();
        long numel = Shapes.numel(shape);
        if (numel > 0 && !contiguous(shape, t.stride())) {
            throw new CheckpointException(file() + ": tensor '" + name + "' is not contiguous (size "
                    + Shapes.str(shape) + ", stride " + Arrays.toString(t.stride()).replace(" ", "")
                    + "); save it with .contiguous()");
        }
        StorageRef s = t.storage();
        int w = s.dtype().bytes();
        if (t.offset() + numel > s.numel()) {
            throw new CheckpointException(file() + ": tensor '" + name + "' needs elements [" + t.offset() + ", "
                    + (t.offset() + numel) + ") of storage '" + s.key() + "', which has " + s.numel());
        }
        MemorySegment bytes = storage(s);
        return new CheckpointTensor(name, s.dtype(), shape, bytes.asSlice(t.offset() * w, numel * w));
    }

    private synchronized MemorySegment storage(StorageRef s) {
        return storageBytes.computeIfAbsent(s.key(), k -> {
            String entry = folder + "data/" + k;
            MemorySegment seg = zip.entry(entry);
            long need = Math.multiplyExact(s.numel(), (long) s.dtype().bytes());
            if (seg.byteSize() < need) {
                throw new CheckpointException(file() + " is truncated: storage '" + entry + "' should hold " + need
                        + " bytes (" + s.numel() + " " + s.dtype().shortName() + ") but has " + seg.byteSize());
            }
            return seg.asSlice(0, need);
        });
    }

    /** Row-major strides for every dimension longer than 1 (torch ignores the stride of size-1 dimensions). */
    static boolean contiguous(int[] size, long[] stride) {
        long expected = 1;
        for (int i = size.length - 1; i >= 0; i--) {
            if (size[i] != 1 && stride[i] != expected) {
                return false;
            }
            expected *= size[i];
        }
        return true;
    }

    @Override
    public void close() {
        zip.close();
    }
}
