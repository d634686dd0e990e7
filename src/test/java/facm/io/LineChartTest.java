package facm.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Axis ticks and labels, the font, and charts drawn onto the canvas. */
class LineChartTest {

    @Test
    void linearTicksAreRoundAndCoverTheData() {
        ChartAxis a = ChartAxis.over(List.of(3.2, 47.9, 12.0), false, true, false);
        assertEquals(0, a.lo);
        assertEquals(50, a.hi, 1e-12);
        assertArrayEquals(new double[] {0, 10, 20, 30, 40, 50}, a.ticks, 1e-12);
        ChartAxis b = ChartAxis.over(List.of(0.31, 0.33), false, false, false);
        assertTrue(b.lo <= 0.31 && b.hi >= 0.33 && b.ticks.length >= 3, Arrays.toString(b.ticks));
        assertEquals(2.0, ChartAxis.niceStep(1.3));
        assertEquals(5.0, ChartAxis.niceStep(3));
        assertEquals(0.1, ChartAxis.niceStep(0.07), 1e-15);
        ChartAxis flat = ChartAxis.over(List.of(4.0, 4.0), false, false, false);
        assertTrue(flat.lo < 4 && flat.hi > 4, "a constant series still gets a range");
    }

    @Test
    void logTicksUseDecadesOrFinerSteps() {
        ChartAxis wide = ChartAxis.over(List.of(0.002, 30.0), true, false, false);
        assertArrayEquals(new double[] {0.01, 0.1, 1, 10}, wide.ticks, 1e-12);
        ChartAxis narrow = ChartAxis.over(List.of(0.3, 2.3), true, false, false);
        assertTrue(narrow.ticks.length >= 3, Arrays.toString(narrow.ticks));
        for (double t : narrow.ticks) {
            assertTrue(t >= narrow.lo && t <= narrow.hi);
        }
        ChartAxis nfe = ChartAxis.over(List.of(1.0, 2.0, 4.0, 2.0), true, false, true);
        assertArrayEquals(new double[] {1, 2, 4}, nfe.ticks, "ticks at the data's x values");
        assertTrue(ChartAxis.over(List.of(-1.0, 0.0, Double.NaN), true, false, false).ticks.length >= 2,
                "nothing drawable on a log axis: a default range, no failure");
    }

    @Test
    void labelsAreShort() {
        assertEquals("0", ChartAxis.label(0));
        assertEquals("0.3", ChartAxis.label(0.30000000000000004));
        assertEquals("12.35", ChartAxis.label(12.3456));
        assertEquals("20000", ChartAxis.label(20000));
        assertEquals("1E-4", ChartAxis.label(1e-4));
        assertEquals("2.5E6", ChartAxis.label(2.5e6));
        assertEquals("12.35", LineChart.value(12.3456));
        assertEquals("123.5", LineChart.value(123.45));
        assertEquals("0.0123", LineChart.value(0.0123));
    }

    @Test
    void everyGlyphIsFiveBySevenAndUnknownCharactersAreQuestionMarks() {
        for (char c : "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ .,:;-+_=/()[]<>%*'|!?#".toCharArray()) {
            assertTrue(BitmapFont.has(c), "glyph for '" + c + "'");
            assertEquals(35, BitmapFont.glyph(c).length);
        }
        assertArrayEquals(BitmapFont.glyph('A'), BitmapFont.glyph('a'), "lower case is drawn as capitals");
        assertArrayEquals(BitmapFont.glyph('?'), BitmapFont.glyph('σ'));
        assertEquals(5 * 2 + 1 * 2 + 5 * 2, BitmapFont.width("AB", 2));
    }

    @Test
    void chartDrawsAxesSeriesAndLegend(@TempDir Path dir) throws Exception {
        LineChart chart = new LineChart("training loss (facm)", "step", "loss")
                .logY(true)
                .add("loss", new double[] {10, 20, 30, 40}, new double[] {2.0, 1.0, 0.6, 0.5})
                .add("loss_fm", new double[] {10, 20, 30, 40}, new double[] {1.0, 0.5, Double.NaN, 0.2});
        Canvas c = chart.render(800, 500);
        int blue = 0x1F77B4;
        int orange = 0xFF7F0E;
        assertTrue(count(c, blue) > 100 && count(c, orange) > 50, "both series are drawn");
        assertTrue(count(c, 0x222222) > 1000, "axes, ticks and labels are drawn");
        Path png = dir.resolve("loss.png");
        chart.write(png);
        byte[] head = Arrays.copyOf(Files.readAllBytes(png), 8);
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}, head);
        assertThrows(IllegalArgumentException.class, () -> chart.render(60, 40), "too small for a plot");
        assertThrows(IllegalArgumentException.class, () -> chart.add("bad", new double[2], new double[3]));
    }

    @Test
    void canvasClipsAndDrawsText() {
        Canvas c = new Canvas(40, 20, 0xFFFFFF);
        c.line(-100, -100, 200, 200, 3, 0x000000);
        c.fillRect(-5, -5, 3, 3, 0xFF0000);
        assertEquals(0x000000, c.pixel(10, 10), "the diagonal passes through (10, 10)");
        c.text("1", 30, 2, 1, 0x00FF00);
        assertEquals(0x00FF00, c.pixel(32, 2), "the top of the glyph '1' is its middle column");
        c.textUp("1", 0, 19, 1, 0x0000FF);
        assertTrue(count(c, 0x0000FF) == count(c, 0x00FF00), "rotated text has the same ink");
    }

    private static int count(Canvas c, int color) {
        int n = 0;
        for (int y = 0; y < c.height(); y++) {
            for (int x = 0; x < c.width(); x++) {
                if (c.pixel(x, y) == color) {
                    n++;
                }
            }
        }
        return n;
    }
}
