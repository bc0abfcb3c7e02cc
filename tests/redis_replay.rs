//! `RedisReplayGuard` through real gateways: a nonce accepted by one node is refused by every
//! other node sharing the Redis; an unreachable Redis (a dead port, a relay this test cuts)
//! refuses nonce checks with `X503NS` in bounded time, never accepting them unchecked; keys
//! expire with the window; hostile nonces never reach Redis.
//!
//! The shared Redis (`services::redis_addr`) is never stopped: each test writes under its own
//! key prefix and deletes its keys after. Tests that need it skip when it is unreachable.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::relay::{DROP, HANG, PASS, Relay};
use common::services::unique_name;
use common::{Got, oneshot};
use http::{HeaderValue, Request};
use http_body_util::Full;
use stagegate::auth::RedisReplayGuard;
use stagegate::store::MemoryStore;
use stagegate::{
    ControlPlane, ErrorCode, GatewayLayer, GatewayService, auth::ReplayError, auth::ReplayGuard,
    auth::Signer, control::NewApp, control::NewBackend, control::NewGroup, layer::AppAuthenticator,
    model::App, model::BackendKind, model::MockDefinition, model::Stage, model::StageDefinition,
};

/// One shared configuration: a signed GET `/s` (nonce optional) and a signed GET `/nonce`
/// (nonce forced), served RELEASE, and an app holding grants for both.
struct Config {
    cp: Arc<ControlPlane>,
    app: App,
}

