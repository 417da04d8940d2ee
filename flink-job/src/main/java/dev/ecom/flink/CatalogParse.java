// Parses ecom.catalog records; a bad one goes to the dead letter instead of vanishing.
package dev.ecom.flink;

import com.google.protobuf.DiscardUnknownFieldsParser;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Parser;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.Product;
import dev.ecom.proto.v1.RejectReason;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Products from catalog records. A record over the job's --max-record-bytes is rejected unread as
 * REJECT_REASON_OVERSIZE_RECORD, one that is not a Product with a product_id as
 * REJECT_REASON_BAD_CATALOG_RECORD: an InvalidEvent (its bytes and topic/partition/offset) on
 * {@link #INVALID}, which the job writes to ecom.events.invalid, counted in {@code
 * catalogRecordsRejected}; events naming that product are marked catalog_miss. Unknown fields are
 * dropped, so the catalog held in broadcast state stays small whatever is published.
 */
public final class CatalogParse extends ProcessFunction<RawRecord, Product> {
  private static final long serialVersionUID = 1L;

  /** Rejected catalog records. */
  public static final OutputTag<InvalidEvent> INVALID =
      new OutputTag<>("catalog-invalid", ProtoTypeInfo.forClass(InvalidEvent.class));

  /** Drops unknown fields: the catalog in broadcast state holds only what the job reads. */
  private static final Parser<Product> PARSER = DiscardUnknownFieldsParser.wrap(Product.parser());

  private final int maxRecordBytes;
  private transient Counter rejected;

  public CatalogParse(int maxRecordBytes) {
    this.maxRecordBytes = maxRecordBytes;
  }

  @Override
  public void open(OpenContext ctx) {
    rejected = getRuntimeContext().getMetricGroup().counter("catalogRecordsRejected");
  }

  @Override
  public void processElement(RawRecord r, Context ctx, Collector<Product> out) {
    RejectReason reason = RejectReason.REJECT_REASON_OVERSIZE_RECORD;
    String detail =
        "record of " + r.value.length + " bytes is larger than the limit of " + maxRecordBytes;
    if (r.value.length <= maxRecordBytes) {
      reason = RejectReason.REJECT_REASON_BAD_CATALOG_RECORD;
      detail = parse(r.value, out);
      if (detail == null) {
        return;
      }
    }
    rejected.inc();
    ctx.output(
        INVALID,
        Enrichment.reject(r, reason, detail, System.currentTimeMillis(), maxRecordBytes, null));
  }

  /** Emits the product and returns null, or returns why the record is no product. */
  private static String parse(byte[] value, Collector<Product> out) {
    try {
      Product p = PARSER.parseFrom(value);
      if (p.getProductId().isEmpty()) {
        return "product_id: must not be empty (" + value.length + " bytes)";
      }
      out.collect(p);
      return null;
    } catch (InvalidProtocolBufferException e) {
      return "not a Product protobuf (" + value.length + " bytes): " + e.getMessage();
    }
  }
}
