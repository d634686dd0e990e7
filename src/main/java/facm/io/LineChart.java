package facm.io;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A line chart drawn pixel by pixel onto a {@link Canvas} (the GPU runtime has no java.desktop, so no AWT): title,
 * axes with ticks, grid lines and labels, one polyline with point markers per series, a legend when there is more
 * than one series, and optionally each point's value printed above it. Points that cannot be drawn (not finite, or
 * not positive on a log axis) are skipped and break their line.
 */
public final class LineChart {
    /** Series colours in order (a common qualitative palette: blue, orange, green, red, purple, brown). */
    private static final int[] PALETTE = {0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD, 0x8C564B};
    private static final int BACKGROUND = 0xFFFFFF;
    private static final int INK = 0x222222;
    private static final int GRID = 0xE4E4E4;
    private static final int SCALE = 2;
    public static final int DEFAULT_WIDTH = 800;
    public static final int DEFAULT_HEIGHT = 500;

    /** One line: its name (for the legend) and points (x[i], y[i]). */
    public record Series(String name, double[] x, double[] y, int color) {
        public Series {
            if (x.length != y.length) {
                throw new IllegalArgumentException("series '" + name + "': " + x.length + " x values and "
                        + y.length + " y values");
            }
        }
    }

    private final String title;
    private final String xLabel;
    private final String yLabel;
    private final List<Series> series = new ArrayList<>();
    private boolean logX;
    private boolean logY;
    private boolean xTicksAtData;
    private boolean yFromZero;
    private boolean valueLabels;

    public LineChart(String title, String xLabel, String yLabel) {
        this.title = title;
        this.xLabel = xLabel;
        this.yLabel = yLabel;
    }

    public LineChart logX(boolean on) {
        logX = on;
        return this;
    }

    public LineChart logY(boolean on) {
        logY = on;
        return this;
    }

    /** Ticks on the x axis exactly at the x values of the data (e.g. NFE 1, 2, 4), not at round numbers. */
    public LineChart xTicksAtData(boolean on) {
        xTicksAtData = on;
        return this;
    }

    /** Keeps 0 inside a linear y range (quantities such as FID that are never negative). */
    public LineChart yFromZero(boolean on) {
        yFromZero = on;
        return this;
    }

    /** Prints each point's y value above its marker. */
    public LineChart valueLabels(boolean on) {
        valueLabels = on;
        return this;
    }

    /** Adds a series in the next palette colour. */
    public LineChart add(String name, double[] x, double[] y) {
        series.add(new Series(name, x, y, PALETTE[series.size() % PALETTE.length]));
        return this;
    }

    public List<Series> series() {
        return List.copyOf(series);
    }

    public void write(Path file) throws IOException {
        render(DEFAULT_WIDTH, DEFAULT_HEIGHT).writePng(file);
    }

    public Canvas render(int width, int height) {
        List<Double> xs = new ArrayList<>();
        List<Double> ys = new ArrayList<>();
        for (Series s : series) {
            for (int i = 0; i < s.x.length; i++) {
                if (ChartAxis.drawable(s.x[i], logX) && ChartAxis.drawable(s.y[i], logY)) {
                    xs.add(s.x[i]);
                    ys.add(s.y[i]);
                }
            }
        }
        if (valueLabels && !ys.isEmpty()) {
            // headroom above the highest point for its value label
            double max = ys.stream().mapToDouble(Double::doubleValue).max().orElseThrow();
            double min = ys.stream().mapToDouble(Double::doubleValue).min().orElseThrow();
            ys.add(logY ? max * Math.pow(max / min, 0.15) : max + 0.15 * (max - Math.min(0, min)));
        }
        ChartAxis ax = ChartAxis.over(xs, logX, false, xTicksAtData);
        ChartAxis ay = ChartAxis.over(ys, logY, yFromZero, false);
        int th = Canvas.textHeight(SCALE);
        int yTickWidth = 0;
        for (double t : ay.ticks) {
            yTickWidth = Math.max(yTickWidth, Canvas.textWidth(ChartAxis.label(t), SCALE));
        }
        int titleScale = fittingScale(title, width - 20);
        int top = 20 + Canvas.textHeight(titleScale) + 20;
        int left = 16 + th + 16 + yTickWidth + 10;
        int right = width - 30;
        int bottom = height - (10 + th + 12 + th + 16);
        if (right - left < 50 || bottom - top < 50) {
            throw new IllegalArgumentException("a chart of " + width + "x" + height + " leaves no room for the plot");
        }
        Canvas c = new Canvas(width, height, BACKGROUND);
        c.text(title, (width - Canvas.textWidth(title, titleScale)) / 2, 20, titleScale, INK);
        Plot p = new Plot(ax, ay, left, top, right, bottom);
        for (double t : ax.ticks) {
            int px = p.x(t);
            c.fillRect(px, top, 1, bottom - top, GRID);
            c.fillRect(px, bottom, 1, 6, INK);
            String s = ChartAxis.label(t);
            c.text(s, px - Canvas.textWidth(s, SCALE) / 2, bottom + 10, SCALE, INK);
        }
        for (double t : ay.ticks) {
            int py = p.y(t);
            c.fillRect(left, py, right - left, 1, GRID);
            c.fillRect(left - 6, py, 6, 1, INK);
            String s = ChartAxis.label(t);
            c.text(s, left - 10 - Canvas.textWidth(s, SCALE), py - th / 2, SCALE, INK);
        }
        c.strokeRect(left, top, right - left + 1, bottom - top + 1, INK);
        c.text(xLabel, (left + right - Canvas.textWidth(xLabel, SCALE)) / 2, height - 16 - th, SCALE, INK);
        c.textUp(yLabel, 16, (top + bottom + Canvas.textWidth(yLabel, SCALE)) / 2, SCALE, INK);
        for (Series s : series) {
            drawSeries(c, p, s);
        }
        if (series.size() > 1) {
            legend(c, p);
        }
        return c;
    }

