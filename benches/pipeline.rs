//! One request through the whole data plane (`tower::ServiceExt::oneshot` on the standalone
//! gateway) to a MOCK backend: anonymous, and signed with HMAC-SHA256; and the `policies`
//! group: an anonymous API with no policy, IP control, throttling, CORS, or all three bound
//! (what each policy adds to the in-process pipeline), and `throttling_redis`: throttling
//! counted by a `RedisCounter` on the shared Redis (`STAGEGATE_TEST_REDIS_ADDR`, default
//! 127.0.0.1:6379; skipped when unreachable), whose requests, well under their limit, spend
//! leased tokens from memory (the run prints how many leases Redis answered).
//! The anonymous one also runs with metrics on (`anonymous_mock_metrics`: the cost of
//! `GatewayLayer::with_metrics`).

mod support;

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::Full;
use stagegate::{
    ControlPlane, GatewayLayer,
    auth::Signer,
    control::{NewApp, NewBackend, NewGroup},
    model::{ApiDefinition, BackendKind, MockDefinition, Stage, StageDefinition},
    store::MemoryStore,
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
        let open = ApiDefinition::new(g.id.clone(), "openApi", "GET", "/open/[id]", b.id.clone())
            .unwrap()
            .anonymous();
        let open = cp.create_api(open).await.unwrap();
        cp.publish(&open.id, Stage::RELEASE, None).await.unwrap();
        let signed = ApiDefinition::new(
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
    policies(c, &rt, &cp);
}

/// Anonymous MOCK APIs, one per case, each request from a peer address with an `Origin`.
fn policies(c: &mut Criterion, rt: &tokio::runtime::Runtime, cp: &ControlPlane) {
    use stagegate::control::NewPolicy;
    use stagegate::policy::{
        Cors, IpControl, IpMode, IpRule, PolicySpec, ThrottleUnit, Throttling,
    };
    let cases = ["none", "ip_control", "throttling", "cors", "all_three"];
    rt.block_on(async {
        let b = cp.backends().await.remove(0);
        let g = cp.groups().await.remove(0);
        let mk = |name: &str, spec| NewPolicy {
            name: name.into(),
            spec,
        };
        let ip = cp
            .create_policy(mk(
                "benchIp",
                PolicySpec::IpControl(IpControl {
                    mode: IpMode::Allow,
                    rules: vec![
                        IpRule::parse("192.0.2.0/24", None).unwrap(),
                        IpRule::parse("10.0.0.0/8", None).unwrap(),
                    ],
                }),
            ))
            .await
            .unwrap();
        let th = cp
            .create_policy(mk(
                "benchThrottle",
                PolicySpec::Throttling(Throttling::new(ThrottleUnit::Second, 1_000_000_000)),
            ))
            .await
            .unwrap();
        let cors = cp
            .create_policy(mk(
                "benchCors",
                PolicySpec::Cors(Cors::new(["https://app.example.com"])),
            ))
            .await
            .unwrap();
        for case in cases {
            let api = ApiDefinition::new(
                g.id.clone(),
                &format!("pol_{case}"),
                "GET",
                &format!("/pol_{case}/[id]"),
                b.id.clone(),
            )
            .unwrap()
            .anonymous();
            let api = cp.create_api(api).await.unwrap();
            cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
            let bind: &[&stagegate::model::PolicyId] = match case {
                "ip_control" => &[&ip.id],
                "throttling" => &[&th.id],
                "cors" => &[&cors.id],
                "all_three" => &[&ip.id, &th.id, &cors.id],
                _ => &[],
            };
            for p in bind {
                cp.bind_policy(&api.id, p, Stage::RELEASE).await.unwrap();
            }
        }
    });
    let svc = GatewayLayer::new(cp.snapshot_handle())
        .standalone()
        .with_client_addr(([10, 1, 2, 3], 40000).into());
    let mut group = c.benchmark_group("policies");
    for case in cases {
        let path = format!("/pol_{case}/42?x=1");
        group.bench_function(case, |b| {
            b.iter(|| {
                let req = Request::get(path.as_str())
                    .header("host", "api.example.com")
                    .header("origin", "https://app.example.com")
                    .body(Full::<Bytes>::default())
                    .unwrap();
                let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
                assert_eq!(res.status(), 200);
                black_box(res)
            });
        });
    }
    throttling_redis(&mut group, rt, cp, &svc_path_api(rt, cp));
    group.finish();
}

/// The throttling API's id, to bind a second policy counted in Redis.
fn svc_path_api(rt: &tokio::runtime::Runtime, cp: &ControlPlane) -> stagegate::model::ApiId {
    rt.block_on(async {
        cp.apis(None)
            .await
            .into_iter()
            .find(|a| a.name == "pol_throttling")
            .unwrap()
            .id
    })
}

/// `policies/throttling_redis`: the `throttling` case's API behind a node whose counter is a
/// `RedisCounter` (a day-long window and a limit of a billion, so every request is well under
/// it; a batch of 4096, topped up in the background at half of it).
fn throttling_redis(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    cp: &ControlPlane,
    api: &stagegate::model::ApiId,
) {
    use stagegate::policy::RedisCounter;
    let addr =
        std::env::var("STAGEGATE_TEST_REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:6379".to_owned());
    if std::net::TcpStream::connect(&addr).is_err() {
        eprintln!("policies/throttling_redis skipped: no Redis at {addr}");
        return;
    }
    let prefix = format!("sg_bench_rate_{}:", std::process::id());
    let counter = std::sync::Arc::new(
        RedisCounter::builder(format!("redis://{addr}"))
            .with_key_prefix(&prefix)
            .with_batch(4096)
            .build()
            .unwrap(),
    );
    // The Redis-counted policy replaces the per-second one on this API.
    rt.block_on(async {
        use stagegate::control::NewPolicy;
        use stagegate::policy::{PolicySpec, ThrottleUnit, Throttling};
        let old = cp
            .policies()
            .await
            .into_iter()
            .find(|p| p.name == "benchThrottle")
            .unwrap();
        cp.unbind_policy(api, &old.id, &Stage::RELEASE)
            .await
            .unwrap();
        let p = cp
            .create_policy(NewPolicy {
                name: "benchThrottleRedis".into(),
                spec: PolicySpec::Throttling(Throttling::new(ThrottleUnit::Day, 1_000_000_000)),
            })
            .await
            .unwrap();
        cp.bind_policy(api, &p.id, Stage::RELEASE).await.unwrap();
    });
    let svc = GatewayLayer::new(cp.snapshot_handle())
        .with_rate_counter(std::sync::Arc::clone(&counter))
        .standalone()
        .with_client_addr(([10, 1, 2, 3], 40000).into());
    // A runtime whose worker thread runs the counter's background top-ups while `block_on`
    // drives the request on this thread, as a server's I/O gives its tasks time; on the
    // current-thread runtime of the other cases a request that never yields starves them.
    let rt = &tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut requests = 0u64;
    group.bench_function("throttling_redis", |b| {
        b.iter(|| {
            let req = Request::get("/pol_throttling/42?x=1")
                .header("host", "api.example.com")
                .header("origin", "https://app.example.com")
                .body(Full::<Bytes>::default())
                .unwrap();
            let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
            assert_eq!(res.status(), 200);
            requests += 1;
            black_box(res)
        });
    });
    let s = counter.stats();
    eprintln!(
        "policies/throttling_redis: {requests} requests, {} leases, {} waited for one, {} outages",
        s.leases, s.waited, s.outages
    );
    rt.block_on(async {
        let mut conn = redis::Client::open(format!("redis://{addr}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        for k in keys {
            let _: i64 = redis::cmd("DEL")
                .arg(k)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    });
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
