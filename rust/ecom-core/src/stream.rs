//! The two rules that need what came before: exact duplicates and late events. The validator
//! judges one record alone; these judge it against the stream.
//!
//! [`ReferenceCheck`] is the reference meaning of REJECT_REASON_DUPLICATE and REJECT_REASON_LATE
//! for one stream read in order: the generator's labels are made with it (ecom-gen's tests hold
//! every label to it). The Flink job does not call it; it applies the same bounds its own way,
//! with Flink's event time and keyed state:
//!
//! | | here | the job |
//! | --- | --- | --- |
//! | watermark | newest time − [`MAX_OUT_OF_ORDER_MS`] | the same per Kafka partition, the minimum over partitions (`RawEventTime`) |
//! | skewed clocks | [`moves_watermark`] | the same bound, `--max-clock-lead-ms` |
//! | LATE | behind the watermark | behind it by more than `--allowed-lateness-ms` (0 by default) |
//! | DUPLICATE | an id accepted within the out-of-order window | an id seen in the open session (`SessionOperator`), which stays open at least the session gap (30 min) |
//!
//! With the defaults the two agree on every stream the generator makes (its late events are
//! hours behind, its duplicates follow their original within seconds); the end-to-end demo pins
//! that over the real topic's partitions: every raw record must get the generator's label
//! (`ecom demo`'s reconciliation, "mislabelled"). In general the job's watermark is the slowest
//! partition's, so it can judge fewer events late than this check, never more.
use crate::validate::Rejection;
use ecom_proto::v1::{Event, RejectReason};
use std::collections::{HashSet, VecDeque};

/// Bounded out-of-orderness: the watermark trails the newest event time by this much, so an
/// event up to this far behind the newest one is still on time.
pub const MAX_OUT_OF_ORDER_MS: i64 = 60_000;

/// The event-time gap that closes a session: the job's `--session-gap-ms` default, and what
/// training's streaming assembler waits for before it folds a session.
pub const SESSION_GAP_MS: i64 = 30 * 60 * 1000;

/// How far ahead of the reader's clock (the wall clock when the record was read) a record's
/// time may be and still move the watermark. A time further ahead is a skewed client clock, not
/// progress: the event is still accepted (the validator allows [`MAX_FUTURE_SKEW_MS`]) but it
/// leaves the watermark where it was. Because this is below [`MAX_OUT_OF_ORDER_MS`], the
/// watermark never passes `clock − (MAX_OUT_OF_ORDER_MS − MAX_CLOCK_LEAD_MS)`, so no record, from
/// however skewed a clock, can make an event less than 55 s old LATE.
///
/// [`MAX_FUTURE_SKEW_MS`]: crate::validate::MAX_FUTURE_SKEW_MS
pub const MAX_CLOCK_LEAD_MS: i64 = 5_000;

/// Whether an event time read at `read_at_ms` may move the watermark (see [`MAX_CLOCK_LEAD_MS`]).
pub fn moves_watermark(event_time_ms: i64, read_at_ms: i64) -> bool {
    event_time_ms <= read_at_ms.saturating_add(MAX_CLOCK_LEAD_MS)
}

/// Judges a stream of validated events in arrival order.
#[derive(Debug, Default)]
pub struct ReferenceCheck {
    newest_ms: Option<i64>,
    ids: HashSet<String>,
    by_time: VecDeque<(i64, String)>,
}

