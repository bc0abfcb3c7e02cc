//! The data plane through the public API: mounting, fall-through, stages, MOCK and HTTP
//! backends, errors, limits, and hot swaps under load. Loopback only.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::{client, collect, oneshot, serve, upstream};
use http::Request;
use http_body_util::Full;
use stagegate::store::MemoryStore;
use stagegate::{
    ControlPlane, GatewayLayer,
    control::{NewBackend, NewGroup},
    model::{ApiDefinition, BackendKind, HttpDefinition, MockDefinition, Stage, StageDefinition},
};

fn http(addr: std::net::SocketAddr) -> StageDefinition {
    StageDefinition::Http(HttpDefinition::new(format!("http://{addr}")))
}

fn mock(status: u16, body: &str) -> StageDefinition {
    let mut headers = std::collections::BTreeMap::new();
    headers.insert("x-mock".to_owned(), "yes".to_owned());
    StageDefinition::Mock(MockDefinition {
        status,
        headers,
        body: body.into(),
    })
}

struct Fixture {
    cp: Arc<ControlPlane>,
    backend: stagegate::model::BackendService,
    group: stagegate::model::Group,
}

async fn fixture(kind: BackendKind) -> Fixture {
    let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let backend = cp
        .create_backend(NewBackend::new("backendOne", kind))
        .await
        .unwrap();
    let group = cp
        .create_group(NewGroup {
            name: "group_one".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    Fixture { cp, backend, group }
}

impl Fixture {
    async fn api(
        &self,
        name: &str,
        method: &str,
        path: &str,
        f: impl FnOnce(&mut ApiDefinition),
    ) -> ApiDefinition {
        let mut a = ApiDefinition::new(
            self.group.id.clone(),
            name,
            method,
            path,
            self.backend.id.clone(),
        )
        .unwrap()
        .anonymous();
        f(&mut a);
        self.cp.create_api(a).await.unwrap()
    }
    /// Defines the backend in `stage`.
    async fn define(&self, stage: Stage, def: StageDefinition) {
        self.cp
            .set_stage_definition(&self.backend.id, stage, def)
            .await
            .unwrap();
    }
    /// Publishes `api` in RELEASE.
    async fn release(&self, api: &ApiDefinition) {
        self.cp
            .publish(&api.id, Stage::RELEASE, None)
            .await
            .unwrap();
    }
    fn layer(&self) -> GatewayLayer {
        GatewayLayer::new(self.cp.snapshot_handle())
    }
}

fn get_req(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::default()).unwrap()
}

#[tokio::test]
async fn misses_fall_through_to_the_inner_axum_app_in_both_mounting_styles() {
    let f = fixture(BackendKind::Mock).await;
    f.define(Stage::RELEASE, mock(200, "from the gateway"))
        .await;
    let a = f.api("gatewayApi", "GET", "/api/hello", |_| {}).await;
    f.release(&a).await;

    // style 1: Router::layer
    let app = Router::new()
        .route("/health", get(|| async { "inner ok" }))
        .layer(f.layer());
    let got = oneshot(
        app.clone(),
        Request::get("/health")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((got.status, got.text().as_str()), (200, "inner ok"));
    assert!(
        got.header("x-ca-request-id").is_none(),
        "inner responses are untouched"
    );
    let got = oneshot(
        app.clone(),
        Request::get("/api/hello")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((got.status, got.text().as_str()), (200, "from the gateway"));
    assert!(got.header("x-ca-request-id").is_some());
    let got = oneshot(
        app,
        Request::get("/nowhere")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 404, "axum's own 404");
    assert!(got.header("x-ca-error-code").is_none());

    // style 2: wrapping the whole router
    let router = Router::new().route("/health", get(|| async { "inner ok" }));
    let wrapped = tower::Layer::layer(&f.layer(), router);
    let got = oneshot(
        wrapped.clone(),
        Request::get("/health")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.text(), "inner ok");
    let got = oneshot(
        wrapped,
        Request::get("/api/hello")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.text(), "from the gateway");
}

#[tokio::test]
async fn standalone_on_a_plain_hyper_server_answers_misses_with_i404nf() {
    let f = fixture(BackendKind::Mock).await;
    f.define(Stage::RELEASE, mock(201, "made")).await;
    let a = f.api("mockApi", "POST", "/things", |_| {}).await;
    f.release(&a).await;
    let addr = serve(f.layer().standalone()).await;
    let c = client();
    let res = c
        .request(
            Request::post(format!("http://{addr}/things"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let got = collect(res).await;
    assert_eq!((got.status, got.text().as_str()), (201, "made"));
    assert_eq!(got.header("x-mock"), Some("yes"));
    let id = got.header("x-ca-request-id").unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id, id.to_uppercase());
    let res = c
        .request(
            Request::get(format!("http://{addr}/things"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let got = collect(res).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.header("x-ca-error-code"), Some("I404NF"));
    assert_eq!(
        got.header("x-ca-error-message"),
        Some("API not found with `GET /things`")
    );
    let json = got.json();
    assert_eq!(json["code"], "I404NF");
    assert_eq!(json["request_id"].as_str(), got.header("x-ca-request-id"));
}

#[tokio::test]
async fn stage_is_chosen_by_x_ca_stage() {
    let f = fixture(BackendKind::Mock).await;
    for (stage, body) in [
        (Stage::TEST, "test"),
        (Stage::PRE, "pre"),
        (Stage::RELEASE, "release"),
    ] {
        f.cp.set_stage_definition(&f.backend.id, stage.clone(), mock(200, body))
            .await
            .unwrap();
    }
    let a = f.api("stagedApi", "GET", "/s", |_| {}).await;
    for stage in Stage::BUILT_IN {
        f.cp.publish(&a.id, stage, None).await.unwrap();
    }
    let svc = f.layer().standalone();
    let got = oneshot(svc.clone(), get_req("/s")).await;
    assert_eq!(got.text(), "release", "RELEASE by default");
    for (h, want) in [("TEST", "test"), ("pre", "pre"), ("Release", "release")] {
        let req = Request::get("/s")
            .header("x-ca-stage", h)
            .body(Full::<Bytes>::default())
            .unwrap();
        assert_eq!(oneshot(svc.clone(), req).await.text(), want);
    }
    let req = Request::get("/s")
        .header("x-ca-stage", "STAGING")
        .body(Full::<Bytes>::default())
        .unwrap();
    let got = oneshot(svc.clone(), req).await;
    assert_eq!(
        (got.status, got.header("x-ca-error-code")),
        (400, Some("I400SG"))
    );
    // unpublished from TEST: a TEST call is not found, the others still work
    f.cp.unpublish(&a.id, &Stage::TEST).await.unwrap();
    let req = Request::get("/s")
        .header("x-ca-stage", "TEST")
        .body(Full::<Bytes>::default())
        .unwrap();
    assert_eq!(
        oneshot(svc.clone(), req).await.header("x-ca-error-code"),
        Some("I404NF")
    );
    assert_eq!(oneshot(svc, get_req("/s")).await.text(), "release");
}

#[tokio::test]
async fn http_backend_passthrough_get_and_post() {
    let up = upstream("a").await;
    let f = fixture(BackendKind::Http).await;
    f.define(Stage::RELEASE, http(up)).await;
    let a = f
        .api("getUser", "GET", "/users/[id]", |a| {
            a.backend.path = Some("/internal/users/[id]".into())
        })
        .await;
    let p = f.api("postAny", "POST", "/upload/*", |_| {}).await;
    f.release(&a).await;
    f.release(&p).await;
    let addr = serve(f.layer().standalone()).await;
    let c = client();
    let req = Request::get(format!("http://{addr}/users/42?x=1&y=%20z"))
        .header("x-custom", "kept")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "dropped")
        .body(Full::default())
        .unwrap();
    let got = collect(c.request(req).await.unwrap()).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let j = got.json();
    assert_eq!(j["path"], "/internal/users/42");
    assert_eq!(j["query"], "x=1&y=%20z");
    assert_eq!(j["headers"]["x-custom"], "kept");
    assert!(
        j["headers"]["x-hop"].is_null(),
        "headers named in Connection are stripped"
    );
    assert_eq!(j["headers"]["x-forwarded-for"], "127.0.0.1");
    assert!(got.header("x-ca-request-id").is_some());
    assert_eq!(
        got.header("x-upstream"),
        Some("a"),
        "backend headers pass through"
    );
    assert!(got.header("x-ca-error-code").is_none());

    let body = vec![b'x'; 3 * 1024 * 1024];
    let req = Request::post(format!("http://{addr}/upload/a/b"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let got = collect(c.request(req).await.unwrap()).await;
    let j = got.json();
    assert_eq!(
        (
            j["method"].as_str(),
            j["path"].as_str(),
            j["body_len"].as_u64()
        ),
        (Some("POST"), Some("/upload/a/b"), Some(3 * 1024 * 1024))
    );
}

#[tokio::test]
async fn a_large_streamed_body_passes_when_the_limit_allows() {
    let up = upstream("big").await;
    let f = fixture(BackendKind::Http).await;
    f.define(Stage::RELEASE, http(up)).await;
    let p = f.api("bigUpload", "PUT", "/big", |_| {}).await;
    f.release(&p).await;
    let addr = serve(f.layer().with_body_limit(200 * 1024 * 1024).standalone()).await;
    // a chunked 100 MiB body, generated on the fly
    let chunks = futures_util::stream::iter((0..100).map(|_| {
        Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![7u8; 1024 * 1024])))
    }));
    let body = http_body_util::StreamBody::new(chunks);
    let c: hyper_util::client::legacy::Client<_, http_body_util::StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let res = c
        .request(
            Request::put(format!("http://{addr}/big"))
                .body(body)
                .unwrap(),
        )
        .await
        .unwrap();
    let got = collect(res).await;
    assert_eq!(got.json()["body_len"].as_u64(), Some(100 * 1024 * 1024));
}

#[tokio::test]
async fn limits_timeouts_and_refused_connections_are_gateway_errors() {
    let up = upstream("slow").await;
    let f = fixture(BackendKind::Http).await;
    f.define(Stage::RELEASE, http(up)).await;
    let slow = f
        .api("slowApi", "GET", "/sleep/[ms]", |a| {
            a.backend.timeout_ms = Some(200)
        })
        .await;
    let body = f.api("bodyApi", "POST", "/body", |_| {}).await;
    f.release(&slow).await;
    f.release(&body).await;
    let svc = f
        .layer()
        .with_body_limit(1024)
        .with_header_limit(2048)
        .standalone();
    let got = oneshot(svc.clone(), get_req("/sleep/2000")).await;
    assert_eq!(
        (got.status, got.header("x-ca-error-code")),
        (504, Some("D504TO"))
    );
    assert!(
        got.header("x-ca-error-message")
            .unwrap()
            .starts_with("Backend service request timeout")
    );
    let got = oneshot(svc.clone(), get_req("/sleep/0")).await;
    assert_eq!(got.status, 200);
    let req = Request::post("/body")
        .header("content-length", "4096")
        .body(Full::new(Bytes::from(vec![0u8; 4096])))
        .unwrap();
    let got = oneshot(svc.clone(), req).await;
    assert_eq!(
        (got.status, got.header("x-ca-error-code")),
        (413, Some("I413RL"))
    );
    let req = Request::get("/sleep/0")
        .header("x-big", "v".repeat(4000))
        .body(Full::<Bytes>::default())
        .unwrap();
    let got = oneshot(svc.clone(), req).await;
    assert_eq!(
        (got.status, got.header("x-ca-error-code")),
        (413, Some("I413UL"))
    );

    // a closed port
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = l.local_addr().unwrap();
    drop(l);
    f.define(Stage::RELEASE, http(dead)).await;
    let got = oneshot(svc, get_req("/sleep/0")).await;
    assert_eq!(
        (got.status, got.header("x-ca-error-code")),
        (504, Some("D504CO"))
    );
    assert!(
        got.header("x-ca-error-message")
            .unwrap()
            .contains("Connection refused")
    );
}

#[tokio::test]
async fn app_apis_need_credentials_and_debug_mode_reports_the_exchange() {
    let f = fixture(BackendKind::Mock).await;
    f.define(Stage::RELEASE, mock(200, "secret data")).await;
    let mut a = ApiDefinition::new(
        f.group.id.clone(),
        "privateApi",
        "GET",
        "/private",
        f.backend.id.clone(),
    )
    .unwrap();
    a.appcode_auth = stagegate::model::AppCodeMode::Header;
    let a = f.cp.create_api(a).await.unwrap();
    f.release(&a).await;
    let svc = f.layer().standalone();
    let got = oneshot(svc.clone(), get_req("/private")).await;
    assert_eq!(
        (got.status, got.header("x-ca-error-code")),
        (400, Some("A400MA"))
    );
    let app =
        f.cp.create_app(stagegate::control::NewApp {
            name: "caller_app".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let code = app.codes[0].expose().to_owned();
    let with_code = || {
        Request::get("/private")
            .header("authorization", format!("APPCODE {code}"))
            .header("x-ca-request-mode", "debug")
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    let got = oneshot(svc.clone(), with_code()).await;
    assert_eq!(
        got.header("x-ca-error-code"),
        Some("A403NA"),
        "no grant yet"
    );
    f.cp.authorize(&app.id, &a.id, Stage::RELEASE, None)
        .await
        .unwrap();
    let got = oneshot(svc.clone(), with_code()).await;
    assert_eq!((got.status, got.text().as_str()), (200, "secret data"));
    let info: serde_json::Value =
        serde_json::from_str(got.header("x-ca-debug-info").unwrap()).unwrap();
    assert_eq!(info["Api"], "privateApi");
    assert_eq!(info["Stage"], "RELEASE");
    assert_eq!(info["Auth"], "APPCODE");
    assert_eq!(info["AppId"], app.id.as_str());
    f.cp.revoke(&app.id, &a.id, &Stage::RELEASE).await.unwrap();
    assert_eq!(
        oneshot(svc, with_code()).await.header("x-ca-error-code"),
        Some("A403NA"),
        "revocation is immediate"
    );
}

#[tokio::test]
async fn a_definition_change_reaches_the_next_request() {
    let (a_up, b_up) = (upstream("a").await, upstream("b").await);
    let f = fixture(BackendKind::Http).await;
    f.define(Stage::TEST, http(a_up)).await;
    let one = f.api("apiOne", "GET", "/one", |_| {}).await;
    let two = f.api("apiTwo", "GET", "/two", |_| {}).await;
    f.cp.publish(&one.id, Stage::TEST, None).await.unwrap();
    f.cp.publish(&two.id, Stage::TEST, None).await.unwrap();
    let svc = f.layer().standalone();
    let call = |p: &str| {
        Request::get(p)
            .header("x-ca-stage", "TEST")
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    assert_eq!(oneshot(svc.clone(), call("/one")).await.json()["tag"], "a");
    f.define(Stage::TEST, http(b_up)).await;
    assert_eq!(oneshot(svc.clone(), call("/one")).await.json()["tag"], "b");
    assert_eq!(oneshot(svc.clone(), call("/two")).await.json()["tag"], "b");
    f.cp.delete_stage_definition(&f.backend.id, &Stage::TEST)
        .await
        .unwrap();
    assert_eq!(
        oneshot(svc, call("/one")).await.header("x-ca-error-code"),
        Some("I404NF")
    );
}

/// Concurrent clients call one API while other APIs are published and unpublished and the
/// backend's URL switches between two upstreams: every request succeeds on one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swaps_under_load_never_fail_a_request() {
    let (a_up, b_up) = (upstream("a").await, upstream("b").await);
    let f = fixture(BackendKind::Http).await;
    f.define(Stage::RELEASE, http(a_up)).await;
    let hot = f.api("hotApi", "GET", "/hot/[id]", |_| {}).await;
    f.release(&hot).await;
    let mut others = Vec::new();
    for i in 0..20 {
        others.push(
            f.api(&format!("other{i}"), "GET", &format!("/other/{i}"), |_| {})
                .await,
        );
    }
    let addr = serve(f.layer().standalone()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let seen_a = Arc::new(AtomicUsize::new(0));
    let seen_b = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for n in 0..8 {
        let (stop, ok, seen_a, seen_b) = (stop.clone(), ok.clone(), seen_a.clone(), seen_b.clone());
        clients.push(tokio::spawn(async move {
            let c = client();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) && i < 2000 {
                i += 1;
                let res = c
                    .request(
                        Request::get(format!("http://{addr}/hot/{n}-{i}"))
                            .body(Full::default())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let got = collect(res).await;
                assert_eq!(
                    got.status,
                    200,
                    "request failed during a swap: {}",
                    got.text()
                );
                match got.json()["tag"].as_str() {
                    Some("a") => seen_a.fetch_add(1, Ordering::Relaxed),
                    Some("b") => seen_b.fetch_add(1, Ordering::Relaxed),
                    other => panic!("unexpected upstream {other:?}"),
                };
                ok.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut changes = 0;
    while tokio::time::Instant::now() < deadline {
        let o = &others[changes % others.len()];
        if f.cp.published(&o.id, &Stage::RELEASE).await.is_some() {
            f.cp.unpublish(&o.id, &Stage::RELEASE).await.unwrap();
        } else {
            f.release(o).await;
        }
        let to = if changes % 2 == 0 { b_up } else { a_up };
        f.define(Stage::RELEASE, http(to)).await;
        changes += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(changes > 50, "only {changes} changes");
    assert!(ok.load(Ordering::Relaxed) > 100);
    assert!(
        seen_a.load(Ordering::Relaxed) > 0 && seen_b.load(Ordering::Relaxed) > 0,
        "both upstreams served"
    );
}

#[tokio::test]
async fn the_client_address_comes_from_the_service_unless_the_request_carries_one() {
    let up = upstream("a").await;
    let f = fixture(BackendKind::Http).await;
    f.define(Stage::RELEASE, http(up)).await;
    let a = f.api("whoAmI", "GET", "/who", |_| {}).await;
    f.release(&a).await;
    let per_connection = f
        .layer()
        .standalone()
        .with_client_addr(([203, 0, 113, 9], 40000).into());

    let got = oneshot(per_connection.clone(), get_req("/who")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.header("x-ca-request-id").is_some());
    assert_eq!(got.json()["headers"]["x-forwarded-for"], "203.0.113.9");

    let mut req = get_req("/who");
    req.extensions_mut()
        .insert(stagegate::ClientAddr(([198, 51, 100, 7], 5000).into()));
    let got = oneshot(per_connection, req).await;
    assert_eq!(got.json()["headers"]["x-forwarded-for"], "198.51.100.7");
}
