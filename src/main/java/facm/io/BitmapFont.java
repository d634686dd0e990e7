package facm.io;

import java.util.HashMap;
import java.util.Map;

/**
 * A 5×7 pixel font for chart labels, drawn by hand for this engine: digits, capital letters and the punctuation that
 * numbers, metric names and file names need. Lower-case letters are drawn as capitals; any other character as '?'.
 * Each glyph is seven rows of five cells, '#' = ink.
 */
final class BitmapFont {
    static final int WIDTH = 5;
    static final int HEIGHT = 7;
    /** Blank columns between glyphs. */
    static final int SPACING = 1;

    private static final Map<Character, boolean[]> GLYPHS = new HashMap<>();

    static {
        glyph('0', ".###. #...# #..## #.#.# ##..# #...# .###.");
        glyph('1', "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.");
        glyph('2', ".###. #...# ....# ...#. ..#.. .#... #####");
        glyph('3', "##### ...#. ..#.. ...#. ....# #...# .###.");
        glyph('4', "...#. ..##. .#.#. #..#. ##### ...#. ...#.");
        glyph('5', "##### #.... ####. ....# ....# #...# .###.");
        glyph('6', "..##. .#... #.... ####. #...# #...# .###.");
        glyph('7', "##### ....# ...#. ..#.. .#... .#... .#...");
        glyph('8', ".###. #...# #...# .###. #...# #...# .###.");
        glyph('9', ".###. #...# #...# .#### ....# ...#. .##..");
        glyph('A', ".###. #...# #...# ##### #...# #...# #...#");
        glyph('B', "####. #...# #...# ####. #...# #...# ####.");
        glyph('C', ".###. #...# #.... #.... #.... #...# .###.");
        glyph('D', "###.. #..#. #...# #...# #...# #..#. ###..");
        glyph('E', "##### #.... #.... ####. #.... #.... #####");
        glyph('F', "##### #.... #.... ####. #.... #.... #....");
        glyph('G', ".###. #...# #.... #.### #...# #...# .####");
        glyph('H', "#...# #...# #...# ##### #...# #...# #...#");
        glyph('I', ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.");
        glyph('J', "..### ...#. ...#. ...#. ...#. #..#. .##..");
        glyph('K', "#...# #..#. #.#.. ##... #.#.. #..#. #...#");
        glyph('L', "#.... #.... #.... #.... #.... #.... #####");
        glyph('M', "#...# ##.## #.#.# #.#.# #...# #...# #...#");
        glyph('N', "#...# #...# ##..# #.#.# #..## #...# #...#");
        glyph('O', ".###. #...# #...# #...# #...# #...# .###.");
        glyph('P', "####. #...# #...# ####. #.... #.... #....");
        glyph('Q', ".###. #...# #...# #...# #.#.# #..#. .##.#");
        glyph('R', "####. #...# #...# ####. #.#.. #..#. #...#");
        glyph('S', ".#### #.... #.... .###. ....# ....# ####.");
        glyph('T', "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..");
        glyph('U', "#...# #...# #...# #...# #...# #...# .###.");
        glyph('V', "#...# #...# .#.#. .#.#. .#.#. ..#.. ..#..");
        glyph('W', "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.");
        glyph('X', "#...# #...# .#.#. ..#.. .#.#. #...# #...#");
        glyph('Y', "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..");
        glyph('Z', "##### ....# ...#. ..#.. .#... #.... #####");
        glyph(' ', "..... ..... ..... ..... ..... ..... .....");
        glyph('.', "..... ..... ..... ..... ..... .##.. .##..");
        glyph(',', "..... ..... ..... ..... .##.. ..#.. .#...");
        glyph(':', "..... .##.. .##.. ..... .##.. .##.. .....");
        glyph(';', "..... .##.. .##.. ..... .##.. ..#.. .#...");
        glyph('-', "..... ..... ..... ##### ..... ..... .....");
        glyph('+', "..... ..#.. ..#.. ##### ..#.. ..#.. .....");
        glyph('_', "..... ..... ..... ..... ..... ..... #####");
        glyph('=', "..... ..... ##### ..... ##### ..... .....");
        glyph('/', "..... ....# ...#. ..#.. .#... #.... .....");
        glyph('(', "...#. ..#.. .#... .#... .#... ..#.. ...#.");
        glyph(')', ".#... ..#.. ...#. ...#. ...#. ..#.. .#...");
        glyph('[', ".###. .#... .#... .#... .#... .#... .###.");
        glyph(']', ".###. ...#. ...#. ...#. ...#. ...#. .###.");
        glyph('<', "...#. ..#.. .#... #.... .#... ..#.. ...#.");
        glyph('>', ".#... ..#.. ...#. ....# ...#. ..#.. .#...");
        glyph('%', "##... ##..# ...#. ..#.. .#... #..## ...##");
        glyph('*', "..... ..#.. #.#.# .###. #.#.# ..#.. .....");
        glyph('\'', "..#.. ..#.. .#... ..... ..... ..... .....");
        glyph('|', "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..");
        glyph('!', "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..");
        glyph('?', ".###. #...# ....# ...#. ..#.. ..... ..#..");
        glyph('#', ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.");
    }

    private BitmapFont() {
    }

    private static void glyph(char c, String rows) {
        String[] r = rows.split(" ");
        if (r.length != HEIGHT) {
            throw new IllegalStateException("glyph '" + c + "' has " + r.length + " rows");
        }
        boolean[] ink = new boolean[WIDTH * HEIGHT];
        for (int y = 0; y < HEIGHT; y++) {
            if (r[y].length() != WIDTH) {
                throw new IllegalStateException("glyph '" + c + "' row " + y + " is " + r[y].length() + " wide");
            }
            for (int x = 0; x < WIDTH; x++) {
                ink[y * WIDTH + x] = r[y].charAt(x) == '#';
            }
        }
        GLYPHS.put(c, ink);
    }

    /** Ink of the glyph for {@code c}, row-major {@link #WIDTH}×{@link #HEIGHT}. */
    static boolean[] glyph(char c) {
        boolean[] g = GLYPHS.get(Character.toUpperCase(c));
        return g != null ? g : GLYPHS.get('?');
    }

    static boolean has(char c) {
        return GLYPHS.containsKey(Character.toUpperCase(c));
    }

    /** Width in pixels of {@code text} at integer {@code scale}. */
    static int width(String text, int scale) {
        return text.isEmpty() ? 0 : (text.length() * (WIDTH + SPACING) - SPACING) * scale;
    }

    static int height(int scale) {
        return HEIGHT * scale;
    }
}
