//! The parity fixture: generated sessions, enriched from the catalog, with the features ecom-core
//! computes after each event and the MinHash LSH signature and band buckets of the session's
//! tokens so far (default parameters). The Flink job's Maven test (EcomNativeTest) feeds the same
//! events through JNI and must get the same bits: one implementation, live and offline.
//!
//! This test fails when the fixture is stale; `UPDATE_GOLDEN=1 cargo test -p ecom-gen --test
//! features_golden` rewrites it.
use ecom_core::features;
use ecom_core::lsh::{Lsh, DEFAULT_PARAMS};
use ecom_gen::{GenConfig, Generator, Payload};
use ecom_proto::v1::{Product, UserHistory};
use prost::Message;
use std::collections::HashMap;
use std::fmt::Write;

const FIXTURE: &str = "flink-job/src/test/resources/features-golden.tsv";

fn fixture() -> String {
    let mut g = Generator::new(GenConfig {
        events: 400,
        seed: 3,
        malformed_rate: 0.0,
        out_of_order_rate: 0.05,
        ..Default::default()
    });
    let catalog: HashMap<String, Product> = g.catalog().iter().map(|p| (p.product_id.clone(), p.clone())).collect();
    let mut states = HashMap::new();
    let lsh = Lsh::new(DEFAULT_PARAMS).expect("valid defaults");
    let mut out = format!(
        "# session_id\\tEnrichedEvent (hex)\\tfeatures after it (f64 bits, hex)\\tLSH of the session tokens \
         (signature then buckets, hex); schema {} lsh {}/{}\n",
        features::schema_hash(),
        DEFAULT_PARAMS.num_perm,
        DEFAULT_PARAMS.num_bands
    );
    for rec in g.by_ref() {
        let Payload::Event(event) = rec.payload else { unreachable!("no malformed records asked for") };
        let product = event.product_id.as_ref().and_then(|p| catalog.get(p));
        let e = features::enrich(event, product);
        let sid = e.event.as_ref().map(|x| x.session_id.clone()).unwrap_or_default();
        let state = states.entry(sid.clone()).or_insert_with(features::new_state);
        features::update(state, &e).expect("a fresh state of this schema");
        let f = features::compute(state, &UserHistory::default());
        let hex: String = e.encode_to_vec().iter().map(|b| format!("{b:02x}")).collect();
        let bits: Vec<String> = f.iter().map(|x| format!("{:016x}", x.to_bits())).collect();
        let sig = lsh.signature(&state.tokens);
        let lsh_hex: Vec<String> = sig.iter().chain(&lsh.band_buckets(&sig)).map(|v| format!("{v:016x}")).collect();
        writeln!(out, "{sid}\t{hex}\t{}\t{}", bits.join(","), lsh_hex.join(",")).expect("writing to a String");
    }
    out
}

#[test]
fn the_parity_fixture_matches_ecom_core() {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    let path = root.join(FIXTURE);
    let want = fixture();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(have == want, "{FIXTURE} is stale: rerun with UPDATE_GOLDEN=1 and commit it");
}
