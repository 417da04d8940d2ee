package dev.ecom.flink;

import static org.assertj.core.api.Assertions.assertThat;

import dev.ecom.proto.v1.EnrichedEvent;
import dev.ecom.proto.v1.Event;
import dev.ecom.proto.v1.EventKind;
import dev.ecom.proto.v1.UserHistory;
import java.util.List;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.ProcessFunctionTestHarnesses;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class UserHistoryOperatorTest {
  private static final long GAP = 1_800_000;
  private static final long T0 = 1_700_000_000_000L;
  private static final long MIN = 60_000;

  private KeyedOneInputStreamOperatorTestHarness<String, EnrichedEvent, EnrichedEvent> h;
  private int n;

  @BeforeEach
  void open() throws Exception {
    h =
        ProcessFunctionTestHarnesses.forKeyedProcessFunction(
            new UserHistoryOperator(GAP, 0, new StateTtl(0, 0)),
            (EnrichedEvent e) -> e.getEvent().getUserId(),
            Types.STRING);
  }

  @AfterEach
  void close() throws Exception {
    h.close();
  }

  private UserHistory send(String user, String session, long t, EventKind kind) throws Exception {
    EnrichedEvent e =
        EnrichedEvent.newBuilder()
            .setEvent(
                Event.newBuilder()
                    .setEventId("e-" + n++)
                    .setEventTimeMs(t)
                    .setUserId(user)
                    .setSessionId(session)
                    .setKind(kind))
            .build();
    h.processElement(e, t);
    List<EnrichedEvent> out = h.extractOutputValues();
    return out.get(out.size() - 1).getUser();
  }

  @Test
  void aSessionGetsTheUsersEarlierSessionsFixedAtItsStart() throws Exception {
    h.processWatermark(T0 - 1);
    assertThat(send("u-1", "a", T0, EventKind.EVENT_KIND_PRODUCT_VIEW).getPriorSessions()).isZero();
    send("u-1", "a", T0 + 5 * MIN, EventKind.EVENT_KIND_PURCHASE);
    // Session a ended (the watermark is past its last event + the gap).
    h.processWatermark(T0 + 5 * MIN + GAP + 1);
    UserHistory b =
        send("u-1", "b", T0 + 5 * MIN + GAP + 2 * MIN, EventKind.EVENT_KIND_PRODUCT_VIEW);
    assertThat(b.getPriorSessions()).isEqualTo(1);
    assertThat(b.getPriorPurchases()).isEqualTo(1);
    assertThat(b.getLastSessionMs()).isEqualTo(T0);
    // Another user knows nothing of u-1.
    assertThat(send("u-2", "c", T0 + 5 * MIN + GAP + 3 * MIN, EventKind.EVENT_KIND_PRODUCT_VIEW))
        .isEqualTo(UserHistory.newBuilder().setPriorSessions(0).build());
    // A third session of u-1 starting while b is still open but after b's last event counts b
    // (not purchased); b's own later events keep the history b began with.
    long tc = T0 + 5 * MIN + GAP + 10 * MIN;
    UserHistory c = send("u-1", "d", tc, EventKind.EVENT_KIND_PRODUCT_VIEW);
    assertThat(c.getPriorSessions()).isEqualTo(2);
    assertThat(c.getPriorPurchases()).isEqualTo(1);
    assertThat(send("u-1", "b", tc + MIN, EventKind.EVENT_KIND_PURCHASE)).isEqualTo(b);
  }

  @Test
  void aUserWhoStaysAwayLongerThanTheTtlIsForgotten() throws Exception {
    h.close();
    h =
        ProcessFunctionTestHarnesses.forKeyedProcessFunction(
            new UserHistoryOperator(GAP, 0, StateTtl.of(60_000)),
            (EnrichedEvent e) -> e.getEvent().getUserId(),
            Types.STRING);
    h.setStateTtlProcessingTime(0);
    h.processWatermark(T0 - 1);
    send("u-1", "a", T0, EventKind.EVENT_KIND_PURCHASE);
    h.processWatermark(T0 + GAP + 1);
    // Back within the TTL: the earlier session counts.
    h.setStateTtlProcessingTime(59_000);
    assertThat(
            send("u-1", "b", T0 + GAP + 2 * MIN, EventKind.EVENT_KIND_PAGE_VIEW).getPriorSessions())
        .isEqualTo(1);
    h.processWatermark(T0 + 2 * GAP + 3 * MIN);
    // Away for longer than the TTL (from the last time the state was used): forgotten.
    h.setStateTtlProcessingTime(59_000 + 60_001);
    assertThat(send("u-1", "c", T0 + 2 * GAP + 4 * MIN, EventKind.EVENT_KIND_PAGE_VIEW))
        .isEqualTo(UserHistory.newBuilder().setPriorSessions(0).build());
    assertThat(h.numKeyedStateEntries()).as("only the new session's state").isEqualTo(1);
  }

  @Test
  void sessionsOverlappingTheNewOneDoNotCount() throws Exception {
    h.processWatermark(T0 - 1);
    send("u-1", "a", T0, EventKind.EVENT_KIND_PRODUCT_VIEW);
    send("u-1", "a", T0 + 10 * MIN, EventKind.EVENT_KIND_PRODUCT_VIEW);
    // b begins before a's last event: a had not ended.
    assertThat(send("u-1", "b", T0 + 5 * MIN, EventKind.EVENT_KIND_PRODUCT_VIEW).getPriorSessions())
        .isZero();
  }

  @Test
  void lateEventsPassThroughUntouched() throws Exception {
    h.processWatermark(T0);
    UserHistory late = send("u-1", "a", T0 - 1, EventKind.EVENT_KIND_PURCHASE);
    assertThat(late).isEqualTo(UserHistory.getDefaultInstance());
    assertThat(h.extractOutputValues().get(0).hasUser()).isFalse();
    // It left no trace: a new session of the user sees no earlier one.
    h.processWatermark(T0 + GAP + 1);
    assertThat(send("u-1", "b", T0 + GAP + 2, EventKind.EVENT_KIND_PRODUCT_VIEW).getPriorSessions())
        .isZero();
  }
}
