//! Route lookup on the hot path: one snapshot load plus host, stage, method and path matching.
//!
//! `random_hit/N` and `miss/N` over N published APIs (a mix of static, `[param]` and
//! match-all paths in N/100 groups), `contended_hit/10000` with a writer publishing
//! continuously, and `rwlock_baseline_hit/10000`: the same lookup behind a
//! `parking_lot::RwLock` instead of the lock-free handle.

mod support;

use std::cell::OnceCell;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::Method;
use stagegate::{
    model::{ApiDefinition, Stage},
    routing::{RouteMatch, Snapshot},
};

/// Resolves the next of the 1 024 prepared paths (a GET in RELEASE, no host).
fn resolve_next(snap: &Snapshot, paths: &[String], i: &mut usize) -> Option<RouteMatch> {
    *i = (*i + 1) & 1023;
    snap.resolve(None, &Stage::RELEASE, &Method::GET, black_box(&paths[*i]))
}

fn lookup(c: &mut Criterion) {
    let rt = support::runtime();
    let mut group = c.benchmark_group("route_lookup");
    group.throughput(Throughput::Elements(1));
    for n in [100usize, 10_000, 100_000] {
        // Built on first use, so a filtered run (`-- random_hit/100000`) only builds its own.
        let fleet: OnceCell<Arc<support::Fleet>> = OnceCell::new();
        let fleet = || fleet.get_or_init(|| Arc::new(rt.block_on(support::fleet(n, 100))));
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("random_hit", n), &n, |b, _| {
            let fleet = fleet();
            let handle = fleet.cp.snapshot_handle();
            b.iter(|| {
                let m = resolve_next(&handle.load(), &fleet.hits, &mut i);
                assert!(m.is_some());
                black_box(m)
            });
        });
        group.bench_with_input(BenchmarkId::new("miss", n), &n, |b, _| {
            let fleet = fleet();
            let handle = fleet.cp.snapshot_handle();
            b.iter(|| {
                let m = resolve_next(&handle.load(), &fleet.misses, &mut i);
                assert!(m.is_none());
                black_box(m)
            });
        });
        if n != 10_000 {
            continue;
        }
        group.bench_with_input(BenchmarkId::new("rwlock_baseline_hit", n), &n, |b, _| {
            let fleet = fleet();
            let lock = parking_lot::RwLock::new(fleet.cp.snapshot_handle().load_full());
            b.iter(|| black_box(resolve_next(&lock.read(), &fleet.hits, &mut i)));
        });
        // a writer thread publishing continuously into another group, started on first use
        let stop = Arc::new(AtomicBool::new(false));
        let writer: OnceCell<std::thread::JoinHandle<u64>> = OnceCell::new();
        group.bench_with_input(BenchmarkId::new("contended_hit", n), &n, |b, _| {
            let fleet = fleet();
            writer.get_or_init(|| {
                let (stop, fleet) = (stop.clone(), Arc::clone(fleet));
                std::thread::spawn(move || {
                    support::runtime().block_on(async move {
                        let api = ApiDefinition::new(
                            fleet.groups[0].clone(),
                            "churn_api",
                            "GET",
                            "/churn/[x]",
                            fleet.backend.clone(),
                        )
                        .unwrap()
                        .anonymous();
                        let api = fleet.cp.create_api(api).await.unwrap();
                        let mut published = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            fleet
                                .cp
                                .publish(&api.id, Stage::RELEASE, None)
                                .await
                                .unwrap();
                            fleet.cp.unpublish(&api.id, &Stage::RELEASE).await.unwrap();
                            published += 1;
                        }
                        published
                    })
                })
            });
            let handle = fleet.cp.snapshot_handle();
            b.iter(|| black_box(resolve_next(&handle.load(), &fleet.hits, &mut i)));
        });
        stop.store(true, Ordering::Relaxed);
        if let Some(writer) = writer.into_inner() {
            let changes = writer.join().unwrap();
            eprintln!("contended_hit: the writer made {changes} publish/unpublish pairs meanwhile");
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = lookup
}
criterion_main!(benches);
