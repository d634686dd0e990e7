package facm.checkpoint;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The only Python names a checkpoint pickle may refer to, and what calling each of them means here. This is the
 * security boundary of {@link RestrictedUnpickler}: a pickle can call nothing but the functions below, so a
 * malicious file (one naming {@code os.system}, say) is refused before anything runs. Everything that rebuilds a
 * tensor returns a {@link PickledTensor}; its bytes are found later through its {@link StorageRef}.
 */
final class TorchGlobals {
    private TorchGlobals() {
    }

    /** A class or function named by GLOBAL / STACK_GLOBAL that passed the allow-list. */
    record PyGlobal(String module, String name) {
        String qualified() {
            return module + "." + name;
        }
    }

    /** A torch storage as its persistent id names it: ('storage', torch.FloatStorage, '0', 'cpu', numel). */
    record StorageRef(CheckpointDType dtype, String key, String location, long numel) {
    }

    /** A tensor as _rebuild_tensor_v2 describes it: a window (offset, size, stride, in elements) on a storage. */
    record PickledTensor(StorageRef storage, long offset, int[] size, long[] stride) {
    }

    /** argparse.Namespace and other plain attribute bags: kept as an opaque dict of their attributes. */
    static final class PyNamespace extends LinkedHashMap<Object, Object> {
        private static final long serialVersionUID = 1L;
    }

    private static final String REBUILD_V2 = "torch._utils._rebuild_tensor_v2";
    private static final String REBUILD_V1 = "torch._utils._rebuild_tensor";
    private static final String REBUILD_PARAMETER = "torch._utils._rebuild_parameter";
    private static final String REBUILD_PARAMETER_STATE = "torch._utils._rebuild_parameter_with_state";
    private static final String REBUILD_FROM_TYPE = "torch._tensor._rebuild_from_type_v2";
    private static final String ORDERED_DICT = "collections.OrderedDict";
    private static final String NAMESPACE = "argparse.Namespace";
    private static final String GET_LAYOUT = "torch.serialization._get_layout";
    private static final String TORCH_SIZE = "torch.Size";

    /** Names that are only ever passed around as markers (tensor types, the strided layout). */
    private static final Set<String> MARKERS = Set.of("torch.Tensor", "torch.nn.parameter.Parameter",
            "torch.strided");

    private static final Set<String> CALLABLE = Set.of(REBUILD_V2, REBUILD_V1, REBUILD_PARAMETER,
            REBUILD_PARAMETER_STATE, REBUILD_FROM_TYPE, ORDERED_DICT, NAMESPACE, GET_LAYOUT, TORCH_SIZE);

    static boolean allowed(String module, String name) {
        String q = module + "." + name;
        return CALLABLE.contains(q) || MARKERS.contains(q) || storageType(module, name) != null;
    }

    /** The element type of a torch storage class such as torch.FloatStorage, or null. */
    static CheckpointDType storageType(String module, String name) {
        return module.equals("torch") ? CheckpointDType.fromTorchStorage(name) : null;
    }

    /** What REDUCE does: {@code callable(*args)}. Errors are thrown as messages; the caller adds the position. */
    static Object call(PyGlobal callable, List<Object> args) {
        String q = callable.qualified();
        return switch (q) {
            case ORDERED_DICT -> orderedDict(args);
            case NAMESPACE -> {
                require(args.isEmpty(), "argparse.Namespace called with positional arguments");
                yield new PyNamespace();
            }
            case REBUILD_V2, REBUILD_V1 -> rebuildTensor(args);
            case REBUILD_PARAMETER, REBUILD_PARAMETER_STATE -> {
                require(!args.isEmpty() && args.get(0) instanceof PickledTensor, q + " expects a tensor first");
                yield args.get(0);
            }
            case REBUILD_FROM_TYPE -> {
                // (func, new_type, args, state): a Tensor subclass or one with attributes; rebuild the plain tensor.
                require(args.size() == 4 && args.get(0) instanceof PyGlobal f && args.get(2) instanceof List<?>,
                        q + " expects (func, type, args, state)");
                @SuppressWarnings("unchecked")
                List<Object> inner = (List<Object>) args.get(2);
                yield call((PyGlobal) args.get(0), inner);
            }
            case GET_LAYOUT -> "torch.strided";
            case TORCH_SIZE -> {
                require(args.size() == 1 && args.get(0) instanceof List<?>, "torch.Size expects one tuple");
                yield args.get(0);
            }
            default -> throw new IllegalArgumentException("'" + q + "' is a type marker and cannot be called");
        };
    }

