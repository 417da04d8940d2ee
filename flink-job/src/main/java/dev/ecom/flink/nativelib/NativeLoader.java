// Loads the job's Rust libraries (libecom_jni.so from the jar, libecom_jni_serve.so from
// java.library.path).
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
 * Loads the job's Rust libraries, each once per classloader.
 *
 * <p>{@code libecom_jni.so} (validation, features, LSH, DP) ships inside the job jar as {@code
 * native/<os>-<arch>/libecom_jni.so}. {@code libecom_jni_serve.so} (in-process Score and Recommend)
 * links XGBoost's shared library, so it is installed next to {@code libxgboost.so.3} on each
 * TaskManager host and found on {@code java.library.path} (dev/up puts the build's directory
 * there); only a job told to score in-process loads it.
 *
 * <p>A library is copied to a temp file with a unique name on every load: a TaskManager JVM in a
 * session cluster gives each (re)submitted job a new user classloader, and the JVM refuses to bind
 * a library file that another classloader already loaded. The temp file is deleted right after
 * loading; the mapping stays valid on Linux.
 */
public final class NativeLoader {
  private static final Logger LOG = LoggerFactory.getLogger(NativeLoader.class);

  /** The core library's file name inside the platform folder. */
  public static final String LIBRARY_FILE = "libecom_jni.so";

  /** The in-process serve library's file name on java.library.path. */
  public static final String SERVE_LIBRARY_FILE = "libecom_jni_serve.so";

  private static final Library CORE = new Library();
  private static final Library SERVE = new Library();

  /** Whether one library has loaded, or why it could not. */
  private static final class Library {
    boolean loaded;
    String failure;
  }

  private NativeLoader() {}

  /** The classpath resource for this JVM's platform, e.g. native/linux-x86_64/libecom_jni.so. */
  public static String resourcePath() {
    return "native/" + platform() + "/" + LIBRARY_FILE;
  }

  /**
   * Loads the core library if this classloader has not yet. Throws {@link UnsatisfiedLinkError}
   * naming the platform, the resource and what to do; later calls repeat the same message.
   */
  public static synchronized void load() {
    String resource = resourcePath();
    load(
        CORE,
        "from classpath resource " + resource,
        () -> {
          ClassLoader cl = NativeLoader.class.getClassLoader();
          InputStream in = cl.getResourceAsStream(resource);
          if (in == null) {
            throw new IOException("resource not found on the classpath of " + cl);
          }
          return in;
        },
        "The job jar ships it only for linux-x86_64: build the Rust library"
            + " (cargo build --release -p ecom-jni) on the platform the TaskManagers run on and"
            + " rebuild the jar with mvn package -Decom.native.dir=<dir holding "
            + LIBRARY_FILE
            + ">.");
  }

  /**
   * Loads the in-process serve library from the first directory of {@code java.library.path} that
   * holds it. Throws {@link UnsatisfiedLinkError} naming the path searched and what to do.
   */
  public static synchronized void loadServe() {
    String path = System.getProperty("java.library.path", "");
    load(
        SERVE,
        "from java.library.path=" + path,
        () -> {
          for (String dir : path.split(java.io.File.pathSeparator)) {
            Path file = Path.of(dir.isEmpty() ? "." : dir, SERVE_LIBRARY_FILE);
            if (Files.isRegularFile(file)) {
              return Files.newInputStream(file);
            }
          }
          throw new IOException(SERVE_LIBRARY_FILE + " is in no directory of java.library.path");
        },
        "Scoring in-process needs "
            + SERVE_LIBRARY_FILE
            + " (cargo build --release -p ecom-jni-serve) and the libxgboost.so.3 it links on"
            + " every TaskManager host, and their directory on java.library.path"
            + " (env.java.opts.taskmanager: -Djava.library.path=DIR); dev/up sets this up.");
  }

  /** Where a library's bytes come from. */
  private interface Source {
    InputStream open() throws IOException;
  }

  private static void load(Library lib, String where, Source source, String whatToDo) {
    if (lib.loaded) {
      return;
    }
    if (lib.failure != null) {
      throw new UnsatisfiedLinkError(lib.failure);
    }
    try (InputStream in = source.open()) {
      Path tmp = Files.createTempFile("ecom_jni-", ".so");
      try {
        Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
        System.load(tmp.toAbsolutePath().toString());
      } finally {
        Files.deleteIfExists(tmp);
      }
      LOG.info("Loaded an ecom native library {} via {}", where, tmp);
      lib.loaded = true;
    } catch (IOException | RuntimeException | UnsatisfiedLinkError e) {
      lib.failure =
          "Could not load the ecom native library for os.name="
              + System.getProperty("os.name")
              + ", os.arch="
              + System.getProperty("os.arch")
              + " "
              + where
              + ": "
              + e
              + ". "
              + whatToDo;
      throw new UnsatisfiedLinkError(lib.failure);
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
