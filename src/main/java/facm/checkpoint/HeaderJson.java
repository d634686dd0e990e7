package facm.checkpoint;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The small, strict JSON that a safetensors header is: objects (keys in file order, duplicates refused), arrays,
 * strings (UTF-8, all escapes), integers (as Long), other numbers (as Double), true/false/null. Anything else, or
 * anything after the top-level value except spaces, is an error carrying the byte position where it was found.
 * Also writes the same subset back (see {@link #quote}).
 */
final class HeaderJson {

    /** A syntax error at byte {@code position} of the parsed text. */
    static final class SyntaxError extends Exception {
        private static final long serialVersionUID = 1L;
        final int position;

        SyntaxError(int position, String what) {
            super(what);
            this.position = position;
        }
    }

    private static final int MAX_DEPTH = 64;

    private final byte[] text;
    private final Map<String, Integer> topLevelKeyPositions = new LinkedHashMap<>();
    private int pos;

    private HeaderJson(byte[] text) {
        this.text = text;
    }

    /** A parsed document and, for error messages, where each key of the top-level object starts. */
    record Parsed(Object value, Map<String, Integer> topLevelKeyPositions) {
    }

    /** Parses one JSON value that fills {@code utf8} (trailing whitespace allowed). */
    static Parsed parse(byte[] utf8) throws SyntaxError {
        HeaderJson p = new HeaderJson(utf8);
        p.skipSpace();
        Object v = p.value(0);
        p.skipSpace();
        if (p.pos != utf8.length) {
            throw new SyntaxError(p.pos, "unexpected " + p.describeHere() + " after the end of the JSON object");
        }
        return new Parsed(v, p.topLevelKeyPositions);
    }

    private Object value(int depth) throws SyntaxError {
        if (depth > MAX_DEPTH) {
            throw new SyntaxError(pos, "nesting deeper than " + MAX_DEPTH);
        }
        if (pos >= text.length) {
            throw new SyntaxError(pos, "unexpected end of header, expected a value");
        }
        byte c = text[pos];
        return switch (c) {
            case '{' -> object(depth);
            case '[' -> array(depth);
            case '"' -> string();
            case 't' -> literal("true", Boolean.TRUE);
            case 'f' -> literal("false", Boolean.FALSE);
            case 'n' -> literal("null", null);
            default -> {
                if (c == '-' || (c >= '0' && c <= '9')) {
                    yield number();
                }
                throw new SyntaxError(pos, "unexpected " + describeHere() + ", expected a value");
            }
        };
    }

    private Map<String, Object> object(int depth) throws SyntaxError {
        pos++; // '{'
        Map<String, Object> m = new LinkedHashMap<>();
        skipSpace();
        if (peek() == '}') {
            pos++;
            return m;
        }
        while (true) {
            skipSpace();
            int keyPos = pos;
            if (peek() != '"') {
                throw new SyntaxError(pos, "unexpected " + describeHere() + ", expected a quoted key");
            }
            String key = string();
            skipSpace();
            expect(':');
            skipSpace();
            Object v = value(depth + 1);
            if (m.containsKey(key)) {
                throw new SyntaxError(keyPos, "duplicate key \"" + key + "\"");
            }
            m.put(key, v);
            if (depth == 0) {
                topLevelKeyPositions.put(key, keyPos);
            }
            skipSpace();
            if (peek() == ',') {
                pos++;
            } else if (peek() == '}') {
                pos++;
                return m;
            } else {
                throw new SyntaxError(pos, "unexpected " + describeHere() + ", expected ',' or '}'");
            }
        }
    }

    private List<Object> array(int depth) throws SyntaxError {
        pos++; // '['
        List<Object> l = new ArrayList<>();
        skipSpace();
        if (peek() == ']') {
            pos++;
            return l;
        }
        while (true) {
            skipSpace();
            l.add(value(depth + 1));
            skipSpace();
            if (peek() == ',') {
                pos++;
            } else if (peek() == ']') {
                pos++;
                return l;
            } else {
                throw new SyntaxError(pos, "unexpected " + describeHere() + ", expected ',' or ']'");
            }
        }
    }

    private String string() throws SyntaxError {
        int start = pos;
        pos++; // opening quote
        StringBuilder sb = new StringBuilder();
        int runStart = pos;
        while (true) {
            if (pos >= text.length) {
                throw new SyntaxError(start, "unterminated string");
            }
            int c = text[pos] & 0xFF;
            if (c == '"') {
                sb.append(utf8(runStart, pos));
                pos++;
                return sb.toString();
            }
            if (c < 0x20) {
                throw new SyntaxError(pos, "control character 0x" + Integer.toHexString(c) + " inside a string");
            }
            if (c == '\\') {
                sb.append(utf8(runStart, pos));
                pos++;
                sb.append(escape());
                runStart = pos;
            } else {
                pos++;
            }
        }
    }

    private String escape() throws SyntaxError {
        if (pos >= text.length) {
            throw new SyntaxError(pos, "unterminated escape");
        }
        byte c = text[pos++];
        return switch (c) {
            case '"' -> "\"";
            case '\\' -> "\\";
            case '/' -> "/";
            case 'b' -> "\b";
            case 'f' -> "\f";
            case 'n' -> "\n";
            case 'r' -> "\r";
            case 't' -> "\t";
            case 'u' -> String.valueOf(hex4());
            default -> throw new SyntaxError(pos - 1, "invalid escape \\" + (char) c);
        };
    }

    private char hex4() throws SyntaxError {
        if (pos + 4 > text.length) {
            throw new SyntaxError(pos, "truncated \\u escape");
        }
        int v = 0;
        for (int i = 0; i < 4; i++) {
            int d = Character.digit(text[pos + i], 16);
            if (d < 0) {
                throw new SyntaxError(pos + i, "invalid hex digit in \\u escape");
            }
            v = v * 16 + d;
        }
        pos += 4;
        return (char) v;
    }

    private String utf8(int from, int to) throws SyntaxError {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(text, from, to - from)).toString();
        } catch (CharacterCodingException e) {
            throw new SyntaxError(from, "invalid UTF-8 in a string");
        }
    }

    private Object number() throws SyntaxError {
        int start = pos;
        if (peek() == '-') {
            pos++;
        }
        if (!isDigit(peek())) {
            throw new SyntaxError(pos, "invalid number");
        }
        if (peek() == '0' && isDigit(peekAt(pos + 1))) {
            throw new SyntaxError(pos, "leading zero in a number");
        }
        boolean integral = true;
        while (isDigit(peek())) {
            pos++;
        }
        if (peek() == '.') {
            integral = false;
            pos++;
            if (!isDigit(peek())) {
                throw new SyntaxError(pos, "invalid number: no digit after '.'");
            }
            while (isDigit(peek())) {
                pos++;
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            integral = false;
            pos++;
            if (peek() == '+' || peek() == '-') {
                pos++;
            }
            if (!isDigit(peek())) {
                throw new SyntaxError(pos, "invalid number: no digit in the exponent");
            }
            while (isDigit(peek())) {
                pos++;
            }
        }
        String s = new String(text, start, pos - start, StandardCharsets.US_ASCII);
        if (!integral) {
            return Double.parseDouble(s);
        }
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            throw new SyntaxError(start, "integer " + s + " does not fit in 64 bits");
        }
    }

    private Object literal(String word, Object value) throws SyntaxError {
        byte[] w = word.getBytes(StandardCharsets.US_ASCII);
        for (int i = 0; i < w.length; i++) {
            if (pos + i >= text.length || text[pos + i] != w[i]) {
                throw new SyntaxError(pos, "unexpected " + describeHere() + ", expected a value");
            }
        }
        pos += w.length;
        return value;
    }

    private void expect(char c) throws SyntaxError {
        if (peek() != c) {
            throw new SyntaxError(pos, "unexpected " + describeHere() + ", expected '" + c + "'");
        }
        pos++;
    }

    private void skipSpace() {
        while (pos < text.length && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n'
                || text[pos] == '\r')) {
            pos++;
        }
    }

    private int peek() {
        return peekAt(pos);
    }

    private int peekAt(int p) {
        return p < text.length ? text[p] & 0xFF : -1;
    }

    private static boolean isDigit(int c) {
        return c >= '0' && c <= '9';
    }

    private String describeHere() {
        if (pos >= text.length) {
            return "end of header";
        }
        int c = text[pos] & 0xFF;
        return c >= 0x20 && c < 0x7F ? "'" + (char) c + "'" : "byte 0x" + Integer.toHexString(c);
    }

    /** {@code s} as a JSON string literal; non-ASCII is kept (the header is UTF-8), control characters escaped. */
    static String quote(String s) {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
