// Where the job's IP-hash key comes from: read where it is used, never carried in the job.
package dev.ecom.flink;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Function;

/**
 * The HMAC key of ip_hash is read when the validate step opens, on each TaskManager, from {@code
 * file} or else from {@code $ECOM_IP_HASH_KEY} in the TaskManager's environment (like Flink's own
 * {@code security.ssl.*} files), so it is never in the job's arguments, the Flink UI, the job graph
 * or its blobs on disk.
 *
 * @param file the key file, or null for the environment variable
 * @param allowDev with neither, use the built-in, guessable development key instead of failing
 */
public record IpHashKey(String file, boolean allowDev) implements Serializable {

  /** The environment variable the key is read from when no file is named. */
  public static final String ENV = "ECOM_IP_HASH_KEY";

  /** The key used with allowDev when no key is given: guessable, so tests only. */
  static final String DEV_KEY = "ecom-dev-ip-hash-key-change-me";

  /** Whether a key is named (a file, or the environment variable set here) or allowed absent. */
  public boolean givenOrAllowed(Function<String, String> env) {
    return file != null || present(env.apply(ENV)) || allowDev;
  }

  /** The key, as the validate step reads it; fails naming what is missing. */
  public String load() {
    return load(System::getenv);
  }

  String load(Function<String, String> env) {
    if (file != null) {
      String key;
      try {
        // As ecom-core's secret::read: a trailing line ending is not part of the key.
        key = Files.readString(Path.of(file), StandardCharsets.UTF_8).replaceAll("[\r\n]+$", "");
      } catch (IOException e) {
        throw new UncheckedIOException(
            "--ip-hash-key-file: cannot read " + file + " on this TaskManager", e);
      }
      if (key.isEmpty()) {
        throw new IllegalArgumentException("--ip-hash-key-file: " + file + " is empty");
      }
      return key;
    }
    String fromEnv = env.apply(ENV);
    if (present(fromEnv)) {
      return fromEnv;
    }
    if (allowDev) {
      return DEV_KEY;
    }
    throw new IllegalStateException(
        "no IP-hash key on this TaskManager: pass --ip-hash-key-file FILE (readable here) or set $"
            + ENV
            + " in the TaskManagers' environment");
  }

  private static boolean present(String v) {
    return v != null && !v.isBlank();
  }

  @Override
  public String toString() {
    return file != null
        ? "file " + file
        : (allowDev ? "$" + ENV + " or the development key" : "$" + ENV);
  }
}
