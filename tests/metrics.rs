//! The data plane's metrics (feature `metrics`) and its access log, through the public API:
//! exact counter values and labels, bounded cardinality, the pool gauges, and the one
//! `stagegate::access` line per request with every field.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use stagegate::control::NewApp;
use stagegate::metrics::GatewayMetrics;
use stagegate::model::{
    ApiDefinition, BackendKind, HttpDefinition, MockDefinition, Stage, StageDefinition,
};

fn mock() -> StageDefinition {
    StageDefinition::Mock(MockDefinition {
        status: 200,
        headers: Default::default(),
        body: "ok".into(),
    })
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "api.example.com")
        .body(Full::default())
        .unwrap()
}

/// The sample lines of `text` (no comments), as a set.
fn samples(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The value of the sample `name{labels}` in `text`, if it is there.
fn value(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
}

/// The distinct values of `label` among `metric`'s samples.
fn label_values(text: &str, metric: &str, label: &str) -> BTreeSet<String> {
    let key = format!("{label}=\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter_map(|l| {
            let at = l.find(&key)? + key.len();
            Some(l[at..at + l[at..].find('"')?].to_owned())
        })
        .collect()
}

/// An anonymous mock API at `/open/[id]` and an `APP` one at `/signed/[id]`, published in
/// RELEASE. Returns the fixture, the group id and the signed API.
async fn two_apis() -> (common::Fx, String, ApiDefinition) {
    let fx = common::fx(BackendKind::Mock).await;
    fx.define(Stage::RELEASE, mock()).await;
    let open = fx.api("openApi", "GET", "/open/[id]", |_| {}).await;
    fx.cp.publish(&open.id, Stage::RELEASE, None).await.unwrap();
    let signed = ApiDefinition::new(
        fx.group.id.clone(),
        "signedApi",
        "GET",
        "/signed/[id]",
        fx.backend.id.clone(),
    )
    .unwrap();
    let signed = fx.cp.create_api(signed).await.unwrap();
    fx.cp
        .publish(&signed.id, Stage::RELEASE, None)
        .await
        .unwrap();
    let group = fx.group.id.as_str().to_owned();
    (fx, group, signed)
}

#[tokio::test]
async fn requests_are_counted_with_exact_labels_and_latencies() {
    let (fx, group, _signed) = two_apis().await;
    let metrics = GatewayMetrics::new();
    let svc = fx.layer().with_metrics(metrics.clone()).standalone();
    for i in 0..3 {
        let got = common::oneshot(svc.clone(), get(&format!("/open/{i}"))).await;
        assert_eq!(got.status, 200);
    }
    // An APP API called without a signature: refused by authentication.
    let refused = common::oneshot(svc.clone(), get("/signed/1")).await;
    let code = refused.header("x-ca-error-code").unwrap().to_owned();
    assert_eq!(refused.status / 100, 4, "{code}");

    let text = metrics.render();
    let open = format!(r#"group="{group}",api="openApi",stage="RELEASE""#);
    let signed = format!(r#"group="{group}",api="signedApi",stage="RELEASE""#);
    assert_eq!(
        value(
            &text,
            &format!(
                r#"stagegate_requests_total{{{open},app="-",status_class="2xx",error_code="-"}}"#
            )
        )
        .as_deref(),
        Some("3"),
        "{text}"
    );
    let class = format!("{}xx", refused.status / 100);
    assert_eq!(
        value(
            &text,
            &format!(
                r#"stagegate_requests_total{{{signed},app="-",status_class="{class}",error_code="{code}"}}"#
            )
        )
        .as_deref(),
        Some("1"),
        "{text}"
    );
    // Exactly these two request series.
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("stagegate_requests_total{"))
            .count(),
        2,
        "{text}"
    );
    let count = |metric: &str, labels: &str| value(&text, &format!("{metric}_count{{{labels}}}"));
    assert_eq!(
        count("stagegate_request_duration_seconds", &open).as_deref(),
        Some("3")
    );
    assert_eq!(
        count("stagegate_upstream_duration_seconds", &open).as_deref(),
        Some("3")
    );
    assert_eq!(
        count("stagegate_request_duration_seconds", &signed).as_deref(),
        Some("1")
    );
    // Refused before the backend: no upstream time.
    assert_eq!(
        count("stagegate_upstream_duration_seconds", &signed).as_deref(),
        Some("0")
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"stagegate_request_duration_seconds_bucket{{le="10.0",{open}}}"#)
        )
        .as_deref(),
        Some("3"),
        "{text}"
    );
    assert_eq!(
        value(&text, "stagegate_unrouted_requests_total").as_deref(),
        Some("0")
    );
    // No traffic policy refused anything.
    assert!(!text.contains("stagegate_policy_refusals_total{"), "{text}");

    // The configuration gauges follow the control plane.
    metrics.observe_freshness(&fx.cp.freshness().await);
    let text = metrics.render();
    let revision = fx.cp.freshness().await.applied_revision;
    assert!(revision > 0);
    assert_eq!(
        value(&text, "stagegate_config_revision").as_deref(),
        Some(revision.to_string().as_str())
    );
    assert_eq!(
        value(&text, "stagegate_config_revisions_behind").as_deref(),
        Some("0")
    );
    let age: f64 = value(&text, "stagegate_config_seconds_since_change")
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");
}

