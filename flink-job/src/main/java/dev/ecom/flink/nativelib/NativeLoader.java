// Loads the Rust library libecom_jni.so shipped inside the job jar, once per classloader.
package dev.ecom.flink.nativelib;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Loads {@code native/<os>-<arch>/libecom_jni.so} from the classpath.
 *
 * <p>The library is extracted to a temp file with a unique name on every load: a TaskManager JVM in
 * a session cluster gives each (re)submitted job a new user classloader, and the JVM refuses to
 * bind a library file that another classloader already loaded. The temp file is deleted right after
 * loading; the mapping stays valid on Linux.
 */
public final class NativeLoader {
  private static final Logger LOG = LoggerFactory.getLogger(NativeLoader.class);

  /** The library's file name inside the platform folder. */
  public static final String LIBRARY_FILE = "libecom_jni.so";

  private static boolean loaded;
  private static String failure;

  private NativeLoader() {}

  /** The classpath resource for this JVM's platform, e.g. native/linux-x86_64/libecom_jni.so. */
  public static String resourcePath() {
    return "native/" + platform() + "/" + LIBRARY_FILE;
  }

  /**
   * Loads the library if this classloader has not yet. Throws {@link UnsatisfiedLinkError} naming
   * the platform, the resource and what to do; later calls repeat the same message.
   */
  public static synchronized void load() {
    if (loaded) {
      return;
    }
    if (failure != null) {
      throw new UnsatisfiedLinkError(failure);
    }
    String resource = resourcePath();
    try {
      loadFrom(resource);
      loaded = true;
    } catch (IOException | RuntimeException | UnsatisfiedLinkError e) {
      failure =
          "Could not load the ecom native library for os.name="
              + System.getProperty("os.name")
              + ", os.arch="
              + System.getProperty("os.arch")
              + " from classpath resource "
              + resource
              + ": "
              + e
              + ". The job jar ships it only for linux-x86_64: build the Rust library"
              + " (cargo build --release -p ecom-jni) on the platform the TaskManagers run on and"
              + " rebuild the jar with mvn package -Decom.native.dir=<dir holding "
              + LIBRARY_FILE
              + ">.";
      throw new UnsatisfiedLinkError(failure);
    }
  }

  private static void loadFrom(String resource) throws IOException {
    ClassLoader cl = NativeLoader.class.getClassLoader();
    try (InputStream in = cl.getResourceAsStream(resource)) {
      if (in == null) {
        throw new IOException("resource not found on the classpath of " + cl);
      }
      Path tmp = Files.createTempFile("ecom_jni-", ".so");
      try {
        Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
        System.load(tmp.toAbsolutePath().toString());
      } finally {
        Files.deleteIfExists(tmp);
      }
      LOG.info("Loaded {} via {} ({})", resource, tmp, cl);
    }
  }

  private static String platform() {
    String os = System.getProperty("os.name", "unknown").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch", "unknown").toLowerCase(Locale.ROOT);
    if (os.startsWith("linux")) {
      os = "linux";
    } else if (os.startsWith("mac")) {
      os = "macos";
    } else if (os.startsWith("windows")) {
      os = "windows";
    }
    if (arch.equals("amd64") || arch.equals("x86_64")) {
      arch = "x86_64";
    } else if (arch.equals("arm64")) {
      arch = "aarch64";
    }
    return os + "-" + arch;
  }
}
