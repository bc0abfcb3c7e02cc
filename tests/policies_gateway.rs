//! Policies on the data plane, through the public API: throttling (429, codes per scope,
//! `Retry-After`, `RateLimit-*`), IP access control (403 `A403IP`, the socket peer only),
//! CORS (the preflight answered before the method fall-through, headers on every response)
//! and the backend signature (byte-exact with vector B1, verified by the crate's own layer).

mod common;

use std::net::SocketAddr;

use common::{Fx, fx, oneshot, upstream};
use http::Request;
use http_body_util::Full;
use stagegate::control::NewPolicy;
use stagegate::model::{
    AppCodeMode, BackendKind, HttpDefinition, PolicyId, Stage, StageDefinition,
};
use stagegate::policy::{
    BackendSignature, Cors, IpControl, IpMode, IpRule, PolicySpec, SpecialApp, ThrottleUnit,
    Throttling, VerifyBackendSignatureLayer,
};
use stagegate::{ControlPlane, control::NewApp};

async fn http_fx() -> (Fx, SocketAddr) {
    let up = upstream("pol").await;
    let f = fx(BackendKind::Http).await;
    f.define(
        Stage::RELEASE,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await;
    (f, up)
}

async fn policy(cp: &ControlPlane, name: &str, spec: PolicySpec) -> PolicyId {
    cp.create_policy(NewPolicy {
        name: name.into(),
        spec,
    })
    .await
    .unwrap()
    .id
}

fn get(path: &str, peer: [u8; 4]) -> Request<Full<bytes::Bytes>> {
    let mut r = common::req("GET", path, "");
    r.extensions_mut()
        .insert(stagegate::layer::ClientAddr(SocketAddr::from((peer, 4000))));
    r
}

#[tokio::test]
async fn throttling_counts_the_api_exactly_and_answers_429_with_kong_headers() {
    let (f, _) = http_fx().await;
    let api = f.api("limited", "GET", "/limited", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let gw = f.layer().standalone();
    // Without a policy: no RateLimit headers.
    let r = oneshot(gw.clone(), get("/limited", [10, 0, 0, 1])).await;
    assert_eq!(r.status, 200);
    assert!(r.header("ratelimit-limit").is_none());

    let p = policy(
        &f.cp,
        "threePerDay",
        PolicySpec::Throttling(Throttling::new(ThrottleUnit::Day, 3)),
    )
    .await;
    f.cp.bind_policy(&api.id, &p, Stage::RELEASE).await.unwrap();
    for left in [2, 1, 0] {
        let r = oneshot(gw.clone(), get("/limited", [10, 0, 0, 1])).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(
            r.header("ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
        let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&reset));
        assert!(r.header("retry-after").is_none());
    }
    let r = oneshot(gw.clone(), get("/limited", [10, 0, 0, 1])).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-ca-error-code"), Some("T429PA"));
    assert_eq!(
        r.header("x-ca-error-message"),
        Some("Throttled by API Flow Control")
    );
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("retry-after"), r.header("ratelimit-reset"));
    // Another stage is another binding: TEST has no policy.
    // Unbinding takes effect on the next request.
    f.cp.unbind_policy(&api.id, &p, &Stage::RELEASE)
        .await
        .unwrap();
    let r = oneshot(gw.clone(), get("/limited", [10, 0, 0, 1])).await;
    assert_eq!(r.status, 200);
    assert!(r.header("ratelimit-limit").is_none());
}

#[tokio::test]
async fn throttling_apps_by_default_and_special_values_with_their_own_codes() {
    let (f, _) = http_fx().await;
    let api = f
        .api("perApp", "GET", "/per-app", |a| {
            a.auth = stagegate::model::AuthType::App;
            a.appcode_auth = AppCodeMode::Header;
        })
        .await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let plain =
        f.cp.create_app(NewApp {
            name: "plainApp".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let vip =
        f.cp.create_app(NewApp {
            name: "vipApp".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for app in [&plain, &vip] {
        f.cp.authorize(&app.id, &api.id, Stage::RELEASE, None)
            .await
            .unwrap();
    }
    let mut t = Throttling::new(ThrottleUnit::Hour, 100);
    t.app_default = Some(1);
    t.special_apps.push(SpecialApp {
        app_id: vip.id.clone(),
        limit: 2,
    });
    let p = policy(&f.cp, "perAppLimits", PolicySpec::Throttling(t)).await;
    f.cp.bind_policy(&api.id, &p, Stage::RELEASE).await.unwrap();
    let gw = f.layer().standalone();
    let call = |code: String| {
        let gw = gw.clone();
        async move {
            let mut r = get("/per-app", [10, 0, 0, 1]);
            r.headers_mut()
                .insert("authorization", format!("APPCODE {code}").parse().unwrap());
            oneshot(gw, r).await
        }
    };
    let plain_code = plain.codes[0].expose().to_owned();
    let vip_code = vip.codes[0].expose().to_owned();
    let r = call(plain_code.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The app's scope has fewer left than the API's: the headers tell the app's.
    assert_eq!(r.header("ratelimit-limit"), Some("1"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let r = call(plain_code).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-ca-error-code"), Some("T429PR"));
    assert!(r.header("retry-after").is_some());
    for _ in 0..2 {
        assert_eq!(call(vip_code.clone()).await.status, 200);
    }
    let r = call(vip_code).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-ca-error-code"), Some("T429SR"));
}

#[tokio::test]
async fn a_refused_request_counts_against_no_scope() {
    let (f, _) = http_fx().await;
    let api = f
        .api("sharedLimit", "GET", "/shared", |a| {
            a.auth = stagegate::model::AuthType::App;
            a.appcode_auth = AppCodeMode::Header;
        })
        .await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let app =
        f.cp.create_app(NewApp {
            name: "someApp".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    f.cp.authorize(&app.id, &api.id, Stage::RELEASE, None)
        .await
        .unwrap();
    let mut t = Throttling::new(ThrottleUnit::Day, 1);
    t.app_default = Some(2);
    let p = policy(&f.cp, "apiTighter", PolicySpec::Throttling(t)).await;
    f.cp.bind_policy(&api.id, &p, Stage::RELEASE).await.unwrap();
    let gw = f.layer().standalone();
    let code = app.codes[0].expose().to_owned();
    let call = || {
        let mut r = get("/shared", [10, 0, 0, 1]);
        r.headers_mut()
            .insert("authorization", format!("APPCODE {code}").parse().unwrap());
        oneshot(gw.clone(), r)
    };
    assert_eq!(call().await.status, 200);
    for _ in 0..3 {
        let r = call().await;
        assert_eq!(r.header("x-ca-error-code"), Some("T429PA"));
    }
    // The API's limit refused three requests after the app's slot was taken: each slot was
    // given back, so a bigger API limit (same policy, same window) lets the app's second in.
    let mut t = Throttling::new(ThrottleUnit::Day, 10);
    t.app_default = Some(2);
    f.cp.update_policy(
        &p,
        NewPolicy {
            name: "apiTighter".into(),
            spec: PolicySpec::Throttling(t),
        },
    )
    .await
    .unwrap();
    assert_eq!(call().await.status, 200);
    assert_eq!(call().await.header("x-ca-error-code"), Some("T429PR"));
}

#[tokio::test]
async fn ip_control_uses_the_socket_peer_and_ignores_a_spoofed_forwarded_for() {
    let (f, _) = http_fx().await;
    let api = f.api("ipGuarded", "GET", "/guarded", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let p = policy(
        &f.cp,
        "officeOnly",
        PolicySpec::IpControl(IpControl {
            mode: IpMode::Allow,
            rules: vec![
                IpRule::parse("192.0.2.0/24", None).unwrap(),
                IpRule::parse("2001:db8::/32", None).unwrap(),
            ],
        }),
    )
    .await;
    f.cp.bind_policy(&api.id, &p, Stage::RELEASE).await.unwrap();
    let gw = f.layer().standalone();
    let r = oneshot(gw.clone(), get("/guarded", [192, 0, 2, 77])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut spoofed = get("/guarded", [203, 0, 113, 9]);
    spoofed
        .headers_mut()
        .insert("x-forwarded-for", "192.0.2.77".parse().unwrap());
    spoofed
        .headers_mut()
        .insert("x-real-ip", "192.0.2.77".parse().unwrap());
    let r = oneshot(gw.clone(), spoofed).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-ca-error-code"), Some("A403IP"));
    // IPv6 peers match IPv6 rules.
    let mut v6 = common::req("GET", "/guarded", "");
    v6.extensions_mut().insert(stagegate::layer::ClientAddr(
        "[2001:db8::5]:4000".parse().unwrap(),
    ));
    assert_eq!(oneshot(gw.clone(), v6).await.status, 200);
    // REFUSE mode, swapped in by changing the policy: the next request sees it.
    f.cp.update_policy(
        &p,
        NewPolicy {
            name: "officeOnly".into(),
            spec: PolicySpec::IpControl(IpControl {
                mode: IpMode::Refuse,
                rules: vec![IpRule::parse("192.0.2.0/24", None).unwrap()],
            }),
        },
    )
    .await
    .unwrap();
    let r = oneshot(gw.clone(), get("/guarded", [192, 0, 2, 77])).await;
    assert_eq!(r.header("x-ca-error-code"), Some("A403IP"));
    assert_eq!(
        oneshot(gw, get("/guarded", [203, 0, 113, 9])).await.status,
        200
    );
}

/// Behind a load balancer: `X-Forwarded-For` / `X-Real-IP` name the client, and
/// `X-Forwarded-Proto` / `Forwarded: proto=` the scheme, only when the peer is a trusted proxy.
#[tokio::test]
async fn trusted_proxies_name_the_client_and_the_scheme_and_nobody_else_does() {
    let (f, _) = http_fx().await;
    let api = f.api("behindLb", "GET", "/behind", |_| {}).await;
    let tls_only = f
        .api("behindLbTls", "GET", "/behind-tls", |a| {
            a.request.protocols = vec![stagegate::model::Protocol::Https];
        })
        .await;
    for a in [&api, &tls_only] {
        f.cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();
    }
    let p = policy(
        &f.cp,
        "clientsOnly",
        PolicySpec::IpControl(IpControl {
            mode: IpMode::Allow,
            rules: vec![IpRule::parse("198.51.100.0/24", None).unwrap()],
        }),
    )
    .await;
    f.cp.bind_policy(&api.id, &p, Stage::RELEASE).await.unwrap();
    let via = |path: &str, peer: [u8; 4], headers: &[(&str, &str)]| {
        let mut r = get(path, peer);
        for (k, v) in headers {
            r.headers_mut().append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        r
    };
    let lb = [10, 0, 0, 2];
    let xff = [("x-forwarded-for", "6.6.6.6, 198.51.100.7")];

    // The default trusts nobody: the load balancer's own address is refused.
    let plain = f.layer().standalone();
    let r = oneshot(plain.clone(), via("/behind", lb, &xff)).await;
    assert_eq!(r.header("x-ca-error-code"), Some("A403IP"), "{}", r.text());

    let gw = f
        .layer()
        .with_trusted_proxies("10.0.0.0/8".parse().unwrap())
        .standalone();
    // From the trusted balancer: the rightmost untrusted address is the client, and the
    // backend sees the chain with the balancer appended.
    let r = oneshot(gw.clone(), via("/behind", lb, &xff)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.json();
    assert_eq!(
        seen["headers"]["x-forwarded-for"],
        "6.6.6.6, 198.51.100.7, 10.0.0.2"
    );
    assert_eq!(seen["headers"]["x-forwarded-proto"], "http");
    let r = oneshot(
        gw.clone(),
        via("/behind", lb, &[("x-real-ip", "198.51.100.9")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A spoofing client naming the balancer as a hop, directly: not believed.
    let spoof = [
        ("x-forwarded-for", "198.51.100.7, 10.0.0.2"),
        ("x-real-ip", "198.51.100.7"),
    ];
    let r = oneshot(gw.clone(), via("/behind", [203, 0, 113, 9], &spoof)).await;
    assert_eq!(r.header("x-ca-error-code"), Some("A403IP"));

    // HTTPS-only: the trusted balancer terminated TLS.
    let https = [("x-forwarded-proto", "https")];
    let r = oneshot(gw.clone(), via("/behind-tls", lb, &https)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");
    let fwd = [("forwarded", "for=198.51.100.7;proto=https")];
    assert_eq!(
        oneshot(gw.clone(), via("/behind-tls", lb, &fwd))
            .await
            .status,
        200
    );
    // ... but not from anyone else, and not without saying so.
    for (peer, headers) in [([203, 0, 113, 9], &https[..]), (lb, &[][..])] {
        let r = oneshot(gw.clone(), via("/behind-tls", peer, headers)).await;
        assert_eq!(r.header("x-ca-error-code"), Some("I403PT"), "{}", r.text());
    }
    let r = oneshot(plain, via("/behind-tls", lb, &https)).await;
    assert_eq!(r.header("x-ca-error-code"), Some("I403PT"));
}

fn preflight(path: &str, origin: &str, method: &str) -> Request<Full<bytes::Bytes>> {
    Request::builder()
        .method("OPTIONS")
        .uri(path)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "x-ca-key,x-ca-signature")
        .body(Full::new(bytes::Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn cors_preflight_is_answered_before_the_fall_through_and_errors_carry_the_headers() {
    let (f, _) = http_fx().await;
    let api = f
        .api("browserApi", "POST", "/orders", |a| {
            a.auth = stagegate::model::AuthType::App;
        })
        .await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let gw = f.layer().standalone();
    // Without a CORS policy the preflight falls through (I404NF from the standalone gateway).
    let r = oneshot(
        gw.clone(),
        preflight("/orders", "https://shop.example.com", "POST"),
    )
    .await;
    assert_eq!(r.header("x-ca-error-code"), Some("I404NF"));

    let mut cors = Cors::new(["https://*.example.com", "http://localhost:3000"]);
    cors.allow_credentials = true;
    cors.max_age_s = 120;
    let p = policy(&f.cp, "webShop", PolicySpec::Cors(cors)).await;
    f.cp.bind_policy(&api.id, &p, Stage::RELEASE).await.unwrap();
    let r = oneshot(
        gw.clone(),
        preflight("/orders", "https://shop.example.com", "POST"),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    let allowed = r.header("access-control-allow-headers").unwrap();
    for h in [
        "X-Ca-Key",
        "X-Ca-Signature",
        "X-Ca-Timestamp",
        "X-Ca-Nonce",
        "X-Ca-Signature-Headers",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    assert_eq!(r.header("access-control-max-age"), Some("120"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r.header("x-ca-request-id").is_some());
    // An origin not allowed: answered, without the allow headers.
    let r = oneshot(
        gw.clone(),
        preflight("/orders", "https://evil.test", "POST"),
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(r.header("access-control-allow-origin").is_none());
    // A method the path has no API for still falls through.
    let r = oneshot(
        gw.clone(),
        preflight("/orders", "https://shop.example.com", "DELETE"),
    )
    .await;
    assert_eq!(r.header("x-ca-error-code"), Some("I404NF"));
    // An actual request refused by authentication still carries the CORS headers.
    let mut actual = common::req("POST", "/orders", "{}");
    actual
        .headers_mut()
        .insert("origin", "http://localhost:3000".parse().unwrap());
    let r = oneshot(gw.clone(), actual).await;
    assert_eq!(r.header("x-ca-error-code"), Some("A400MA"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    let exposed = r.header("access-control-expose-headers").unwrap();
    assert!(exposed.contains("X-Ca-Error-Code") && exposed.contains("X-Ca-Request-Id"));
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));
}

#[tokio::test]
async fn backend_signature_is_verified_by_the_crates_own_layer() {
    // A backend in Rust behind the verifier layer.
    let key = BackendSignature {
        key: "backendKey1".into(),
        secret: "backendSecret_1".into(),
    };
    let backend = axum::Router::new().route(
        "/{*rest}",
        axum::routing::any(
            |req: axum::extract::Request| async move { format!("ok {}", req.uri()) },
        ),
    );
    let backend = tower::Layer::layer(&VerifyBackendSignatureLayer::new([key.clone()]), backend);
    let addr = common::serve(backend).await;
    let f = fx(BackendKind::Http).await;
    f.define(
        Stage::RELEASE,
        StageDefinition::Http(HttpDefinition::new(format!("http://{addr}"))),
    )
    .await;
    let api = f.api("signedApi", "POST", "/pay", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let gw = f.layer().standalone();
    let send = |body: &'static str| {
        let mut r = common::req("POST", "/pay?b=2&a=1", body);
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r.headers_mut()
            .insert("x-ca-proxy-signature", "forged".parse().unwrap());
        oneshot(gw.clone(), r)
    };
    // Not bound: the backend refuses the unsigned request.
    assert_eq!(send("{\"amount\":1}").await.status, 401);
    let p = policy(&f.cp, "payBackend", PolicySpec::BackendSignature(key)).await;
    f.cp.bind_policy(&api.id, &p, Stage::RELEASE).await.unwrap();
    let r = send("{\"amount\":1}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("ok /pay?"), "{}", r.text());
    // A backend holding another secret for the same key refuses.
    let other = axum::Router::new().route("/{*rest}", axum::routing::any(|| async { "ok" }));
    let other = tower::Layer::layer(
        &VerifyBackendSignatureLayer::new([BackendSignature {
            key: "backendKey1".into(),
            secret: "otherSecret_1".into(),
        }]),
        other,
    );
    let other = common::serve(other).await;
    f.define(
        Stage::RELEASE,
        StageDefinition::Http(HttpDefinition::new(format!("http://{other}"))),
    )
    .await;
    assert_eq!(send("{\"amount\":1}").await.status, 401);
}
