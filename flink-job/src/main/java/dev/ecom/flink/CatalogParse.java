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
 * Products from catalog records. A record that is not a Product with a product_id becomes an
 * InvalidEvent (REJECT_REASON_BAD_CATALOG_RECORD, its bytes and topic/partition/offset) on {@link
 * #INVALID}, which the job writes to ecom.events.invalid, and is counted in {@code
 * catalogRecordsRejected}; the job goes on without it, and events naming that product are marked
 * catalog_miss. A record over the job's --max-record-bytes is rejected as
 * REJECT_REASON_OVERSIZE_RECORD unread, and unknown fields are dropped, so the catalog held in
 * broadcast state stays small whatever is published.
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
    if (r.value.length > maxRecordBytes) {
      reject(
          r,
          RejectReason.REJECT_REASON_OVERSIZE_RECORD,
          "record of " + r.value.length + " bytes is larger than the limit of " + maxRecordBytes,
          ctx);
      return;
    }
    String detail;
    try {
      Product p = PARSER.parseFrom(r.value);
      if (!p.getProductId().isEmpty()) {
        out.collect(p);
        return;
      }
      detail = "product_id: must not be empty (" + r.value.length + " bytes)";
    } catch (InvalidProtocolBufferException e) {
      detail = "not a Product protobuf (" + r.value.length + " bytes): " + e.getMessage();
    }
    reject(r, RejectReason.REJECT_REASON_BAD_CATALOG_RECORD, detail, ctx);
  }

  private void reject(RawRecord r, RejectReason reason, String detail, Context ctx) {
    rejected.inc();
    ctx.output(
        INVALID,
        Enrichment.reject(r, reason, detail, System.currentTimeMillis(), maxRecordBytes, null));
  }
}
