//! The admin API's tower-http middleware, through the public API: the body limit on
//! `Content-Length`, the timeout (and the change a timed-out call still applies whole), request
//! ids on `X-Request-Id`, and logs that never show a token, a signature or an AppCode.
#![cfg(feature = "admin")]

mod common;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::Request;
use parking_lot::Mutex;
use serde_json::{Value, json};
use stagegate::admin::AdminApi;
use stagegate::store::{
    BoxFuture, Change, Entity, Key, Loaded, MemoryStore, Revision, Store, StoreError, Versioned,
    Write,
};
use stagegate::{ControlPlane, GatewayLayer, model::Secret};

const TOKEN: &str = "admin-middleware-token-0123";

async fn admin_over(store: impl Store) -> (AdminApi, Arc<ControlPlane>) {
    let control = Arc::new(ControlPlane::open(store).await.unwrap());
    let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
    let api = AdminApi::new(Arc::clone(&control), Secret::new(TOKEN), gateway);
    (api, control)
}

fn request(method: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
}

async fn groups(admin: &AdminApi) -> Value {
    let req = request("GET", "/groups").body(Body::empty()).unwrap();
    let got = common::oneshot(admin.router(), req).await;
    assert_eq!(got.status, 200, "{}", got.text());
    got.json()
}

/// A body announced by `Content-Length` over the limit is refused before it is read, with the
/// admin API's JSON error shape, and changes nothing.
#[tokio::test]
async fn a_body_over_the_limit_by_content_length_is_413_json_and_changes_nothing() {
    let (admin, _control) = admin_over(MemoryStore::new()).await;
    let admin = admin.with_body_limit(1024);
    let body = json!({"name": "big_group", "description": "x".repeat(2000)}).to_string();
    let req = request("POST", "/groups")
        .header("content-length", body.len().to_string())
        .body(Body::from(body))
        .unwrap();
    let got = common::oneshot(admin.router(), req).await;
    assert_eq!(got.status, 413, "{}", got.text());
    assert_eq!(got.header("content-type"), Some("application/json"));
    let j = got.json();
    assert_eq!(j["code"], "PayloadTooLarge", "{j}");
    assert_eq!(j["message"], "request body larger than 1024 bytes", "{j}");
    assert_eq!(groups(&admin).await, json!([]));

    // Within the limit, the same call goes through.
    let body = json!({"name": "small_group"}).to_string();
    let req = request("POST", "/groups")
        .header("content-length", body.len().to_string())
        .body(Body::from(body))
        .unwrap();
    let got = common::oneshot(admin.router(), req).await;
    assert_eq!(got.status, 201, "{}", got.text());
}

/// A store whose commits take `delay`: an admin call that writes is as slow as needed.
struct SlowStore {
    inner: MemoryStore,
    delay: Duration,
}

impl Store for SlowStore {
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>> {
        self.inner.load()
    }
    fn get<'a>(
        &'a self,
        key: &'a Key,
    ) -> BoxFuture<'a, Result<Option<Versioned<Entity>>, StoreError>> {
        self.inner.get(key)
    }
    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'_, Result<Revision, StoreError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.inner.commit(writes).await
        })
    }
    fn changes_since(
        &self,
        revision: Revision,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Change>, StoreError>> {
        self.inner.changes_since(revision, limit)
    }
    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>> {
        self.inner.revision()
    }
}