#[tokio::test]
async fn unpublished_paths_add_no_series() {
    let (fx, _group, _signed) = two_apis().await;
    let metrics = GatewayMetrics::new();
    let svc = fx.layer().with_metrics(metrics.clone()).standalone();
    assert_eq!(
        common::oneshot(svc.clone(), get("/open/1")).await.status,
        200
    );
    let before = metrics.render();
    for i in 0..1000 {
        let got = common::oneshot(svc.clone(), get(&format!("/unpublished/{i}/x{i}"))).await;
        assert_eq!(got.status, 404);
    }
    // A published path with another method falls through too, and a dot segment is refused
    // before routing: neither names a series.
    let post = Request::post("/open/1")
        .header("host", "api.example.com")
        .body(Full::default())
        .unwrap();
    assert_eq!(common::oneshot(svc.clone(), post).await.status, 404);
    assert_eq!(
        common::oneshot(svc.clone(), get("/open/../x")).await.status,
        400
    );
    let after = metrics.render();
    let (b, a) = (samples(&before), samples(&after));
    let added: Vec<_> = a.difference(&b).collect();
    let removed: Vec<_> = b.difference(&a).collect();
    assert_eq!(
        added,
        ["stagegate_unrouted_requests_total 1002"],
        "only the unrouted counter moved"
    );
    assert_eq!(removed, ["stagegate_unrouted_requests_total 0"]);
    assert!(!after.contains("unpublished"));
}