impl ReferenceCheck {
    /// A check that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The watermark: the newest event time seen minus the out-of-order bound; `None` before
    /// the first event.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.newest_ms.map(|t| t - MAX_OUT_OF_ORDER_MS)
    }

    /// Accepts `e`, read at `read_at_ms` (remembering it), or says why not: LATE when its time
    /// is behind the watermark, DUPLICATE when an accepted event had the same id. Its time
    /// moves the watermark only when [`moves_watermark`] says so.
    pub fn check(&mut self, e: &Event, read_at_ms: i64) -> Result<(), Rejection> {
        if let Some(w) = self.watermark_ms() {
            if e.event_time_ms < w {
                return Err(Rejection::new(
                    RejectReason::Late,
                    format!(
                        "event_time_ms: {} is {} ms behind the watermark {w} (newest event time - {MAX_OUT_OF_ORDER_MS} ms)",
                        e.event_time_ms,
                        w - e.event_time_ms
                    ),
                ));
            }
        }
        if self.ids.contains(&e.event_id) {
            return Err(Rejection::new(
                RejectReason::Duplicate,
                format!("event_id: {} was already accepted", e.event_id),
            ));
        }
        self.ids.insert(e.event_id.clone());
        self.by_time.push_back((e.event_time_ms, e.event_id.clone()));
        if !moves_watermark(e.event_time_ms, read_at_ms) {
            return Ok(());
        }
        let newest = self.newest_ms.map_or(e.event_time_ms, |t| t.max(e.event_time_ms));
        self.newest_ms = Some(newest);
        // An id behind the watermark can only come back late, never as a duplicate: forget it.
        // Arrival order is nearly time order, so the front of the queue holds the oldest.
        let forget_before = newest - MAX_OUT_OF_ORDER_MS;
        while self.by_time.front().is_some_and(|(t, _)| *t < forget_before) {
            if let Some((_, id)) = self.by_time.pop_front() {
                self.ids.remove(&id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, t: i64) -> Event {
        Event { event_id: id.into(), event_time_ms: t, ..Default::default() }
    }

    /// Read long after the fact: every time moves the watermark.
    const READ_AT: i64 = i64::MAX / 2;

    fn reason(c: &mut ReferenceCheck, e: &Event) -> Option<RejectReason> {
        c.check(e, READ_AT).err().map(|r| r.reason)
    }

    #[test]
    fn out_of_order_within_the_bound_is_on_time() {
        let mut c = ReferenceCheck::new();
        assert_eq!(reason(&mut c, &ev("a", 100_000)), None);
        assert_eq!(reason(&mut c, &ev("b", 100_000 - MAX_OUT_OF_ORDER_MS)), None);
        assert_eq!(reason(&mut c, &ev("c", 100_000 - MAX_OUT_OF_ORDER_MS - 1)), Some(RejectReason::Late));
    }

    #[test]
    fn a_second_copy_is_a_duplicate_and_the_first_stays_accepted() {
        let mut c = ReferenceCheck::new();
        assert_eq!(reason(&mut c, &ev("a", 1_000)), None);
        assert_eq!(reason(&mut c, &ev("b", 2_000)), None);
        let err = c.check(&ev("a", 1_000), READ_AT).unwrap_err();
        assert_eq!(err.reason, RejectReason::Duplicate);
        assert!(err.to_string().contains("event_id: a"), "{err}");
    }

    #[test]
    fn memory_stays_bounded_by_the_out_of_order_window() {
        let mut c = ReferenceCheck::new();
        for i in 0..100_000i64 {
            c.check(&ev(&i.to_string(), i * 100), READ_AT).unwrap();
        }
        // 100 ms apart: the 60 s bound holds ~600 ids.
        assert!(c.ids.len() <= 602, "{}", c.ids.len());
        // An old copy is late, never a silent duplicate miss.
        assert_eq!(reason(&mut c, &ev("5", 500)), Some(RejectReason::Late));
    }

    #[test]
    fn a_skewed_clock_cannot_make_on_time_events_late() {
        let now = 1_800_000_000_000;
        let mut c = ReferenceCheck::new();
        // 290 s ahead of the clock: accepted, but it does not move the watermark ...
        assert_eq!(c.check(&ev("future", now + 290_000), now).err(), None);
        assert_eq!(c.watermark_ms(), None);
        // ... so 40 events 2 s old are on time, as without it.
        for i in 0..40 {
            assert_eq!(c.check(&ev(&format!("e{i}"), now - 2_000), now).err(), None);
        }
        // Within the lead it counts: the watermark is then at most now + lead − bound.
        assert_eq!(c.check(&ev("near", now + MAX_CLOCK_LEAD_MS), now).err(), None);
        assert_eq!(c.watermark_ms(), Some(now + MAX_CLOCK_LEAD_MS - MAX_OUT_OF_ORDER_MS));
        assert_eq!(c.check(&ev("old", now - 55_000), now).err(), None);
        // A copy of the future event is still a duplicate.
        assert_eq!(reason(&mut c, &ev("future", now + 290_000)), Some(RejectReason::Duplicate));
    }
}