    /** What NEWOBJ does: {@code cls.__new__(cls, *args)}; only plain containers can be made this way. */
    static Object newObject(PyGlobal cls, List<Object> args) {
        return switch (cls.qualified()) {
            case NAMESPACE -> new PyNamespace();
            case ORDERED_DICT -> new LinkedHashMap<>();
            default -> throw new IllegalArgumentException("cannot create an instance of '" + cls.qualified() + "'");
        };
    }

    /** What BUILD does: set attributes. Only namespaces keep them; dict subclasses' attributes are dropped. */
    static void build(Object target, Object state) {
        Object dictState = state;
        if (state instanceof List<?> pair && pair.size() == 2) {
            dictState = pair.get(0); // (state, slotstate)
        }
        if (target instanceof PyNamespace ns) {
            require(dictState instanceof Map<?, ?>, "argparse.Namespace state is not a dict");
            ns.putAll((Map<?, ?>) dictState);
        } else if (!(target instanceof Map<?, ?>) && !(target instanceof PickledTensor)) {
            throw new IllegalArgumentException("cannot set state on " + describe(target));
        }
        // OrderedDict carries state_dict()._metadata, tensors their Python attributes: neither is needed.
    }

    private static Object orderedDict(List<Object> args) {
        Map<Object, Object> m = new LinkedHashMap<>();
        if (args.isEmpty()) {
            return m;
        }
        require(args.size() == 1 && args.get(0) instanceof List<?>, "OrderedDict expects () or a list of pairs");
        for (Object item : (List<?>) args.get(0)) {
            require(item instanceof List<?> kv && kv.size() == 2, "OrderedDict items must be pairs");
            List<?> kv = (List<?>) item;
            m.put(kv.get(0), kv.get(1));
        }
        return m;
    }

    private static PickledTensor rebuildTensor(List<Object> args) {
        require(args.size() >= 4, "_rebuild_tensor expects (storage, offset, size, stride, ...)");
        require(args.get(0) instanceof StorageRef, "_rebuild_tensor's first argument is not a storage");
        require(args.get(1) instanceof Long off && off >= 0, "_rebuild_tensor's storage offset is not an int");
        List<Long> size = intTuple(args.get(2), "size");
        List<Long> stride = intTuple(args.get(3), "stride");
        require(size.size() == stride.size(), "_rebuild_tensor's size and stride differ in length");
        int[] shape = new int[size.size()];
        long[] strides = new long[stride.size()];
        for (int i = 0; i < shape.length; i++) {
            long d = size.get(i);
            require(d >= 0 && d <= Integer.MAX_VALUE, "tensor dimension " + d + " out of range");
            shape[i] = (int) d;
            strides[i] = stride.get(i);
        }
        return new PickledTensor((StorageRef) args.get(0), (Long) args.get(1), shape, strides);
    }

    private static List<Long> intTuple(Object o, String what) {
        require(o instanceof List<?>, "_rebuild_tensor's " + what + " is not a tuple");
        List<Long> out = new ArrayList<>();
        for (Object x : (List<?>) o) {
            require(x instanceof Long, "_rebuild_tensor's " + what + " holds a non-integer");
            out.add((Long) x);
        }
        return out;
    }

    static String describe(Object o) {
        if (o == null) {
            return "None";
        }
        if (o instanceof PyGlobal g) {
            return "'" + g.qualified() + "'";
        }
        return o.getClass().getSimpleName();
    }

    private static void require(boolean ok, String what) {
        if (!ok) {
            throw new IllegalArgumentException(what);
        }
    }
}
