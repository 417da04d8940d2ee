//! Training's streaming assembler (peak memory: the open sessions) builds exactly the sessions
//! assembling every event at once does.
use ecom_gen::out_dir;
use ecom_proto::v1::{truth_record, Event, Product, TruthRecord};
use ecom_train::data::{self, Session};
use prost::Message;
use std::collections::{HashMap, HashSet};

mod common;

fn key(s: &Session) -> (String, i64, i64, bool, Vec<String>, Vec<u8>) {
    (s.session_id.clone(), s.start_ms, s.end_ms, s.purchased, s.bought.clone(), s.state.encode_to_vec())
}

#[test]
fn streaming_and_all_at_once_give_the_same_sessions() {
    let dir = common::tmp("assemble");
    common::generate(&dir, 60_000, 11);
    let (streamed, stats) = data::load_dir(&dir, false).unwrap();
    assert_eq!(stats.after_close, 0, "{stats:?}");

    // All at once, as before: every event grouped by session, then folded.
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let catalog: HashMap<String, Product> = out_dir::read_delimited(&read(out_dir::CATALOG_PB))
        .unwrap()
        .into_iter()
        .map(|b| Product::decode(b).unwrap())
        .map(|p| (p.product_id.clone(), p))
        .collect();
    let (mut truth, mut malformed) = (HashMap::new(), HashSet::new());
    for b in out_dir::read_delimited(&read(out_dir::TRUTH_PB)).unwrap() {
        match TruthRecord::decode(b).unwrap().record {
            Some(truth_record::Record::Session(s)) => {
                truth.insert(s.session_id.clone(), s);
            }
            Some(truth_record::Record::Malformed(m)) => {
                malformed.insert(m.sequence);
            }
            None => {}
        }
    }
    let mut events = HashMap::new();
    for (seq, b) in out_dir::read_delimited(&read(out_dir::EVENTS_PB)).unwrap().into_iter().enumerate() {
        if !malformed.contains(&(seq as i64)) {
            let e = Event::decode(b).unwrap();
            let product = e.product_id.as_ref().and_then(|p| catalog.get(p));
            data::add_event(&mut events, seq, ecom_core::features::enrich(e, product));
        }
    }
    let mut at_once_stats = data::LoadStats::default();
    let at_once = data::assemble(events, truth, &mut at_once_stats).unwrap();

    assert!(streamed.len() > 5_000, "{}", streamed.len());
    assert_eq!(streamed.iter().map(key).collect::<Vec<_>>(), at_once.iter().map(key).collect::<Vec<_>>());
    assert_eq!(
        (stats.eligible, stats.without_events, stats.without_truth),
        (at_once_stats.eligible, at_once_stats.without_events, at_once_stats.without_truth)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sessions_straight_from_the_generator_are_the_files_sessions() {
    let dir = common::tmp("generated");
    let cfg = ecom_gen::GenConfig { events: 40_000, seed: 12, malformed_rate: 0.02, ..Default::default() };
    ecom_gen::write_training_files(&dir, cfg.clone()).unwrap();
    let (from_files, file_stats) = data::load_dir(&dir, false).unwrap();
    let (generated, stats) = data::load_generated(cfg, false).unwrap();
    assert!(generated.len() > 3_000, "{}", generated.len());
    assert_eq!(generated.iter().map(key).collect::<Vec<_>>(), from_files.iter().map(key).collect::<Vec<_>>());
    assert_eq!(
        (stats.records, stats.malformed, stats.sessions, stats.eligible, stats.without_events),
        (file_stats.records, file_stats.malformed, file_stats.sessions, file_stats.eligible, file_stats.without_events)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
