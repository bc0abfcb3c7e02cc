//! Publishing one API into a stage that already holds many published APIs.
//!
//! `group_100/total_N`: the affected group holds 100 APIs and the stage holds N in all — the
//! cost must follow the group's size, not the total. `group_1000/total_10000` shows the
//! growth with the group's size.

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use stagegate::model::{ApiDefinition, Stage};

fn publish(c: &mut Criterion) {
    let rt = support::runtime();
    let mut group = c.benchmark_group("publish");
    for (per_group, total) in [(100usize, 1_000usize), (100, 10_000), (1_000, 10_000)] {
        let fleet = rt.block_on(support::fleet(total, per_group));
        let api = rt.block_on(async {
            let a = ApiDefinition::new(
                fleet.groups[0].clone(),
                "bench_new",
                "GET",
                "/new/[id]",
                fleet.backend.clone(),
            )
            .unwrap()
            .anonymous();
            fleet.cp.create_api(a).await.unwrap()
        });
        group.bench_with_input(
            BenchmarkId::new(format!("group_{per_group}"), format!("total_{total}")),
            &total,
            |b, _| {
                b.iter(|| {
                    rt.block_on(async {
                        black_box(
                            fleet
                                .cp
                                .publish(&api.id, Stage::RELEASE, None)
                                .await
                                .unwrap(),
                        )
                    })
                });
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = publish
}
criterion_main!(benches);
