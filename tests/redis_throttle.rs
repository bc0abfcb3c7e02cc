//! `RedisCounter` through real gateways: two nodes sharing the Redis hold one limit together
//! (never more, and at most the documented shortfall less), a request well under its limit is
//! decided without waiting for Redis, and an unreachable Redis (a dead port, a relay this test
//! cuts) fails open to per-node counting in bounded time, then recovers by itself.
//!
//! The shared Redis (`services::redis_addr`) is never stopped: each test writes under its own
//! key prefix and deletes its keys after. Tests that need it skip when it is unreachable.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::relay::{DROP, HANG, PASS, Relay};
use common::services::unique_name;
use common::{Fx, fx, oneshot};
use stagegate::GatewayService;
use stagegate::control::NewPolicy;
use stagegate::model::{BackendKind, Stage};
use stagegate::policy::{PolicySpec, RedisCounter, ThrottleUnit, Throttling};

/// A mock API `/t` with a throttling policy of `limit` per `unit` bound in RELEASE.
async fn throttled(unit: ThrottleUnit, limit: u32) -> Fx {
    let f = fx(BackendKind::Mock).await;
    f.define_mock("ok").await;
    let api = f.api("throttled", "GET", "/t", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let p =
        f.cp.create_policy(NewPolicy {
            name: "clusterLimit".into(),
            spec: PolicySpec::Throttling(Throttling::new(unit, limit)),
        })
        .await
        .unwrap();
    f.cp.bind_policy(&api.id, &p.id, Stage::RELEASE)
        .await
        .unwrap();
    f
}

fn counter(url: &str, prefix: &str, batch: u32, nodes: u32) -> Arc<RedisCounter> {
    Arc::new(
        RedisCounter::builder(url)
            .with_key_prefix(prefix)
            .with_batch(batch)
            .with_nodes(nodes)
            .with_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
}

fn node(f: &Fx, c: &Arc<RedisCounter>) -> GatewayService {
    f.layer().with_rate_counter(Arc::clone(c)).standalone()
}

/// Sends `n` requests at once, spread over `nodes` round-robin: (admitted, refused with 429).
async fn burst(nodes: &[GatewayService], n: usize) -> (u32, u32) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let node = nodes[i % nodes.len()].clone();
            tokio::spawn(async move { oneshot(node, common::req("GET", "/t", "")).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let got = t.await.unwrap();
        match got.status {
            200 => ok += 1,
            429 => {
                assert_eq!(got.header("x-ca-error-code"), Some("T429PA"));
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", got.text()),
        }
    }
    (ok, refused)
}

/// Waits for the next minute when the current one ends within `margin`, so a burst stays in
/// one window.
async fn clear_of_the_minute_edge(margin: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = Duration::from_millis(u64::try_from(now.as_millis() % 60_000).unwrap());
    let left = Duration::from_secs(60) - into;
    if left < margin {
        tokio::time::sleep(left + Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sharing_redis_admit_at_most_the_limit_and_at_least_the_bound() {
    let Some(addr) = common::services::redis_or_skip().await else {
        return;
    };
    let prefix = format!("{}:", unique_name("sg_rate_nodes"));
    let url = format!("redis://{addr}");
    let f = throttled(ThrottleUnit::Minute, 50).await;
    let (batch, nodes) = (8, 2);
    let (ca, cb) = (
        counter(&url, &prefix, batch, nodes),
        counter(&url, &prefix, batch, nodes),
    );
    let gws = [node(&f, &ca), node(&f, &cb)];
    clear_of_the_minute_edge(Duration::from_secs(15)).await;

    let (ok, refused) = burst(&gws, 150).await;
    assert_eq!(ok + refused, 150);
    // Overshoot 0; shortfall at most (nodes - 1) * (batch - 1).
    assert!(ok <= 50, "admitted {ok} > 50");
    let bound = (nodes - 1) * (batch - 1);
    assert!(ok >= 50 - bound, "admitted {ok} < 50 - {bound}");
    // Then every node refuses from memory: no more leases.
    let leases = ca.stats().leases + cb.stats().leases;
    let (ok2, _) = burst(&gws, 40).await;
    assert_eq!(ok2, 0);
    assert_eq!(ca.stats().leases + cb.stats().leases, leases);
    // Batches, not a call per request: 50 tokens in far fewer leases.
    assert!(leases < 25, "{leases} leases for {ok} admissions");
    let (a, b) = (ca.stats(), cb.stats());
    assert_eq!(a.tokens_granted + b.tokens_granted, 50);
    assert!(a.tokens_granted > 0 && b.tokens_granted > 0, "{a:?} {b:?}");
    assert_eq!((a.outages, b.outages), (0, 0));

    // One key per window, expiring with it.
    let mut conn = common::services::redis_connection(&addr).await;
    let keys = common::services::redis_keys(&mut conn, &prefix).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].contains(":RELEASE:-:M"), "{keys:?}");
    let count: u32 = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 50);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=65_000).contains(&pttl), "PTTL {pttl}");
    common::services::delete_redis_keys(&addr, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_well_under_its_limit_never_waits_for_redis() {
    let Some(addr) = common::services::redis_or_skip().await else {
        return;
    };
    let prefix = format!("{}:", unique_name("sg_rate_fast"));
    let url = format!("redis://{addr}");
    let f = throttled(ThrottleUnit::Hour, 100_000).await;
    // A node never waits while it spends fewer than half a batch in one Redis round trip:
    // the top-up, asked for at half a batch, lands before the lease runs out. Here a request
    // every millisecond, a batch of 32 (a debug build on a loaded machine can see a round trip
    // of several milliseconds).
    let c = counter(&url, &prefix, 32, 1);
    let gw = node(&f, &c);
    // The first request of the window waits for the first lease.
    let got = oneshot(gw.clone(), common::req("GET", "/t", "")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("ratelimit-limit"), Some("100000"));
    assert_eq!(c.stats().waited, 1);
    // Then requests spend from memory; the lease is topped up behind them.
    for _ in 0..200 {
        let got = oneshot(gw.clone(), common::req("GET", "/t", "")).await;
        assert_eq!(got.status, 200);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let s = c.stats();
    assert_eq!(
        s.waited, 1,
        "no request after the first waited for Redis: {s:?}"
    );
    assert!(s.leases >= 2, "refilled in the background: {s:?}");
    // one key per window (two if the run crossed an hour)
    assert!((1..=2).contains(&common::services::delete_redis_keys(&addr, &prefix).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_fails_open_to_a_share_of_the_limit_in_bounded_time() {
    let port = common::dead_port().await;
    let f = throttled(ThrottleUnit::Hour, 10).await;
    let c = counter(&format!("redis://127.0.0.1:{port}"), "sg:dead:", 8, 2);
    let gw = node(&f, &c);
    let started = Instant::now();
    let mut ok = 0;
    for _ in 0..20 {
        let got = oneshot(gw.clone(), common::req("GET", "/t", "")).await;
        match got.status {
            200 => ok += 1,
            429 => assert_eq!(got.header("x-ca-error-code"), Some("T429PA")),
            other => panic!("{other}"),
        }
    }
    assert_eq!(ok, 5, "ceil(10 / 2 nodes) on this node alone");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let s = c.stats();
    assert!(s.in_outage);
    assert_eq!((s.outages, s.fallback_admitted, s.leases), (1, 5, 0));
    // What an operator alerts on.
    let metrics = stagegate::metrics::GatewayMetrics::new();
    metrics.observe_throttle_store(&s);
    let text = metrics.render();
    assert!(
        text.contains("stagegate_throttle_store_outage 1\n"),
        "{text}"
    );
    assert!(
        text.contains("stagegate_throttle_store_outages_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("stagegate_throttle_fallback_admitted_total 5\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cut_mid_run_fails_open_then_counts_across_the_cluster_again() {
    let Some(addr) = common::services::redis_or_skip().await else {
        return;
    };
    let prefix = format!("{}:", unique_name("sg_rate_relay"));
    let relay = Relay::start(addr.clone()).await;
    let f = throttled(ThrottleUnit::Hour, 1_000).await;
    let c = counter(&format!("redis://{}", relay.addr), &prefix, 4, 1);
    let gw = node(&f, &c);
    assert_eq!(burst(std::slice::from_ref(&gw), 10).await, (10, 0));
    assert!(!c.stats().in_outage);

    for (mode, what) in [(DROP, "dropped"), (HANG, "hanging")] {
        relay.set(mode);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Requests go on being admitted (fail open), none waiting past the timeout.
        let started = Instant::now();
        for _ in 0..20 {
            let got = oneshot(gw.clone(), common::req("GET", "/t", "")).await;
            assert_eq!(got.status, 200, "{what}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what}: {:?}",
            started.elapsed()
        );
        assert!(c.stats().in_outage, "{what}");

        // Back: a background probe (once a second) ends the outage by itself.
        relay.set(PASS);
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.stats().in_outage {
            assert!(
                Instant::now() < deadline,
                "no recovery after the {what} cut"
            );
            let got = oneshot(gw.clone(), common::req("GET", "/t", "")).await;
            assert_eq!(got.status, 200, "{what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let s = c.stats();
    assert_eq!(s.outages, 2, "one per cut: {s:?}");
    assert!(s.fallback_admitted > 0, "{s:?}");
    common::services::delete_redis_keys(&addr, &prefix).await;
}
