package facm.io;

import java.io.IOException;
import java.nio.file.Path;

/**
 * An RGB pixel buffer with the few drawing operations a chart needs (rectangles, thick lines, text in
 * {@link BitmapFont}), written out by {@link PngWriter}. Everything outside the canvas is clipped. Colours are
 * {@code 0xRRGGBB}.
 */
public final class Canvas {
    private final int width;
    private final int height;
    private final byte[] rgb;

    public Canvas(int width, int height, int background) {
        if (width < 1 || height < 1 || (long) width * height > 64L << 20) {
            throw new IllegalArgumentException("canvas " + width + "x" + height + " is empty or too large");
        }
        this.width = width;
        this.height = height;
        this.rgb = new byte[width * height * 3];
        fillRect(0, 0, width, height, background);
    }

    public int width() {
        return width;
    }

    public int height() {
        return height;
    }

    /** The colour at (x, y) as 0xRRGGBB. */
    public int pixel(int x, int y) {
        int i = (y * width + x) * 3;
        return (rgb[i] & 0xFF) << 16 | (rgb[i + 1] & 0xFF) << 8 | rgb[i + 2] & 0xFF;
    }

    public void set(int x, int y, int color) {
        if (x < 0 || y < 0 || x >= width || y >= height) {
            return;
        }
        int i = (y * width + x) * 3;
        rgb[i] = (byte) (color >> 16);
        rgb[i + 1] = (byte) (color >> 8);
        rgb[i + 2] = (byte) color;
    }

    public void fillRect(int x, int y, int w, int h, int color) {
        for (int yy = Math.max(0, y); yy < Math.min(height, y + h); yy++) {
            for (int xx = Math.max(0, x); xx < Math.min(width, x + w); xx++) {
                set(xx, yy, color);
            }
        }
    }

    /** The outline of a rectangle, one pixel wide. */
    public void strokeRect(int x, int y, int w, int h, int color) {
        fillRect(x, y, w, 1, color);
        fillRect(x, y + h - 1, w, 1, color);
        fillRect(x, y, 1, h, color);
        fillRect(x + w - 1, y, 1, h, color);
    }

    /**
     * A line from (x0, y0) to (x1, y1) (Bresenham), each point a square of {@code thickness} pixels centred on it.
     */
    public void line(int x0, int y0, int x1, int y1, int thickness, int color) {
        // clip to the canvas (plus the brush) first (Liang–Barsky), so a far-away end costs nothing
        int m = thickness + 1;
        double[] t = {0, 1};
        double fx = x1 - x0;
        double fy = y1 - y0;
        if (!clip(-fx, x0 + m, t) || !clip(fx, width - 1 + m - x0, t) || !clip(-fy, y0 + m, t)
                || !clip(fy, height - 1 + m - y0, t)) {
            return;
        }
        int cx0 = (int) Math.round(x0 + t[0] * fx);
        int cy0 = (int) Math.round(y0 + t[0] * fy);
        int cx1 = (int) Math.round(x0 + t[1] * fx);
        int cy1 = (int) Math.round(y0 + t[1] * fy);
        bresenham(cx0, cy0, cx1, cy1, thickness, color);
    }

    /** One Liang–Barsky boundary test: the part of the segment with p·t ≤ q is kept in t = [t0, t1]. */
    private static boolean clip(double p, double q, double[] t) {
        if (p == 0) {
            return q >= 0;
        }
        double r = q / p;
        if (p < 0) {
            if (r > t[1]) {
                return false;
            }
            t[0] = Math.max(t[0], r);
        } else {
            if (r < t[0]) {
                return false;
            }
            t[1] = Math.min(t[1], r);
        }
        return true;
    }

    private void bresenham(int x0, int y0, int x1, int y1, int thickness, int color) {
        int dx = Math.abs(x1 - x0);
        int dy = -Math.abs(y1 - y0);
        int sx = x0 < x1 ? 1 : -1;
        int sy = y0 < y1 ? 1 : -1;
        int err = dx + dy;
        int half = (thickness - 1) / 2;
        int x = x0;
        int y = y0;
        while (true) {
            fillRect(x - half, y - half, thickness, thickness, color);
            if (x == x1 && y == y1) {
                break;
            }
            int e2 = 2 * err;
            if (e2 >= dy) {
                err += dy;
                x += sx;
            }
            if (e2 <= dx) {
                err += dx;
                y += sy;
            }
        }
    }

    /** Text with its top-left corner at (x, y), glyphs enlarged {@code scale} times. */
    public void text(String text, int x, int y, int scale, int color) {
        int cx = x;
        for (int k = 0; k < text.length(); k++) {
            boolean[] g = BitmapFont.glyph(text.charAt(k));
            for (int gy = 0; gy < BitmapFont.HEIGHT; gy++) {
                for (int gx = 0; gx < BitmapFont.WIDTH; gx++) {
                    if (g[gy * BitmapFont.WIDTH + gx]) {
                        fillRect(cx + gx * scale, y + gy * scale, scale, scale, color);
                    }
                }
            }
            cx += (BitmapFont.WIDTH + BitmapFont.SPACING) * scale;
        }
    }

    /** Text read bottom to top (rotated 90° anticlockwise), its first glyph's bottom-left corner at (x, y). */
    public void textUp(String text, int x, int y, int scale, int color) {
        int cy = y;
        for (int k = 0; k < text.length(); k++) {
            boolean[] g = BitmapFont.glyph(text.charAt(k));
            for (int gy = 0; gy < BitmapFont.HEIGHT; gy++) {
                for (int gx = 0; gx < BitmapFont.WIDTH; gx++) {
                    if (g[gy * BitmapFont.WIDTH + gx]) {
                        // glyph column gx runs up from cy; glyph row gy runs right from x
                        fillRect(x + gy * scale, cy - (gx + 1) * scale, scale, scale, color);
                    }
                }
            }
            cy -= (BitmapFont.WIDTH + BitmapFont.SPACING) * scale;
        }
    }

    public static int textWidth(String text, int scale) {
        return BitmapFont.width(text, scale);
    }

    public static int textHeight(int scale) {
        return BitmapFont.height(scale);
    }

    /** Writes the canvas as an RGB PNG (atomically, see {@link PngWriter#write}). */
    public void writePng(Path file) throws IOException {
        PngWriter.write(file, width, height, 3, rgb);
    }
}
