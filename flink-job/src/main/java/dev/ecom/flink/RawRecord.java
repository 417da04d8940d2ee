// One record from ecom.events.raw exactly as it was on the wire, plus where and when it was read.
package dev.ecom.flink;

/**
 * A raw Kafka record before validation. A Flink POJO (public fields, no-arg constructor), so it is
 * serialized without Kryo.
 */
public class RawRecord {
  /** The record value as it was on the wire; empty (never null) for a tombstone. */
  public byte[] value = new byte[0];

  public String topic = "";
  public int partition;
  public long offset;

  /** The Kafka record timestamp (producer or log-append time). */
  public long kafkaTimestampMs;

  /** Wall-clock time when the job's source read the record. */
  public long ingestedAtMs;

  /** For Flink's POJO serializer. */
  public RawRecord() {}

  /** A record read from {@code topic}/{@code partition} at {@code offset}. */
  public RawRecord(
      byte[] value,
      String topic,
      int partition,
      long offset,
      long kafkaTimestampMs,
      long ingestedAtMs) {
    this.value = value == null ? new byte[0] : value;
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
    this.kafkaTimestampMs = kafkaTimestampMs;
    this.ingestedAtMs = ingestedAtMs;
  }

  @Override
  public String toString() {
    return "RawRecord{" + topic + "/" + partition + "@" + offset + ", " + value.length + " bytes}";
  }
}
