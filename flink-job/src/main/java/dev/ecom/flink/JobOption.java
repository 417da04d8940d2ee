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

  static JobOption<String> text(String name, String defaultValue, String help) {
    return new JobOption<>(name, defaultValue, help, s -> s);
  }

  static JobOption<Boolean> bool(String name, String defaultValue, String help) {
    return new JobOption<>(
        name,
        defaultValue,
        help,
        s -> {
          if (!s.equals("true") && !s.equals("false")) {
            throw new IllegalArgumentException("'" + s + "' is not true or false");
          }
          return s.equals("true");
        });
  }

  /** A whole number of at least {@code min}. */
  static JobOption<Long> atLeast(long min, String name, String defaultValue, String help) {
    return new JobOption<>(
        name,
        defaultValue,
        help,
        s -> {
          long v;
          try {
            v = Long.parseLong(s);
          } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + s + "' is not a whole number");
          }
          if (v < min) {
            throw new IllegalArgumentException(
                v + (min == 1 ? " must be > 0" : " must be >= " + min) + " (" + help + ")");
          }
          return v;
        });
  }

  /** A whole number of at least {@code min} that fits an int. */
  static JobOption<Integer> intAtLeast(int min, String name, String defaultValue, String help) {
    JobOption<Long> wide = atLeast(min, name, defaultValue, help);
    return new JobOption<>(
        name,
        defaultValue,
        help,
        s -> {
          long v = wide.read.apply(s);
          if (v > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(v + " is too large");
          }
          return (int) v;
        });
  }

  /** A finite number above 0. */
  static JobOption<Double> positiveDecimal(String name, String defaultValue, String help) {
    return new JobOption<>(
        name,
        defaultValue,
        help,
        s -> {
          double v;
          try {
            v = Double.parseDouble(s);
          } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + s + "' is not a number");
          }
          if (!(v > 0) || Double.isInfinite(v)) {
            throw new IllegalArgumentException(v + " must be > 0 and finite");
          }
          return v;
        });
  }
}
