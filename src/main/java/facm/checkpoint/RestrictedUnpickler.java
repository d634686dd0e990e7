package facm.checkpoint;

import facm.checkpoint.TorchGlobals.PyGlobal;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A pickle virtual machine for the opcodes torch.save emits (protocols 2 to 5) that can only build plain data:
 * dicts (LinkedHashMap, insertion order kept), lists (ArrayList), tuples (unmodifiable List), str, int (Long or
 * BigInteger), float (Double), bool, None (null), bytes (byte[]) and what {@link TorchGlobals} allows. Any other
 * global is refused at the opcode that names it, before anything is called, so loading an untrusted file is safe.
 * Persistent ids (torch's storages) are handed to the caller's {@link PersistentLoader}.
 */
final class RestrictedUnpickler {

    /** Resolves a BINPERSID object (for torch: the storage tuple) to a value. Throws IllegalArgumentException. */
    @FunctionalInterface
    interface PersistentLoader {
        Object load(Object pid);
    }

    private static final Object MARK = new Object();

    private final PickleBytes in;
    private final String where;
    private final PersistentLoader persistent;
    private final List<Object> stack = new ArrayList<>();
    private final List<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();
    private int opcodeAt;

    private RestrictedUnpickler(byte[] code, String where, PersistentLoader persistent) {
        this.in = new PickleBytes(code);
        this.where = where;
        this.persistent = persistent;
    }

    /**
     * Runs {@code pickle} to its STOP and returns the value. {@code where} names the pickle in messages, e.g.
     * "archive/data.pkl" of a file; errors are {@link CheckpointException}s naming it and the byte offset.
     */
    static Object load(byte[] pickle, String where, PersistentLoader persistent) {
        RestrictedUnpickler u = new RestrictedUnpickler(pickle, where, persistent);
        try {
            return u.run();
        } catch (CheckpointException e) {
            throw e;
        } catch (RuntimeException e) {
            // Anything else a malformed stream provokes (bad casts, bad numbers) is reported, not propagated.
            throw new CheckpointException("corrupt pickle " + where + " at byte " + u.opcodeAt + ": "
                    + (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage()), e);
        } catch (StackOverflowError e) {
            // e.g. a list that contains itself used as a dict key: hashing it never ends
            throw new CheckpointException("corrupt pickle " + where + " at byte " + u.opcodeAt
                    + ": self-referential structure", e);
        }
    }

    private Object run() {
        while (true) {
            opcodeAt = in.position();
            if (in.atEnd()) {
                throw new IllegalArgumentException("ends without STOP");
            }
            int op = in.nextOpcode();
            switch (op) {
                case 0x80 -> in.skip(1); // PROTO n
                case 0x95 -> in.skip(8); // FRAME length: frames are only a read-ahead hint
                case '.' -> {
                    Object v = pop();
                    if (!stack.isEmpty() || !marks.isEmpty()) {
                        throw new IllegalArgumentException("STOP with " + stack.size() + " values left on the stack");
                    }
                    return v;
                }
                case '(' -> marks.add(stack.size());
                case '0' -> pop();
                case '1' -> popMark();
                case '2' -> push(peek());
                case 'N' -> push(null);
                case 0x88 -> push(Boolean.TRUE);
                case 0x89 -> push(Boolean.FALSE);
                case 'J' -> push(in.readLE(4, true));
                case 'K' -> push(in.readLE(1, false));
                case 'M' -> push(in.readLE(2, false));
                case 0x8a -> push(in.longBytes(in.readLE(1, false)));
                case 0x8b -> push(in.longBytes(in.readLE(4, true)));
                case 'I' -> push(PickleBytes.textInt(in.readLine()));
                case 'L' -> push(PickleBytes.textInt(PickleBytes.stripSuffix(in.readLine(), "L")));
                case 'G' -> push(Double.longBitsToDouble(in.readBE8()));
                case 'F' -> push(Double.parseDouble(in.readLine()));
                case 'X' -> push(in.utf8(in.readLength(4)));
                case 0x8c -> push(in.utf8(in.readLength(1)));
                case 0x8d -> push(in.utf8(in.readLength(8)));
                case 'T' -> push(in.latin1(in.readLength(4)));
                case 'U' -> push(in.latin1(in.readLength(1)));
                case 'B' -> push(in.bytes(in.readLength(4)));
                case 'C' -> push(in.bytes(in.readLength(1)));
                case 0x8e, 0x96 -> push(in.bytes(in.readLength(8)));
                case '}' -> push(new LinkedHashMap<>());
                case ']' -> push(new ArrayList<>());
                case ')' -> push(tuple(List.of()));
                case 0x8f -> push(new LinkedHashSet<>());
                case 't' -> push(tuple(popMark()));
                case 0x85 -> push(tuple(popN(1)));
                case 0x86 -> push(tuple(popN(2)));
                case 0x87 -> push(tuple(popN(3)));
                case 'l' -> push(new ArrayList<>(popMark()));
                case 'd' -> push(dictOf(popMark()));
                case 0x91 -> push(Collections.unmodifiableSet(new LinkedHashSet<>(popMark())));
                case 'a' -> {
                    Object v = pop();
                    asList(peek()).add(v);
                }
                case 'e' -> {
                    List<Object> items = popMark();
                    asList(peek()).addAll(items);
                }
                case 's' -> {
                    Object v = pop();
                    Object k = pop();
                    asMap(peek()).put(k, v);
                }
                case 'u' -> {
                    List<Object> items = popMark();
                    asMap(peek()).putAll(dictOf(items));
                }
                case 0x90 -> {
                    List<Object> items = popMark();
                    asSet(peek()).addAll(items);
                }
                case 'p' -> memo.put(Long.parseLong(in.readLine()), peek());
                case 'q' -> memo.put(in.readLE(1, false), peek());
                case 'r' -> memo.put(in.readLE(4, false), peek());
                case 0x94 -> memo.put((long) memo.size(), peek());
                case 'g' -> push(memoGet(Long.parseLong(in.readLine())));
                case 'h' -> push(memoGet(in.readLE(1, false)));
                case 'j' -> push(memoGet(in.readLE(4, false)));
                case 'c' -> {
                    String module = in.readLine();
                    String name = in.readLine();
                    push(global(module, name));
                }
                case 0x93 -> {
                    Object name = pop();
                    Object module = pop();
                    if (!(module instanceof String m) || !(name instanceof String n)) {
                        throw new IllegalArgumentException("STACK_GLOBAL needs two strings");
                    }
                    push(global(m, n));
                }
                case 'R' -> {
                    List<Object> args = asTuple(pop());
                    push(TorchGlobals.call(callable(pop()), args));
                }
                case 0x81 -> {
                    List<Object> args = asTuple(pop());
                    push(TorchGlobals.newObject(callable(pop()), args));
                }
                case 0x92 -> {
                    pop(); // keyword arguments: the containers we build take none that matter
                    List<Object> args = asTuple(pop());
                    push(TorchGlobals.newObject(callable(pop()), args));
                }
                case 'b' -> {
                    Object state = pop();
                    TorchGlobals.build(peek(), state);
                }
                case 'Q' -> push(persistent.load(pop()));
                default -> throw new CheckpointException(refusal(op));
            }
        }
    }

    private String refusal(int op) {
        String name = switch (op) {
            case 'i' -> "INST";
            case 'o' -> "OBJ";
            case 'P' -> "PERSID";
            case 0x82, 0x83, 0x84 -> "EXT (copyreg extension registry)";
            case 0x97, 0x98 -> "out-of-band buffer";
            case 'V' -> "UNICODE (protocol 0 text)";
            case 'S' -> "STRING (protocol 0 text)";
            default -> String.format("unknown opcode 0x%02x", op);
        };
        return "cannot unpickle " + where + ": " + name + " at byte " + opcodeAt
                + " is not an opcode torch.save emits for a state dict";
    }

    private PyGlobal global(String module, String name) {
        if (!TorchGlobals.allowed(module, name)) {
            throw new CheckpointException("refusing to unpickle '" + module + "." + name + "' at byte " + opcodeAt
                    + " of " + where + ": only state-dict classes are allowed");
        }
        return new PyGlobal(module, name);
    }

    private static PyGlobal callable(Object o) {
        if (!(o instanceof PyGlobal g)) {
            throw new IllegalArgumentException("REDUCE/NEWOBJ on " + TorchGlobals.describe(o)
                    + ", which is not a class or function");
        }
        return g;
    }

    // ---------------------------------------------------------------- stack

    private void push(Object o) {
        stack.add(o);
    }

    private Object pop() {
        int floor = marks.isEmpty() ? 0 : marks.get(marks.size() - 1);
        if (stack.size() <= floor) {
            throw new IllegalArgumentException("stack underflow");
        }
        return stack.remove(stack.size() - 1);
    }

    private Object peek() {
        if (stack.isEmpty()) {
            throw new IllegalArgumentException("stack underflow");
        }
        return stack.get(stack.size() - 1);
    }

    private List<Object> popN(int n) {
        Object[] items = new Object[n];
        for (int i = n - 1; i >= 0; i--) {
            items[i] = pop();
        }
        return Arrays.asList(items);
    }

    private List<Object> popMark() {
        if (marks.isEmpty()) {
            throw new IllegalArgumentException("no MARK on the stack");
        }
        int m = marks.remove(marks.size() - 1);
        List<Object> items = new ArrayList<>(stack.subList(m, stack.size()));
        stack.subList(m, stack.size()).clear();
        return items;
    }

    private Object memoGet(long key) {
        if (!memo.containsKey(key)) {
            throw new IllegalArgumentException("memo key " + key + " was never stored");
        }
        return memo.get(key);
    }

    private static List<Object> tuple(List<Object> items) {
        return Collections.unmodifiableList(new ArrayList<>(items));
    }

    private static Map<Object, Object> dictOf(List<Object> flat) {
        if (flat.size() % 2 != 0) {
            throw new IllegalArgumentException("odd number of items for a dict");
        }
        Map<Object, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < flat.size(); i += 2) {
            m.put(flat.get(i), flat.get(i + 1));
        }
        return m;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> asList(Object o) {
        if (!(o instanceof ArrayList<?>)) {
            throw new IllegalArgumentException("APPEND to " + TorchGlobals.describe(o) + ", not a list");
        }
        return (List<Object>) o;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> asTuple(Object o) {
        if (!(o instanceof List<?>)) {
            throw new IllegalArgumentException("arguments are " + TorchGlobals.describe(o) + ", not a tuple");
        }
        return (List<Object>) o;
    }

    @SuppressWarnings("unchecked")
    private static Map<Object, Object> asMap(Object o) {
        if (!(o instanceof Map<?, ?>)) {
            throw new IllegalArgumentException("SETITEM on " + TorchGlobals.describe(o) + ", not a dict");
        }
        return (Map<Object, Object>) o;
    }

    @SuppressWarnings("unchecked")
    private static Set<Object> asSet(Object o) {
        if (!(o instanceof Set<?>)) {
            throw new IllegalArgumentException("ADDITEMS on " + TorchGlobals.describe(o) + ", not a set");
        }
        return (Set<Object>) o;
    }
}