#[tokio::test]
async fn apps_beyond_the_top_n_are_counted_as_other() {
    let (fx, _group, signed) = two_apis().await;
    let metrics = GatewayMetrics::new().with_top_apps(10);
    let svc = fx.layer().with_metrics(metrics.clone()).standalone();
    for i in 0..50 {
        let app = fx
            .cp
            .create_app(NewApp {
                name: format!("app_{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
        fx.cp
            .authorize(&app.id, &signed.id, Stage::RELEASE, None)
            .await
            .unwrap();
        let signer =
            stagegate::auth::Signer::new(&app.keys[0].app_key, app.keys[0].app_secret.clone())
                .unwrap();
        let mut req = get(&format!("/signed/{i}"));
        signer.sign(&mut req, b"");
        let got = common::oneshot(svc.clone(), req).await;
        assert_eq!(got.status, 200, "{}", got.text());
    }
    let text = metrics.render();
    let apps = label_values(&text, "stagegate_requests_total", "app");
    assert_eq!(apps.len(), 11, "{apps:?}");
    assert!(apps.contains("other"));
    let other = value(
        &text,
        &format!(
            r#"stagegate_requests_total{{group="{}",api="signedApi",stage="RELEASE",app="other",status_class="2xx",error_code="-"}}"#,
            fx.group.id.as_str()
        ),
    );
    assert_eq!(other.as_deref(), Some("40"), "{text}");
}

#[tokio::test]
async fn pool_gauges_report_the_forwarder() {
    let up = common::upstream("metrics").await;
    let fx = common::fx(BackendKind::Http).await;
    fx.define(
        Stage::RELEASE,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await;
    let api = fx.api("proxied", "GET", "/p", |_| {}).await;
    fx.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let metrics = GatewayMetrics::new();
    let svc = fx.layer().with_metrics(metrics.clone()).standalone();
    let before = metrics.render();
    assert_eq!(
        value(&before, "stagegate_upstream_idle_connections").as_deref(),
        Some("0")
    );
    let got = common::oneshot(svc.clone(), get("/p")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    // The connection goes back to the pool when the response body has ended.
    let mut text = String::new();
    for _ in 0..100 {
        text = metrics.render();
        if value(&text, "stagegate_upstream_idle_connections").as_deref() == Some("1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        value(&text, "stagegate_upstream_idle_connections").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        value(&text, "stagegate_upstream_pooled_backends").as_deref(),
        Some("1")
    );
    assert_eq!(
        value(&text, "stagegate_upstream_in_flight").as_deref(),
        Some("0")
    );
}

/// A `MakeWriter` collecting everything written into one buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

#[tokio::test]
async fn one_access_log_line_per_request_with_every_field_as_json() {
    let up = common::upstream("access").await;
    let fx = common::fx(BackendKind::Http).await;
    fx.define(
        Stage::RELEASE,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await;
    let api = fx.api("logged", "GET", "/logged", |_| {}).await;
    fx.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let svc = fx.layer().standalone();
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(captured.clone())
        .with_env_filter(tracing_subscriber::EnvFilter::new("stagegate::access=info"))
        .finish();
    // The test runtime is single-threaded: the request runs on this thread.
    let guard = common::logs::set_default(subscriber);
    let got = common::oneshot(svc.clone(), get("/logged")).await;
    assert_eq!(got.status, 200);
    let request_id = got.header("x-ca-request-id").unwrap().to_owned();
    let missing = common::oneshot(svc.clone(), get("/not-published")).await;
    assert_eq!(missing.status, 404);
    drop(guard);

    let out = String::from_utf8(captured.0.lock().clone()).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "one line, for the served request: {out}");
    let line = &lines[0];
    assert_eq!(line["target"], "stagegate::access");
    assert_eq!(line["level"], "INFO");
    let f = &line["fields"];
    assert_eq!(f["message"], "request");
    assert_eq!(f["request_id"], request_id.as_str());
    assert_eq!(f["group"], fx.group.id.as_str());
    assert_eq!(f["api"], "logged");
    assert_eq!(f["stage"], "RELEASE");
    assert_eq!(f["app"], "-");
    assert_eq!(f["status"], 200);
    assert_eq!(f["error_code"], "-");
    assert_eq!(f["policy"], "-");
    let total = f["latency_us"].as_u64().unwrap();
    let upstream: u64 = f["upstream_us"].as_str().unwrap().parse().unwrap();
    let gateway = f["gateway_us"].as_u64().unwrap();
    assert!(upstream > 0 && upstream <= total, "{f}");
    assert_eq!(gateway, total - upstream, "{f}");
}

#[tokio::test]
async fn the_access_log_names_the_error_code_and_no_upstream_time_of_a_refusal() {
    let (fx, _group, _signed) = two_apis().await;
    let svc = fx.layer().standalone();
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("stagegate::access=info"))
        .finish();
    let guard = common::logs::set_default(subscriber);
    let got = common::oneshot(svc.clone(), get("/signed/1")).await;
    drop(guard);
    let code = got.header("x-ca-error-code").unwrap();
    let out = String::from_utf8(captured.0.lock().clone()).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    for field in [
        format!("error_code=\"{code}\""),
        format!("status={}", got.status),
        "api=signedApi".to_owned(),
        "upstream_us=-".to_owned(),
        "policy=\"-\"".to_owned(),
    ] {
        assert!(out.contains(&field), "{field} in {out}");
    }
}
