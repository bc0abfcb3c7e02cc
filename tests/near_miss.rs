//! Near misses under a mounted layer (`GatewayLayer::with_miss`), and the detail a refusal's
//! log line carries (allowed clock skew, missing grant) while its wire message stays the
//! protocol's.

mod common;

use std::io::Write;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::{Fx, fx, oneshot, req};
use http::Request;
use http_body_util::Full;
use stagegate::auth::Signer;
use stagegate::control::NewApp;
use stagegate::layer::Miss;
use stagegate::model::{BackendKind, Stage};

/// Everything the `tracing` events of the current thread write, as text.
#[derive(Clone, Default)]
struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's events (the tests run on a current-thread runtime).
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    (out, common::logs::set_default(subscriber))
}

/// A mock `GET /hello` published in RELEASE only.
async fn release_only() -> Fx {
    let fx = fx(BackendKind::Mock).await;
    fx.define_mock("hello").await;
    let api = fx.api("sayHello", "GET", "/hello", |_| {}).await;
    fx.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    fx
}

fn app(fx: &Fx, miss: Miss) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async { (http::StatusCode::NOT_FOUND, "host app 404") })
        .layer(fx.layer().with_miss(miss))
}

fn staged(method: &str, path: &str, stage: &str) -> Request<Full<Bytes>> {
    let mut r = req(method, path, "");
    r.headers_mut().insert("x-ca-stage", stage.parse().unwrap());
    r
}

#[tokio::test]
async fn by_default_a_near_miss_falls_through_silently() {
    let fx = release_only().await;
    let (log, _guard) = capture();
    let got = oneshot(app(&fx, Miss::default()), staged("GET", "/hello", "TEST")).await;
    assert_eq!((got.status, got.text().as_str()), (404, "host app 404"));
    assert!(!log.text().contains("stagegate::miss"), "{}", log.text());
    // the API itself still answers in its stage
    let got = oneshot(app(&fx, Miss::default()), req("GET", "/hello", "")).await;
    assert_eq!((got.status, got.text().as_str()), (200, "hello"));
}

#[tokio::test]
async fn log_mode_names_the_stages_and_still_falls_through() {
    let fx = release_only().await;
    let (log, _guard) = capture();
    let got = oneshot(app(&fx, Miss::Log), staged("GET", "/hello", "TEST")).await;
    assert_eq!((got.status, got.text().as_str()), (404, "host app 404"));
    let text = log.text();
    assert!(text.contains("stagegate::miss"), "{text}");
    assert!(text.contains("published_in=RELEASE"), "{text}");
    assert!(text.contains("stage=TEST"), "{text}");
    assert!(text.contains("answered=false"), "{text}");
}

#[tokio::test]
async fn answer_mode_answers_i404nf_with_the_protocol_message() {
    let fx = release_only().await;
    let (log, _guard) = capture();
    // another stage
    let got = oneshot(app(&fx, Miss::Answer), staged("GET", "/hello", "TEST")).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.header("x-ca-error-code"), Some("I404NF"));
    assert_eq!(
        got.header("x-ca-error-message"),
        Some("API not found with `GET /hello`")
    );
    assert!(got.header("x-ca-request-id").is_some());
    // another method, in the API's own stage
    let got = oneshot(app(&fx, Miss::Answer), req("POST", "/hello", "x")).await;
    assert_eq!(got.header("x-ca-error-code"), Some("I404NF"));
    let text = log.text();
    assert!(text.contains("published_in=RELEASE"), "{text}");
    assert!(text.contains("methods=GET"), "{text}");
    assert!(text.contains("answered=true"), "{text}");
    // a path no API has is the host app's, in every mode
    let got = oneshot(app(&fx, Miss::Answer), req("GET", "/health", "")).await;
    assert_eq!((got.status, got.text().as_str()), (200, "ok"));
    let got = oneshot(app(&fx, Miss::Answer), req("GET", "/nothing", "")).await;
    assert_eq!((got.status, got.text().as_str()), (404, "host app 404"));
}

#[tokio::test]
async fn refusals_log_the_allowed_skew_and_the_missing_grant() {
    let fx = fx(BackendKind::Mock).await;
    fx.define_mock("ok").await;
    let api = fx
        .api("signedHello", "GET", "/signed", |a| {
            a.auth = stagegate::model::AuthType::App;
        })
        .await;
    fx.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let app = fx
        .cp
        .create_app(NewApp {
            name: "no_grant_app".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let signer = Signer::new(&app.keys[0].app_key, app.keys[0].app_secret.clone()).unwrap();
    let svc = fx.layer().standalone();
    let (log, _guard) = capture();

    // no grant
    let mut r = req("GET", "/signed", "");
    signer.sign(&mut r, b"");
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(got.header("x-ca-error-code"), Some("A403NA"));
    assert_eq!(got.header("x-ca-error-message"), Some("Unauthorized"));
    let text = log.text();
    assert!(
        text.contains(&format!(
            "app {} holds no grant for API signedHello",
            app.id
        )),
        "{text}"
    );
    assert!(text.contains("in stage RELEASE"), "{text}");

    // a timestamp an hour old
    fx.cp
        .authorize(&app.id, &api.id, Stage::RELEASE, None)
        .await
        .unwrap();
    let hour_ago = jiff::Timestamp::now().as_millisecond() as u64 - 3_600_000;
    let mut r = req("GET", "/signed", "");
    signer.sign_with(&mut r, b"", hour_ago, "n-1").unwrap();
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(got.header("x-ca-error-code"), Some("A400TE"));
    assert_eq!(got.header("x-ca-error-message"), Some("Timestamp Expired"));
    let text = log.text();
    assert!(text.contains("allowed clock skew of 900000 ms"), "{text}");
    assert!(
        text.contains(&format!("X-Ca-Timestamp {hour_ago}")),
        "{text}"
    );
}
