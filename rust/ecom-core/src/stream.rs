//! The two rules that need what came before: exact duplicates and late events. The validator
//! judges one record alone; these judge it against the stream. This is the reference meaning
//! of REJECT_REASON_DUPLICATE and REJECT_REASON_LATE; the Flink job applies the same bounds
//! with event-time watermarks and keyed state.
use crate::validate::Rejection;
use ecom_proto::v1::{Event, RejectReason};
use std::collections::{HashSet, VecDeque};

/// Bounded out-of-orderness: the watermark trails the newest event time by this much, so an
/// event up to this far behind the newest one is still on time.
pub const MAX_OUT_OF_ORDER_MS: i64 = 60_000;

/// Judges a stream of validated events in arrival order.
#[derive(Debug, Default)]
pub struct StreamCheck {
    newest_ms: Option<i64>,
    ids: HashSet<String>,
    by_time: VecDeque<(i64, String)>,
}

impl StreamCheck {
    /// A check that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The watermark: the newest event time seen minus the out-of-order bound; `None` before
    /// the first event.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.newest_ms.map(|t| t - MAX_OUT_OF_ORDER_MS)
    }

    /// Accepts `e` (remembering it) or says why not: LATE when its time is behind the
    /// watermark, DUPLICATE when an accepted event had the same id.
    pub fn check(&mut self, e: &Event) -> Result<(), Rejection> {
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

    /// Event ids currently remembered (bounded by the event rate times the bound).
    pub fn remembered(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, t: i64) -> Event {
        Event { event_id: id.into(), event_time_ms: t, ..Default::default() }
    }

    fn reason(c: &mut StreamCheck, e: &Event) -> Option<RejectReason> {
        c.check(e).err().map(|r| r.reason)
    }

    #[test]
    fn out_of_order_within_the_bound_is_on_time() {
        let mut c = StreamCheck::new();
        assert_eq!(reason(&mut c, &ev("a", 100_000)), None);
        assert_eq!(reason(&mut c, &ev("b", 100_000 - MAX_OUT_OF_ORDER_MS)), None);
        assert_eq!(reason(&mut c, &ev("c", 100_000 - MAX_OUT_OF_ORDER_MS - 1)), Some(RejectReason::Late));
    }

    #[test]
    fn a_second_copy_is_a_duplicate_and_the_first_stays_accepted() {
        let mut c = StreamCheck::new();
        assert_eq!(reason(&mut c, &ev("a", 1_000)), None);
        assert_eq!(reason(&mut c, &ev("b", 2_000)), None);
        let err = c.check(&ev("a", 1_000)).unwrap_err();
        assert_eq!(err.reason, RejectReason::Duplicate);
        assert!(err.to_string().contains("event_id: a"), "{err}");
    }

    #[test]
    fn memory_stays_bounded_by_the_out_of_order_window() {
        let mut c = StreamCheck::new();
        for i in 0..100_000i64 {
            c.check(&ev(&i.to_string(), i * 100)).unwrap();
        }
        // 100 ms apart: the 60 s bound holds ~600 ids.
        assert!(c.remembered() <= 602, "{}", c.remembered());
        // An old copy is late, never a silent duplicate miss.
        assert_eq!(reason(&mut c, &ev("5", 500)), Some(RejectReason::Late));
    }
}