    /** The largest text scale (3, 2 or 1) at which {@code text} fits in {@code room} pixels. */
    private static int fittingScale(String text, int room) {
        for (int s = 3; s > 1; s--) {
            if (Canvas.textWidth(text, s) <= room) {
                return s;
            }
        }
        return 1;
    }

    /** The plot rectangle and the value → pixel maps. */
    private record Plot(ChartAxis ax, ChartAxis ay, int left, int top, int right, int bottom) {
        int x(double v) {
            return left + (int) Math.round(ax.fraction(v) * (right - left));
        }

        int y(double v) {
            return bottom - (int) Math.round(ay.fraction(v) * (bottom - top));
        }
    }

    private void drawSeries(Canvas c, Plot p, Series s) {
        int prevX = 0;
        int prevY = 0;
        boolean havePrev = false;
        for (int i = 0; i < s.x.length; i++) {
            if (!ChartAxis.drawable(s.x[i], logX) || !ChartAxis.drawable(s.y[i], logY)) {
                havePrev = false;
                continue;
            }
            int px = p.x(s.x[i]);
            int py = p.y(s.y[i]);
            if (havePrev) {
                c.line(prevX, prevY, px, py, 2, s.color);
            }
            prevX = px;
            prevY = py;
            havePrev = true;
        }
        boolean markers = s.x.length <= 60;
        for (int i = 0; i < s.x.length; i++) {
            if (!ChartAxis.drawable(s.x[i], logX) || !ChartAxis.drawable(s.y[i], logY)) {
                continue;
            }
            int px = p.x(s.x[i]);
            int py = p.y(s.y[i]);
            if (markers) {
                c.fillRect(px - 3, py - 3, 7, 7, s.color);
            }
            if (valueLabels) {
                String v = value(s.y[i]);
                c.text(v, px - Canvas.textWidth(v, SCALE) / 2, py - 10 - Canvas.textHeight(SCALE), SCALE, INK);
            }
        }
    }

    /** A point's value: about 3 significant digits. */
    static String value(double v) {
        double a = Math.abs(v);
        return String.format(Locale.ROOT, a >= 1000 || a == 0 ? "%.0f" : a >= 100 ? "%.1f" : a >= 1 ? "%.2f"
                : "%.3g", v);
    }

    private void legend(Canvas c, Plot p) {
        int th = Canvas.textHeight(SCALE);
        int swatch = 24;
        int rowH = th + 8;
        int textW = 0;
        for (Series s : series) {
            textW = Math.max(textW, Canvas.textWidth(s.name, SCALE));
        }
        int w = 10 + swatch + 8 + textW + 10;
        int h = 8 + rowH * series.size();
        int x0 = p.right - w - 10;
        int y0 = p.top + 10;
        c.fillRect(x0, y0, w, h, BACKGROUND);
        c.strokeRect(x0, y0, w, h, 0xAAAAAA);
        for (int i = 0; i < series.size(); i++) {
            Series s = series.get(i);
            int cy = y0 + 8 + i * rowH + th / 2;
            c.fillRect(x0 + 10, cy - 1, swatch, 3, s.color);
            c.text(s.name, x0 + 10 + swatch + 8, cy - th / 2, SCALE, INK);
        }
    }
}
