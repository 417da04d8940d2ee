//! What the stores keep of the free-text fields a visitor or their browser fills in
//! (`search_query`, `referrer`, `user_agent`): they can carry personal data, so `ecom sink
//! --free-text` keeps them, replaces each with its keyed hash (equal texts still group
//! together) or drops them. The job and Kafka keep them whole: Guard reads the user agent,
//! the LSH tokens the search words. Applied to events and to the events inside dead letters.

use ecom_core::secret::IpHasher;
use ecom_proto::v1::{EnrichedEvent, Event, InvalidEvent};
use prost::Message as _;
use std::borrow::Cow;

/// The free-text policy of the stores.
#[derive(Debug, Clone, Default)]
pub enum FreeText {
    /// Store them as sent.
    #[default]
    Keep,
    /// Store the HMAC-SHA256 (hex) of each under the IP-hash key.
    Hash(IpHasher),
    /// Store them empty.
    Drop,
}

impl FreeText {
    fn apply(&self, e: &mut Event) {
        let f = |s: &mut String| match self {
            FreeText::Keep => {}
            FreeText::Drop => s.clear(),
            FreeText::Hash(h) if !s.is_empty() => *s = h.hash(s),
            FreeText::Hash(_) => {}
        };
        f(&mut e.referrer);
        f(&mut e.user_agent);
        if let Some(q) = e.search_query.as_mut() {
            f(q);
        }
    }

    /// The event as the stores get it.
    pub fn event<'a>(&self, e: &'a EnrichedEvent) -> Cow<'a, EnrichedEvent> {
        match (self, &e.event) {
            (FreeText::Keep, _) | (_, None) => Cow::Borrowed(e),
            (_, Some(_)) => {
                let mut out = e.clone();
                if let Some(ev) = out.event.as_mut() {
                    self.apply(ev);
                }
                Cow::Owned(out)
            }
        }
    }

    /// The dead letter as the stores get it: a whole `raw` that decodes as an Event is
    /// re-encoded with the policy applied; anything else stays as the job wrote it.
    pub fn invalid<'a>(&self, e: &'a InvalidEvent) -> Cow<'a, InvalidEvent> {
        if matches!(self, FreeText::Keep) || e.raw_truncated {
            return Cow::Borrowed(e);
        }
        match Event::decode(e.raw.as_slice()) {
            Ok(mut ev) => {
                self.apply(&mut ev);
                Cow::Owned(InvalidEvent { raw: ev.encode_to_vec(), ..e.clone() })
            }
            Err(_) => Cow::Borrowed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            event_id: "e".into(),
            search_query: Some("oak table for alice".into()),
            referrer: "https://mail.example/inbox?u=alice".into(),
            user_agent: "Mozilla/5.0".into(),
            page: "/search".into(),
            ..Default::default()
        }
    }

    #[test]
    fn drop_and_hash_touch_only_the_free_text() {
        let e = EnrichedEvent { event: Some(event()), ..Default::default() };
        let dropped = FreeText::Drop.event(&e).into_owned().event.unwrap();
        assert_eq!(
            (dropped.search_query.as_deref(), dropped.referrer.as_str(), dropped.user_agent.as_str()),
            (Some(""), "", "")
        );
        assert_eq!(dropped.page, "/search");
        let h = IpHasher::new(b"k");
        let hashed = FreeText::Hash(h.clone()).event(&e).into_owned().event.unwrap();
        assert_eq!(hashed.search_query.unwrap(), h.hash("oak table for alice"));
        assert_eq!(hashed.user_agent, h.hash("Mozilla/5.0"));
        assert!(matches!(FreeText::Keep.event(&e), Cow::Borrowed(_)));
    }

    #[test]
    fn dead_letters_that_decode_are_scrubbed_too() {
        let letter = InvalidEvent { raw: event().encode_to_vec(), ..Default::default() };
        let out = FreeText::Drop.invalid(&letter);
        assert_eq!(Event::decode(out.raw.as_slice()).unwrap().referrer, "");
        let garbage = InvalidEvent { raw: vec![0xff, 0xff], ..Default::default() };
        assert!(matches!(FreeText::Drop.invalid(&garbage), Cow::Borrowed(_)));
    }
}
