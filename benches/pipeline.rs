//! One request through the whole data plane (`tower::ServiceExt::oneshot` on the standalone
//! gateway) to a MOCK backend: anonymous, and signed with HMAC-SHA256; and the anonymous one
//! with metrics on (`anonymous_mock_metrics`: the cost of `GatewayLayer::with_metrics`).

mod support;

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::Full;
use stagegate::{
    ApiDefinition, BackendKind, ControlPlane, GatewayLayer, MockDefinition, NewApp, NewBackend,
    NewGroup, Signer, Stage, StageDefinition, store::MemoryStore,
};
use tower::ServiceExt;

fn pipeline(c: &mut Criterion) {
    let rt = support::runtime();
    let (cp, key, secret) = rt.block_on(async {
        let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
        let b = cp
            .create_backend(NewBackend::new("benchMock", BackendKind::Mock))
            .await
            .unwrap();
        let def = StageDefinition::Mock(MockDefinition {
            status: 200,
            headers: Default::default(),
            body: "ok".into(),
        });
        cp.set_stage_definition(&b.id, Stage::RELEASE, def)
            .await
            .unwrap();
        let g = cp
            .create_group(NewGroup {
                name: "bench_group".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let open =
            ApiDefinition::builder(g.id.clone(), "openApi", "GET", "/open/[id]", b.id.clone())
                .unwrap()
                .anonymous();
        let open = cp.create_api(open).await.unwrap();
        cp.publish(&open.id, Stage::RELEASE, None).await.unwrap();
        let signed = ApiDefinition::builder(
            g.id.clone(),
            "signedApi",
            "GET",
            "/signed/[id]",
            b.id.clone(),
        )
        .unwrap();
        let signed = cp.create_api(signed).await.unwrap();
        cp.publish(&signed.id, Stage::RELEASE, None).await.unwrap();
        let app = cp
            .create_app(NewApp {
                name: "bench_app".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        cp.authorize(&app.id, &signed.id, Stage::RELEASE, None)
            .await
            .unwrap();
        (
            cp,
            app.keys[0].app_key.clone(),
            app.keys[0].app_secret.clone(),
        )
    });
    let svc = GatewayLayer::new(cp.snapshot_handle()).standalone();
    let mut group = c.benchmark_group("pipeline");
    let anonymous = |b: &mut criterion::Bencher<'_>, svc: &stagegate::GatewayService| {
        b.iter(|| {
            let req = Request::get("/open/42?x=1")
                .header("host", "api.example.com")
                .body(Full::<Bytes>::default())
                .unwrap();
            let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
            assert_eq!(res.status(), 200);
            black_box(res)
        });
    };
    group.bench_function("anonymous_mock", |b| anonymous(b, &svc));
    // Metrics on: the route's series are resolved on the first (warm-up) request, then each
    // request counts into cached handles.
    let metrics = stagegate::metrics::GatewayMetrics::new();
    let with_metrics = GatewayLayer::new(cp.snapshot_handle())
        .with_metrics(metrics.clone())
        .standalone();
    group.bench_function("anonymous_mock_metrics", |b| anonymous(b, &with_metrics));
    black_box(metrics.render());
    // Each signed request needs its own nonce, so requests are signed outside the timing,
    // 64 at a time: a server handles a request just after parsing it, with the request warm
    // in cache. (Criterion's `SmallInput` prepared about a tenth of a sample ahead, thousands
    // of requests and megabytes of headers, so every measured request started cold.)
    let signer = Signer::new(&key, secret).unwrap();
    group.bench_function("signed_mock", |b| {
        b.iter_batched(
            || {
                let mut req = Request::get("/signed/42?b=2&a=1")
                    .header("host", "api.example.com")
                    .body(Full::<Bytes>::default())
                    .unwrap();
                signer.sign(&mut req, b"");
                req
            },
            |req| {
                let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
                assert_eq!(res.status(), 200);
                black_box(res)
            },
            BatchSize::NumIterations(64),
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = pipeline
}
criterion_main!(benches);
