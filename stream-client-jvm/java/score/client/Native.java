package score.client;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The native half (libscore_client_jvm, Rust): loaded once per class loader from the jar's
 * {@code native/<os>-<arch>/} or from the file named by the system property {@code
 * score.client.library}. See stream-client-jvm/src/lib.rs for each method's contract.
 */
final class Native {
    private Native() {}

    /** The platform directory inside the jar, e.g. {@code linux-x86_64}. */
    static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase();
        String arch = System.getProperty("os.arch", "");
        if (arch.equals("amd64")) {
            arch = "x86_64";
        }
        if (os.startsWith("linux")) {
            os = "linux";
        }
        return os + "-" + arch;
    }

    static {
        String explicit = System.getProperty("score.client.library");
        if (explicit != null && !explicit.isEmpty()) {
            System.load(Path.of(explicit).toAbsolutePath().toString());
        } else {
            String resource = "/native/" + platform() + "/libscore_client_jvm.so";
            try (InputStream in = Native.class.getResourceAsStream(resource)) {
                if (in == null) {
                    throw new UnsatisfiedLinkError(
                            "the score-client jar has no native library for " + platform()
                                    + " (" + resource + "); set -Dscore.client.library=PATH");
                }
                // A file of its own per load: a JVM may load the jar in several class loaders,
                // and one file cannot be loaded by two.
                Path file = Files.createTempFile("libscore_client_jvm-", ".so");
                file.toFile().deleteOnExit();
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
                System.load(file.toAbsolutePath().toString());
            } catch (IOException e) {
                throw new UnsatisfiedLinkError("cannot extract " + resource + ": " + e);
            }
        }
    }

    /** What {@link #turn} returns when the session wants a block of rows. */
    static final int FEED = -1;

    /**
     * Checks a scorer's settings (names and values alternating, as {@code
     * stream_client::settings} names them) and returns this JVM's number for them.
     */
    static native long configure(String[] settings);

    static native String servedVersion(long config);

    static native String setting(long config, String name);

    static native int[] features(String[] names, String[] kinds, String[] types, String[] wanted);

    static native String pinned();

    static native int scoreColumns(long config);

    static native long open(long config, boolean keepGoing);

    static native void begin(long session, int columns, int scoreColumns);

    static native void reject(long session, int before, String why);

    static native int turn(long session, float[] out);

    static native String lastError(long session);

    static native void feed(long session, ByteBuffer block, int rows, int columns);

    static native void feedTexts(long session, ByteBuffer block, int rows, int bytes,
            String column);

    static native void close(long session);

    static native long[] stats();

    static native int defaultBatchRows();
}
