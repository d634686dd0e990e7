package facm.checkpoint;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The byte code of one pickle as {@link RestrictedUnpickler} reads it: a cursor with the argument decoders of the
 * opcodes (little-endian integers, lengths checked against the end, text lines, strings, bytes). Errors are
 * IllegalArgumentExceptions; the unpickler turns them into one-line CheckpointExceptions with the opcode's offset.
 */
final class PickleBytes {
    private final byte[] code;
    private int pos;

    PickleBytes(byte[] code) {
        this.code = code;
    }

    int position() {
        return pos;
    }

    boolean atEnd() {
        return pos >= code.length;
    }

    /** The next opcode byte (the caller checked {@link #atEnd}). */
    int nextOpcode() {
        return code[pos++] & 0xFF;
    }

    /** Skips an argument that carries no meaning for us (PROTO's version, FRAME's length). */
    void skip(int n) {
        pos += n;
    }

    long readLE(int n, boolean signed) {
        need(n);
        long v = 0;
        for (int i = n - 1; i >= 0; i--) {
            v = (v << 8) | (code[pos + i] & 0xFF);
        }
        pos += n;
        if (signed && n < 8) {
            int shift = 64 - 8 * n;
            v = (v << shift) >> shift;
        }
        return v;
    }

    long readBE8() {
        need(8);
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = (v << 8) | (code[pos + i] & 0xFF);
        }
        pos += 8;
        return v;
    }

    int readLength(int n) {
        long len = readLE(n, false);
        if (len < 0 || len > code.length - pos) {
            throw new IllegalArgumentException("length " + len + " runs past the end of the pickle");
        }
        return (int) len;
    }

    /** Two's complement little-endian integer of n bytes (LONG1/LONG4). */
    Object longBytes(long n) {
        if (n < 0 || n > code.length - pos) {
            throw new IllegalArgumentException("LONG of " + n + " bytes runs past the end of the pickle");
        }
        byte[] be = new byte[(int) n];
        for (int i = 0; i < n; i++) {
            be[i] = code[pos + (int) n - 1 - i];
        }
        pos += (int) n;
        if (n == 0) {
            return 0L;
        }
        BigInteger v = new BigInteger(be);
        return v.bitLength() < 64 ? (Object) v.longValue() : v;
    }

    static Object textInt(String s) {
        return switch (s) {
            case "00" -> Boolean.FALSE; // protocol 0 spells bools as INT 00 / 01
            case "01" -> Boolean.TRUE;
            default -> {
                BigInteger v = new BigInteger(s.trim());
                yield v.bitLength() < 64 ? (Object) v.longValue() : v;
            }
        };
    }

    static String stripSuffix(String s, String suffix) {
        return s.endsWith(suffix) ? s.substring(0, s.length() - suffix.length()) : s;
    }

    String readLine() {
        int start = pos;
        while (pos < code.length && code[pos] != '\n') {
            pos++;
        }
        if (pos >= code.length) {
            throw new IllegalArgumentException("unterminated text argument");
        }
        String s = new String(code, start, pos - start, StandardCharsets.UTF_8);
        pos++;
        return s;
    }

    String utf8(int n) {
        String s = new String(code, pos, n, StandardCharsets.UTF_8);
        pos += n;
        return s;
    }

    String latin1(int n) {
        String s = new String(code, pos, n, StandardCharsets.ISO_8859_1);
        pos += n;
        return s;
    }

    byte[] bytes(int n) {
        byte[] b = Arrays.copyOfRange(code, pos, pos + n);
        pos += n;
        return b;
    }

    private void need(int n) {
        if (pos + n > code.length) {
            throw new IllegalArgumentException("truncated: needs " + n + " more bytes");
        }
    }
}
