// Parses ecom.catalog records; a bad one goes to the dead letter instead of vanishing.
package dev.ecom.flink;

import com.google.protobuf.DiscardUnknownFieldsParser;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Parser;
import dev.ecom.flink.serde.ProtoTypeInfo;
import dev.ecom.proto.v1.InvalidEvent;
import dev.ecom.proto.v1.Product;
import dev.ecom.proto.v1.RejectReason;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Products from catalog records. A record that is not a Product with a product_id is rejected as
 * REJECT_REASON_BAD_CATALOG_RECORD on {@link #INVALID} and counted in {@code
 * catalogRecordsRejected} ({@link SideTopicParse}); events naming that product are marked
 * catalog_miss. Unknown fields are dropped, and a record over the job's --max-record-bytes is
 * rejected unread, so the catalog held in broadcast state stays small whatever is published.
 */
public final class CatalogParse extends SideTopicParse<Product> {
  private static final long serialVersionUID = 1L;

  /** Rejected catalog records. */
  public static final OutputTag<InvalidEvent> INVALID =
      new OutputTag<>("catalog-invalid", ProtoTypeInfo.forClass(InvalidEvent.class));

  /** Drops unknown fields: the catalog in broadcast state holds only what the job reads. */
  private static final Parser<Product> PARSER = DiscardUnknownFieldsParser.wrap(Product.parser());

  public CatalogParse(int maxRecordBytes) {
    super(
        maxRecordBytes,
        RejectReason.REJECT_REASON_BAD_CATALOG_RECORD,
        INVALID,
        "catalogRecordsRejected");
  }

  @Override
  protected String parse(byte[] value, Collector<Product> out) {
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
