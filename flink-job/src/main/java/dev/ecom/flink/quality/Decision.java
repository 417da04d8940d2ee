// One closed session's score at its decision point: what the live quality windows count.
package dev.ecom.flink.quality;

/**
 * A Flink POJO (public no-arg constructor, public fields). Both the serving model's decisions and a
 * shadow version's come from the sessions session-score closed ({@link QualityWindows#decisions}).
 */
public final class Decision {
  public String modelVersion;

  /** The score is a shadow version's, not the answer. */
  public boolean shadow;

  public double probability;
  public boolean purchased;

  /** The session's close in event time (last event + the session gap): its window. */
  public long closeMs;

  public Decision() {}

  public Decision(
      String modelVersion, boolean shadow, double probability, boolean purchased, long closeMs) {
    this.modelVersion = modelVersion;
    this.shadow = shadow;
    this.probability = probability;
    this.purchased = purchased;
    this.closeMs = closeMs;
  }

  /** The windows' key: the version, with "/shadow" for a shadow version's scores. */
  public String key() {
    return shadow ? modelVersion + SHADOW_SUFFIX : modelVersion;
  }

  static final String SHADOW_SUFFIX = "/shadow";
}