async fn config() -> Config {
    let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let b = cp
        .create_backend(NewBackend::new("redisMock", BackendKind::Mock))
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
            name: "redis_group".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let app = cp
        .create_app(NewApp {
            name: "redis_app".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for (name, path, forced) in [("plain", "/s", false), ("forced", "/nonce", true)] {
        let mut a =
            stagegate::model::ApiDefinition::new(g.id.clone(), name, "GET", path, b.id.clone())
                .unwrap();
        a.force_nonce_check = forced;
        let a = cp.create_api(a).await.unwrap();
        cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();
        cp.authorize(&app.id, &a.id, Stage::RELEASE, None)
            .await
            .unwrap();
    }
    Config { cp, app }
}

impl Config {
    /// A gateway node on this configuration whose nonces go to `guard`.
    fn node(&self, guard: RedisReplayGuard) -> GatewayService {
        GatewayLayer::new(self.cp.snapshot_handle())
            .with_authenticator(AppAuthenticator::new(guard))
            .standalone()
    }

    fn signer(&self) -> Signer {
        Signer::new(
            &self.app.keys[0].app_key,
            self.app.keys[0].app_secret.clone(),
        )
        .unwrap()
    }

    /// A signed GET of `path` with `nonce`, signed now.
    fn signed(&self, path: &str, nonce: &str) -> Request<Full<Bytes>> {
        let mut r = get(path);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        self.signer().sign_with(&mut r, b"", now, nonce).unwrap();
        r
    }
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn code(g: &Got) -> Option<&str> {
    g.header("x-ca-error-code")
}

fn clone_req(r: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let (parts, _) = Request::builder().body(()).unwrap().into_parts();
    let mut parts = parts;
    parts.method = r.method().clone();
    parts.uri = r.uri().clone();
    parts.headers = r.headers().clone();
    Request::from_parts(parts, Full::new(Bytes::new()))
}

fn guard(url: &str, prefix: &str) -> RedisReplayGuard {
    RedisReplayGuard::builder(url)
        .with_key_prefix(prefix)
        .with_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_accepted_by_one_node_is_refused_by_every_other() {
    let Some(addr) = common::services::redis_or_skip().await else {
        return;
    };
    let prefix = format!("{}:", unique_name("sg_nodes"));
    let url = format!("redis://{addr}");
    let cfg = config().await;
    let node_a = cfg.node(guard(&url, &prefix));
    let node_b = cfg.node(guard(&url, &prefix));

    // one request, replayed to the other node behind the load balancer
    let r = cfg.signed("/s", "n-cross-node-1");
    assert_eq!(oneshot(node_a.clone(), clone_req(&r)).await.status, 200);
    let replay = oneshot(node_b.clone(), clone_req(&r)).await;
    assert_eq!(
        (replay.status, code(&replay)),
        (400, Some(ErrorCode::A400NU.as_str()))
    );
    let again = oneshot(node_a.clone(), r).await;
    assert_eq!(code(&again), Some(ErrorCode::A400NU.as_str()));

    // the same request sent to both nodes at once, many times over: exactly one is served
    let r = cfg.signed("/nonce", "n-cross-node-race");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = if i % 2 == 0 { &node_a } else { &node_b };
        let (node, req) = (node.clone(), clone_req(&r));
        tasks.push(tokio::spawn(async move { oneshot(node, req).await }));
    }
    let mut served = 0;
    for t in tasks {
        let got = t.await.unwrap();
        if got.status == 200 {
            served += 1;
        } else {
            assert_eq!(code(&got), Some(ErrorCode::A400NU.as_str()));
        }
    }
    assert_eq!(served, 1, "exactly one of eight copies is served");

    // two nonces, two keys
    let mut conn = common::services::redis_connection(&addr).await;
    assert_eq!(
        common::services::redis_keys(&mut conn, &prefix).await.len(),
        2
    );
    common::services::delete_redis_keys(&addr, &prefix).await;
}

#[tokio::test]
async fn a_key_lives_for_the_window_then_the_nonce_is_fresh_again() {
    let Some(addr) = common::services::redis_or_skip().await else {
        return;
    };
    let prefix = format!("{}:", unique_name("sg_expiry"));
    let g = RedisReplayGuard::builder(format!("redis://{addr}"))
        .with_key_prefix(&prefix)
        .with_ttl(Duration::from_millis(600))
        .build()
        .unwrap();
    let mut conn = common::services::redis_connection(&addr).await;
    let now = 1_000_000;
    assert_eq!(g.check_and_remember("k1", "n", now).await, Ok(true));
    assert_eq!(g.check_and_remember("k1", "n", now).await, Ok(false));
    let pttl: i64 = redis::cmd("PTTL")
        .arg(g.key_for("k1", "n"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=600).contains(&pttl), "PTTL {pttl}");
    // a signed time acceptable for longer keeps the nonce for longer
    assert_eq!(
        g.check_and_remember_until("k1", "long", now, now + 20_000)
            .await,
        Ok(true)
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(g.key_for("k1", "long"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((10_000..=20_000).contains(&pttl), "PTTL {pttl}");
    // after the window Redis has forgotten it
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(g.check_and_remember("k1", "n", now + 800).await, Ok(true));
    assert_eq!(
        g.check_and_remember("k1", "long", now + 800).await,
        Ok(false)
    );
    common::services::delete_redis_keys(&addr, &prefix).await;
}

#[tokio::test]
async fn a_dead_redis_refuses_nonce_checks_with_x503ns_in_bounded_time() {
    // No shared service needed: nobody listens on this port.
    let port = common::dead_port().await;
    let cfg = config().await;
    let node = cfg.node(guard(&format!("redis://127.0.0.1:{port}"), "sg:dead:"));

    for path in ["/s", "/nonce"] {
        let started = Instant::now();
        let got = oneshot(node.clone(), cfg.signed(path, &format!("n-dead{path}"))).await;
        assert_eq!(
            (got.status, code(&got)),
            (503, Some(ErrorCode::X503NS.as_str())),
            "{path}"
        );
        assert_eq!(
            got.header("x-ca-error-message"),
            Some(ErrorCode::X503NS.message())
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{path}");
    }
    // a signed request without a nonce (an empty `X-Ca-Nonce`, to an API that does not force
    // one) never asks Redis, nor does an AppCode
    let got = oneshot(node.clone(), cfg.signed("/s", "")).await;
    assert_eq!(got.status, 200, "{:?}", code(&got));
    let got = oneshot(node.clone(), cfg.signed("/nonce", "")).await;
    assert_eq!(code(&got), Some(ErrorCode::I400MH.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cut_mid_run_refuses_nonce_checks_then_recovers() {
    let Some(addr) = common::services::redis_or_skip().await else {
        return;
    };
    let prefix = format!("{}:", unique_name("sg_relay"));
    let relay = Relay::start(addr.clone()).await;
    let cfg = config().await;
    let node = cfg.node(guard(&format!("redis://{}", relay.addr), &prefix));

    let first = cfg.signed("/nonce", "n-before-cut");
    assert_eq!(oneshot(node.clone(), clone_req(&first)).await.status, 200);

    for (mode, what) in [(DROP, "dropped"), (HANG, "hanging")] {
        relay.set(mode);
        // the relay's pipes notice within 10 ms
        tokio::time::sleep(Duration::from_millis(50)).await;
        // a fresh nonce cannot be checked: refused, in bounded time
        let started = Instant::now();
        let got = oneshot(node.clone(), cfg.signed("/nonce", &format!("n-{what}"))).await;
        assert_eq!(
            (got.status, code(&got)),
            (503, Some(ErrorCode::X503NS.as_str())),
            "{what}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{what}");
        // and a replay is not let through either
        let got = oneshot(node.clone(), clone_req(&first)).await;
        assert_eq!(code(&got), Some(ErrorCode::X503NS.as_str()), "{what}");

        // back: the guard reconnects by itself, and Redis still remembers the first nonce
        relay.set(PASS);
        let deadline = Instant::now() + Duration::from_secs(10);
        let fresh = cfg.signed("/nonce", &format!("n-after-{what}"));
        loop {
            let got = oneshot(node.clone(), clone_req(&fresh)).await;
            if got.status == 200 {
                break;
            }
            assert_eq!(code(&got), Some(ErrorCode::X503NS.as_str()), "{what}");
            assert!(
                Instant::now() < deadline,
                "no recovery after the {what} cut"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let got = oneshot(node.clone(), clone_req(&first)).await;
        assert_eq!(code(&got), Some(ErrorCode::A400NU.as_str()), "{what}");
    }
    common::services::delete_redis_keys(&addr, &prefix).await;
}

#[tokio::test]
async fn hostile_nonces_are_refused_before_they_reach_redis() {
    // Straight to the guard, on a dead port: refused as input, not as an unreachable store,
    // so no connection was even tried.
    let port = common::dead_port().await;
    let g = guard(&format!("redis://127.0.0.1:{port}"), "sg:hostile:");
    // One byte over the verifier's 256-byte nonce limit.
    let long = "n".repeat(257);
    for nonce in [long.as_str(), "bin\u{0}ary", "cr\r\nlf", "\u{ff}\u{fe}", ""] {
        let started = Instant::now();
        let got = g.check_and_remember("203", nonce, 0).await;
        assert!(
            matches!(
                got,
                Err(ReplayError::InvalidInput {
                    name: "X-Ca-Nonce",
                    ..
                })
            ),
            "{nonce:?}: {got:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    // Through a gateway on the shared Redis: refused with I400HD naming the header, and
    // nothing is written.
    let Some(addr) = common::services::redis_or_skip().await else {
        return;
    };
    let prefix = format!("{}:", unique_name("sg_hostile"));
    let cfg = config().await;
    let node = cfg.node(guard(&format!("redis://{addr}"), &prefix));
    let mut oversized = cfg.signed("/nonce", &long);
    let got = oneshot(node.clone(), clone_req(&oversized)).await;
    assert_eq!(
        (got.status, code(&got)),
        (400, Some(ErrorCode::I400HD.as_str()))
    );
    assert!(
        got.header("x-ca-error-message")
            .is_some_and(|m| m.contains("X-Ca-Nonce")),
        "{:?}",
        got.header("x-ca-error-message")
    );
    // binary bytes (obs-text) in the nonce header
    oversized.headers_mut().insert(
        "x-ca-nonce",
        HeaderValue::from_bytes(b"n-\xff\xfe-bin").unwrap(),
    );
    let got = oneshot(node.clone(), oversized).await;
    assert_eq!(
        (got.status, code(&got)),
        (400, Some(ErrorCode::I400HD.as_str()))
    );
    let mut conn = common::services::redis_connection(&addr).await;
    assert!(
        common::services::redis_keys(&mut conn, &prefix)
            .await
            .is_empty()
    );
    // while a well-formed nonce does reach it
    assert_eq!(
        oneshot(node, cfg.signed("/nonce", "n-well-formed"))
            .await
            .status,
        200
    );
    assert_eq!(
        common::services::redis_keys(&mut conn, &prefix).await.len(),
        1
    );
    common::services::delete_redis_keys(&addr, &prefix).await;
}
