//! Service discovery end to end: static lists, DNS (localhost), Nacos (against a local
//! stand-in serving Nacos's documented instance-list JSON), round-robin, ejection, and the
//! gateway errors for no healthy instance and registries without a provider. Loopback only.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::{dead_port, fx, oneshot, req, upstream};
use parking_lot::Mutex;
use stagegate::backend::{Backends, EjectionPolicy, NacosDiscovery, Registries};
use stagegate::model::{BackendKind, DiscoveryDefinition, RegistryType, Stage, StageDefinition};

fn def(registry: RegistryType, service: &str, addresses: Vec<String>) -> StageDefinition {
    StageDefinition::ServiceDiscovery(DiscoveryDefinition {
        registry,
        service_name: service.into(),
        namespace: Some("public".into()),
        group: Some("DEFAULT_GROUP".into()),
        addresses,
        https: false,
    })
}

async fn tag_of(svc: stagegate::GatewayService) -> (u16, String, Option<String>) {
    let got = oneshot(svc, req("GET", "/users", "")).await;
    (
        got.status,
        got.json()["tag"].as_str().unwrap_or("").to_owned(),
        got.header("x-ca-error-code").map(str::to_owned),
    )
}

#[tokio::test]
async fn static_instances_are_balanced_round_robin_and_dead_ones_ejected() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let dead = dead_port().await;
    let f = fx(BackendKind::ServiceDiscovery).await;
    f.define(
        Stage::RELEASE,
        def(
            RegistryType::Static,
            "users",
            vec![a.to_string(), b.to_string(), format!("127.0.0.1:{dead}")],
        ),
    )
    .await;
    let api = f.api("users", "GET", "/users", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let svc = f
        .layer()
        .with_backends(
            Backends::new().with_ejection(EjectionPolicy::new(2, Duration::from_secs(60))),
        )
        .standalone();

    let mut tags = Vec::new();
    for _ in 0..12 {
        tags.push(tag_of(svc.clone()).await);
    }
    let failures = tags.iter().filter(|t| t.0 != 200).count();
    assert_eq!(
        failures, 0,
        "a refused connection is retried on another instance: {tags:?}"
    );
    let last: Vec<&str> = tags[8..].iter().map(|t| t.1.as_str()).collect();
    assert!(last.iter().all(|t| *t == "a" || *t == "b"), "{tags:?}");
    assert!(
        last.contains(&"a") && last.contains(&"b"),
        "round robin: {tags:?}"
    );
}

