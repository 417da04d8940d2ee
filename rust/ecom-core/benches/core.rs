//! Per-event costs of ecom-core's live path, each next to its baseline in the same run:
//! incremental session features vs re-folding the session, LSH over a session's tokens, and
//! DP releases of integers (what the job uses) vs floats.
//! `cargo bench -p ecom-core --profile release` (numbers in docs/BENCHMARKS.md).
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ecom_core::dp::{Laplace, Quantity};
use ecom_core::features;
use ecom_core::lsh::{Lsh, DEFAULT_PARAMS};
use ecom_proto::v1::{EnrichedEvent, Event, EventKind, UserHistory};
use std::hint::black_box;

fn session(n: usize) -> Vec<EnrichedEvent> {
    let cats = ["sofas", "beds", "tables", "decor", "rugs"];
    (0..n)
        .map(|i| {
            let kind =
                [EventKind::PageView, EventKind::ProductView, EventKind::ProductView, EventKind::AddToCart][i % 4];
            let product = (kind != EventKind::PageView).then(|| format!("P{:05}", i * 7 % 2_400));
            EnrichedEvent {
                event: Some(Event {
                    event_id: format!("e{i}"),
                    event_time_ms: 1_767_225_600_000 + i as i64 * 20_000,
                    session_id: "s".into(),
                    user_id: "u".into(),
                    kind: kind as i32,
                    unit_price_cents: product.as_ref().map(|_| 10_000 + i as i64 * 100),
                    quantity: (kind == EventKind::AddToCart).then_some(1),
                    product_id: product,
                    device: "mobile".into(),
                    channel: "organic".into(),
                    ..Default::default()
                }),
                category: cats[i % cats.len()].into(),
                style: "nordic".into(),
                ..Default::default()
            }
        })
        .collect()
}

fn features_bench(c: &mut Criterion) {
    let events = session(12);
    let mut g = c.benchmark_group("session features, 12th event of a session");
    let prefix = features::fold(&events[..11]).expect("fresh state");
    g.bench_function("incremental: update state + compute (ecom)", |b| {
        b.iter_batched(
            || prefix.clone(),
            |mut s| {
                features::update(&mut s, black_box(&events[11])).expect("same schema");
                black_box(features::compute(&s, &UserHistory::default()))
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("baseline: re-fold all 12 events + compute", |b| {
        b.iter(|| {
            let s = features::fold(black_box(&events)).expect("fresh state");
            black_box(features::compute(&s, &UserHistory::default()))
        })
    });
    g.finish();
}

fn lsh_bench(c: &mut Criterion) {
    let lsh = Lsh::new(DEFAULT_PARAMS).expect("valid");
    let tokens: Vec<String> = (0..20).map(|i| format!("p:P{i:05}")).collect();
    let mut g = c.benchmark_group("MinHash LSH, 20 tokens, 32 perm / 8 bands");
    g.bench_function("signature + band buckets", |b| {
        b.iter(|| {
            let sig = lsh.signature(black_box(&tokens));
            black_box(lsh.band_buckets(&sig))
        })
    });
    g.finish();
}

fn dp_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("DP release, OpenDP");
    let count = Laplace::new(Quantity::Count, 0.5).expect("valid");
    g.bench_function("discrete Laplace on an i64 count (ecom)", |b| {
        b.iter(|| black_box(count.release(black_box(12_345)).expect("release")))
    });
    g.bench_function("mechanism construction (per window, amortised)", |b| {
        b.iter(|| black_box(Laplace::new(Quantity::BoundedSum { upper: 250_000 }, black_box(0.5)).expect("valid")))
    });
    use opendp::domains::AtomDomain;
    use opendp::measurements::make_laplace;
    use opendp::measures::MaxDivergence;
    use opendp::metrics::AbsoluteDistance;
    let float = make_laplace::<_, _, MaxDivergence>(
        AtomDomain::<f64>::new_non_nan(),
        AbsoluteDistance::<f64>::default(),
        2.0,
        None,
    )
    .expect("valid");
    g.bench_function("baseline: OpenDP Laplace on an f64", |b| {
        b.iter(|| black_box(float.invoke(black_box(&12_345.0)).expect("release")))
    });
    g.finish();
}

criterion_group!(benches, features_bench, lsh_bench, dp_bench);
criterion_main!(benches);
