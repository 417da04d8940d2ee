// One option of the job's command line.
package dev.ecom.flink;

import java.util.function.Function;

/**
 * An option of the job, declared once ({@link JobOptions}): its name, default, help, and how its
 * text is read and checked. A value that does not read, or lies below the option's lower bound, is
 * refused with an {@link IllegalArgumentException} that names the option and quotes its help.
 *
 * @param name the option without its leading dashes
 * @param defaultValue taken when the option is not given; null: the option has no default and reads
 *     as null
 * @param help one line for the usage
 * @param read text to value; throws IllegalArgumentException with the reason
 */
public record JobOption<T>(
    String name, String defaultValue, String help, Function<String, T> read) {

  /** "--name", as the user writes it. */
  public String flag() {
    return "--" + name;
  }

  /** The value of {@code text} (the given text or the default); null when neither is there. */
  T read(String text) {
    if (text == null) {
      return null;
    }
    if (text.isBlank()) {
      throw new IllegalArgumentException(flag() + ": must not be empty");
    }
    try {
      return read.apply(text.trim());
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(flag() + ": " + e.getMessage(), e);
    }
  }
}