#[tokio::test]
async fn no_healthy_instance_is_d503ni() {
    let dead = dead_port().await;
    let f = fx(BackendKind::ServiceDiscovery).await;
    f.define(
        Stage::RELEASE,
        def(
            RegistryType::Static,
            "users",
            vec![format!("127.0.0.1:{dead}")],
        ),
    )
    .await;
    let api = f.api("users", "GET", "/users", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let svc = f
        .layer()
        .with_backends(
            Backends::new().with_ejection(EjectionPolicy::new(1, Duration::from_secs(60))),
        )
        .standalone();
    assert_eq!(tag_of(svc.clone()).await.2.as_deref(), Some("D504CO"));
    let got = oneshot(svc, req("GET", "/users", "")).await;
    assert_eq!(got.status, 503);
    assert_eq!(got.header("x-ca-error-code"), Some("D503NI"));
    assert_eq!(
        got.header("x-ca-error-message"),
        // #21: the service's name is logged, not sent.
        Some("No healthy backend instance")
    );
}

#[tokio::test]
async fn dns_resolves_localhost() {
    let a = upstream("dns").await;
    let f = fx(BackendKind::ServiceDiscovery).await;
    f.define(
        Stage::RELEASE,
        def(
            RegistryType::Dns,
            &format!("localhost:{}", a.port()),
            vec![],
        ),
    )
    .await;
    let api = f.api("users", "GET", "/users", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    // localhost may resolve to ::1 too, where nothing listens: eject it at once
    let svc = f
        .layer()
        .with_backends(
            Backends::new().with_ejection(EjectionPolicy::new(1, Duration::from_secs(60))),
        )
        .standalone();
    let mut ok = 0;
    for _ in 0..4 {
        if tag_of(svc.clone()).await.1 == "dns" {
            ok += 1;
        }
    }
    assert!(ok >= 3, "{ok}");
}

/// A gateway whose RELEASE `GET /users` goes to Nacos service `users` at `server`, with the
/// registry's answers cached for `ttl`. The fixture is returned to keep the control plane alive.
async fn nacos_users_gateway(
    server: std::net::SocketAddr,
    ttl: Duration,
) -> (common::Fx, stagegate::GatewayService) {
    let f = fx(BackendKind::ServiceDiscovery).await;
    f.define(
        Stage::RELEASE,
        def(
            RegistryType::Nacos,
            "users",
            vec![format!("http://{server}")],
        ),
    )
    .await;
    let api = f.api("users", "GET", "/users", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let registries = Registries::default().with_nacos(NacosDiscovery::new().with_ttl(ttl));
    let svc = f
        .layer()
        .with_backends(Backends::new().with_discovery(registries))
        .standalone();
    (f, svc)
}

/// A stand-in for Nacos's `GET /nacos/v1/ns/instance/list`, answering the documented JSON.
async fn nacos(
    hosts: Arc<Mutex<serde_json::Value>>,
    asked: Arc<AtomicUsize>,
) -> std::net::SocketAddr {
    let app = Router::new().route(
        "/nacos/v1/ns/instance/list",
        get(move |uri: http::Uri| {
            let q: std::collections::HashMap<String, String> =
                form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            let hosts = Arc::clone(&hosts);
            let asked = Arc::clone(&asked);
            async move {
                asked.fetch_add(1, Ordering::SeqCst);
                if hosts.lock().is_null() {
                    return (
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        "registry down".to_owned(),
                    );
                }
                let service = q.get("serviceName").cloned().unwrap_or_default();
                if service != "users"
                    || q.get("namespaceId").map(String::as_str) != Some("public")
                    || q.get("groupName").map(String::as_str) != Some("DEFAULT_GROUP")
                    || q.get("healthyOnly").map(String::as_str) != Some("true")
                {
                    return (
                        http::StatusCode::BAD_REQUEST,
                        "caused: service not found".to_owned(),
                    );
                }
                let body = serde_json::json!({
                    "name": "DEFAULT_GROUP@@users",
                    "groupName": "DEFAULT_GROUP",
                    "clusters": "",
                    "cacheMillis": 10000,
                    "hosts": hosts.lock().clone(),
                    "lastRefTime": 1_700_000_000_000u64,
                    "checksum": "",
                    "allIPs": false,
                    "reachProtectionThreshold": false,
                    "valid": true
                });
                (http::StatusCode::OK, body.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn host(port: u16, healthy: bool) -> serde_json::Value {
    serde_json::json!({
        "instanceId": format!("127.0.0.1#{port}#DEFAULT#DEFAULT_GROUP@@users"),
        "ip": "127.0.0.1", "port": port, "weight": 1.0, "healthy": healthy, "enabled": true,
        "ephemeral": true, "clusterName": "DEFAULT", "serviceName": "DEFAULT_GROUP@@users",
        "metadata": {}
    })
}

#[tokio::test]
async fn nacos_instances_are_used_cached_and_refreshed() {
    let a = upstream("nacos-a").await;
    let b = upstream("nacos-b").await;
    let dead = dead_port().await;
    let hosts = Arc::new(Mutex::new(serde_json::json!([
        host(a.port(), true),
        host(dead, false)
    ])));
    let asked = Arc::new(AtomicUsize::new(0));
    let server = nacos(Arc::clone(&hosts), Arc::clone(&asked)).await;

    let (_f, svc) = nacos_users_gateway(server, Duration::from_millis(300)).await;

    for _ in 0..3 {
        assert_eq!(
            tag_of(svc.clone()).await.1,
            "nacos-a",
            "the unhealthy host is never used"
        );
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "cached within the TTL");

    *hosts.lock() = serde_json::json!([host(b.port(), true)]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        tag_of(svc.clone()).await.1,
        "nacos-b",
        "refreshed after the TTL"
    );

    *hosts.lock() = serde_json::json!([host(b.port(), false)]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (status, _, code) = tag_of(svc).await;
    assert_eq!((status, code.as_deref()), (503, Some("D503NI")));
}

#[tokio::test]
async fn unreachable_registries_and_missing_providers_are_clear_errors() {
    let dead = dead_port().await;
    let f = fx(BackendKind::ServiceDiscovery).await;
    f.define(
        Stage::RELEASE,
        def(
            RegistryType::Nacos,
            "users",
            vec![format!("127.0.0.1:{dead}")],
        ),
    )
    .await;
    f.define(
        Stage::TEST,
        def(
            RegistryType::Zookeeper,
            "users",
            vec!["127.0.0.1:2181".into()],
        ),
    )
    .await;
    let api = f.api("users", "GET", "/users", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    f.cp.publish(&api.id, Stage::TEST, None).await.unwrap();
    let svc = f.layer().standalone();
    let (status, _, code) = tag_of(svc.clone()).await;
    assert_eq!((status, code.as_deref()), (503, Some("D503RG")));
    let mut r = req("GET", "/users", "");
    r.headers_mut()
        .insert("x-ca-stage", "TEST".parse().unwrap());
    let got = oneshot(svc, r).await;
    assert_eq!(got.status, 501);
    assert_eq!(got.header("x-ca-error-code"), Some("X501NI"));
    assert_eq!(
        got.header("x-ca-error-message"),
        // #21: the registry type is logged, not sent.
        Some("Backend type not served by this gateway")
    );
}

/// Issue 20 item 14: a dead static instance fails no request that a healthy one could serve:
/// an idempotent request whose connection is refused goes to another instance (a small body
/// is sent again), a non-idempotent one is not sent twice.
#[tokio::test]
async fn refused_connections_are_retried_on_another_instance_when_idempotent() {
    let live = upstream("live").await;
    let dead = dead_port().await;
    let f = fx(BackendKind::ServiceDiscovery).await;
    f.define(
        Stage::RELEASE,
        def(
            RegistryType::Static,
            "users",
            vec![format!("127.0.0.1:{dead}"), live.to_string()],
        ),
    )
    .await;
    let get = f.api("users", "GET", "/users", |_| {}).await;
    let put = f.api("putUser", "PUT", "/users", |_| {}).await;
    let post = f.api("postUser", "POST", "/users", |_| {}).await;
    for a in [&get, &put, &post] {
        f.cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();
    }
    // Never ejected during the test: every request meets the dead instance in its turn.
    let svc = f
        .layer()
        .with_backends(
            Backends::new().with_ejection(EjectionPolicy::new(1000, Duration::from_secs(60))),
        )
        .standalone();
    for i in 0..6 {
        let got = oneshot(svc.clone(), req("GET", "/users", "")).await;
        assert_eq!(got.status, 200, "GET {i}: {}", got.text());
        assert_eq!(got.json()["tag"], "live");
    }
    for i in 0..4 {
        let got = oneshot(svc.clone(), req("PUT", "/users", "payload")).await;
        assert_eq!(got.status, 200, "PUT {i}: {}", got.text());
        assert_eq!(
            got.json()["body"],
            "payload",
            "the body is sent again in full"
        );
    }
    let mut failed = 0;
    for _ in 0..4 {
        let got = oneshot(svc.clone(), req("POST", "/users", "payload")).await;
        if got.status != 200 {
            assert_eq!(got.header("x-ca-error-code"), Some("D504CO"));
            failed += 1;
        }
    }
    assert_eq!(failed, 2, "a POST is never sent to a second instance");
}

/// Issue 20 item 14: a failing registry is not asked on every request; while it backs off, the
/// last good answer serves (or, without one, the last error).
#[tokio::test]
async fn a_failing_registry_is_backed_off_and_the_last_answer_serves() {
    let a = upstream("nacos-a").await;
    let hosts = Arc::new(Mutex::new(serde_json::Value::Null));
    let asked = Arc::new(AtomicUsize::new(0));
    let server = nacos(Arc::clone(&hosts), Arc::clone(&asked)).await;
    let (_f, svc) = nacos_users_gateway(server, Duration::from_millis(100)).await;

    // Down from the start: one question, then the error is answered without asking again.
    for _ in 0..5 {
        let (status, _, code) = tag_of(svc.clone()).await;
        assert_eq!((status, code.as_deref()), (503, Some("D503RG")));
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "backing off");

    // Up again: asked once the backoff (0.5 s) is over.
    *hosts.lock() = serde_json::json!([host(a.port(), true)]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(tag_of(svc.clone()).await.1, "nacos-a");
    assert_eq!(asked.load(Ordering::SeqCst), 2);

    // Down again after the TTL: the last answer serves, and the registry is left alone.
    *hosts.lock() = serde_json::Value::Null;
    tokio::time::sleep(Duration::from_millis(150)).await;
    for _ in 0..5 {
        assert_eq!(
            tag_of(svc.clone()).await.1,
            "nacos-a",
            "the last good answer"
        );
    }
    assert_eq!(
        asked.load(Ordering::SeqCst),
        3,
        "one failed refresh, then backing off"
    );
}