/// A call slower than the timeout is answered 503 `Timeout` in the JSON shape at the timeout;
/// the change it was making is still applied whole (store and live configuration alike), and
/// the next change works.
#[tokio::test]
async fn a_slow_call_times_out_with_503_json_and_its_change_is_still_applied_whole() {
    let store = SlowStore {
        inner: MemoryStore::new(),
        delay: Duration::from_millis(400),
    };
    let (admin, control) = admin_over(store).await;
    let admin = admin.with_timeout(Duration::from_millis(50));
    let body = json!({"name": "slow_group"}).to_string();
    let req = request("POST", "/groups").body(Body::from(body)).unwrap();
    let started = std::time::Instant::now();
    let got = common::oneshot(admin.router(), req).await;
    let waited = started.elapsed();
    assert_eq!(got.status, 503, "{}", got.text());
    assert!(
        waited < Duration::from_millis(350),
        "answered at the timeout, took {waited:?}"
    );
    assert_eq!(got.header("content-type"), Some("application/json"));
    let j = got.json();
    assert_eq!(j["code"], "Timeout", "{j}");
    let message = j["message"].as_str().unwrap();
    assert!(message.contains("50 ms"), "{message}");

    // The commit was not cut off: it lands whole, in the store and in the control plane.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let exported = serde_json::to_value(control.export().await)
        .unwrap()
        .to_string();
    assert!(exported.contains("slow_group"), "{exported}");
    let reloaded = ControlPlane::open(Arc::clone(control.store()))
        .await
        .unwrap();
    let reexported = serde_json::to_value(reloaded.export().await)
        .unwrap()
        .to_string();
    assert!(reexported.contains("slow_group"), "{reexported}");

    // A generous timeout lets the next (as slow) change through.
    let admin = admin.with_timeout(Duration::from_secs(5));
    let req = request("POST", "/groups")
        .body(Body::from(json!({"name": "next_group"}).to_string()))
        .unwrap();
    let got = common::oneshot(admin.router(), req).await;
    assert_eq!(got.status, 201, "{}", got.text());
    let names: Vec<String> = groups(&admin)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().any(|n| n == "slow_group") && names.iter().any(|n| n == "next_group"));
}

fn is_gateway_request_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'A'..=b'F').contains(&b),
        })
}

/// Every answer carries `X-Request-Id`: the caller's when it sent one, else a new one in the
/// gateway's format; refusals (401, 404) included.
#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let (admin, _control) = admin_over(MemoryStore::new()).await;

    let req = request("GET", "/groups").body(Body::empty()).unwrap();
    let got = common::oneshot(admin.router(), req).await;
    assert_eq!(got.status, 200);
    let first = got.header("x-request-id").expect("a request id").to_owned();
    assert!(is_gateway_request_id(&first), "{first}");

    let req = request("GET", "/groups").body(Body::empty()).unwrap();
    let got = common::oneshot(admin.router(), req).await;
    let second = got.header("x-request-id").unwrap();
    assert!(is_gateway_request_id(second) && second != first, "{second}");

    let req = request("GET", "/nowhere")
        .header("x-request-id", "from-the-proxy-42")
        .body(Body::empty())
        .unwrap();
    let got = common::oneshot(admin.router(), req).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.header("x-request-id"), Some("from-the-proxy-42"));

    let req = Request::get("/groups").body(Body::empty()).unwrap();
    let got = common::oneshot(admin.router(), req).await;
    assert_eq!(got.status, 401);
    assert!(is_gateway_request_id(got.header("x-request-id").unwrap()));
}

/// Log output, captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The admin API's trace, at its most verbose (request headers at DEBUG), shows each call with
/// its request id, and never the bearer token, an `X-Ca-Signature` or an AppCode.
#[tokio::test(flavor = "current_thread")]
async fn logs_show_each_call_but_never_a_token_signature_or_appcode() {
    let (admin, _control) = admin_over(MemoryStore::new()).await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = common::logs::set_default(subscriber);

    const SIGNATURE: &str = "c2lnbmF0dXJlLXZhbHVlLTk4NzY1";
    const APPCODE: &str = "appcode0f1e2d3c4b5a69788796a5b4";
    let req = request("POST", "/groups")
        .header("x-ca-signature", SIGNATURE)
        .header("x-request-id", "trace-me-1")
        .body(Body::from(json!({"name": "traced_group"}).to_string()))
        .unwrap();
    let got = common::oneshot(admin.router(), req).await;
    assert_eq!(got.status, 201, "{}", got.text());
    let req = Request::get("/groups")
        .header("authorization", format!("APPCODE {APPCODE}"))
        .header("proxy-authorization", format!("Bearer {TOKEN}"))
        .header("x-request-id", "trace-me-2")
        .body(Body::empty())
        .unwrap();
    let got = common::oneshot(admin.router(), req).await;
    assert_eq!(got.status, 401);

    let log = String::from_utf8(captured.0.lock().clone()).unwrap();
    for id in ["trace-me-1", "trace-me-2"] {
        assert!(
            log.lines()
                .any(|l| l.contains(id) && l.contains("headers=") && l.contains("Sensitive")),
            "the request with {id} and its headers (sensitive ones hidden) are logged:\n{log}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.contains("trace-me-1") && l.contains("status=201")),
        "the answer is logged:\n{log}"
    );
    for secret in [TOKEN, SIGNATURE, APPCODE] {
        assert!(!log.contains(secret), "`{secret}` in the log:\n{log}");
    }
}
