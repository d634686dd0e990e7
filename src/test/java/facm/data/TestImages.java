package facm.data;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Tiny PNGs for {@link ImageFolderTest}, written with ImageIO (java.desktop). */
final class TestImages {
    private TestImages() {
    }

    /** A w×h RGB image whose pixel (x, y) is (10x + y, 255 − x, 0 or 255). */
    static void writeRgb(Path file, int w, int h) throws IOException {
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                img.setRGB(x, y, (10 * x + y) << 16 | (255 - x) << 8 | ((x + y) % 2 == 0 ? 255 : 0));
            }
        }
        Files.createDirectories(file.getParent());
        assertTrue(ImageIO.write(img, "png", file.toFile()));
    }

    static void writeGray(Path file, int w, int h) throws IOException {
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_BYTE_GRAY);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                img.getRaster().setSample(x, y, 0, x == 0 && y == 0 ? 255 : 20 * x + y);
            }
        }
        Files.createDirectories(file.getParent());
        assertTrue(ImageIO.write(img, "png", file.toFile()));
    }
}
