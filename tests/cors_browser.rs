//! CORS in a real browser (issue #24): a page served from another loopback origin calls a
//! signed (APP auth) API through the gateway with `fetch`, in Debian's headless Chromium driven
//! by `tests/browser/cors.mjs`. The `X-Ca-*` headers make Chromium send a real preflight; the
//! page asserts that the response, its body from the upstream and `X-Ca-Request-Id` are
//! readable, that an error (wrong signature) still carries the CORS headers so the script can
//! read `X-Ca-Error-Code`, and that a page from an origin the policy does not allow sees
//! `fetch` reject. The signed headers are computed here with `stagegate::auth::Signer` (current
//! timestamp, fixed nonces) and embedded in the page.
//!
//! Needs `node`, `/usr/bin/chromium` (or `STAGEGATE_CHROMIUM`) and `npm ci` in `tests/browser`;
//! where one is missing the test skips with a message (fails under
//! `STAGEGATE_REQUIRE_SERVICES=1`).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::services::skip;
use http::Request;
use parking_lot::Mutex;
use stagegate::ErrorCode;
use stagegate::auth::Signer;
use stagegate::control::{NewApp, NewPolicy};
use stagegate::model::{AuthType, BackendKind, HttpDefinition, Stage, StageDefinition};
use stagegate::policy::{Cors, PolicySpec};

/// Every request the gateway saw: (method, `Origin`).
type Seen = Vec<(String, Option<String>)>;

/// What the browser test needs, or why it cannot run.
fn tools() -> Result<(PathBuf, PathBuf), String> {
    common::services::browser_tools("cors.mjs")
}

/// The headers `signer` puts on `GET /orders` for a timestamp and nonce, as a JSON object.
fn signed_headers(signer: &Signer, ts: u64, nonce: &str) -> serde_json::Value {
    let mut req = Request::get("/orders").body(()).unwrap();
    signer.sign_with(&mut req, b"", ts, nonce).unwrap();
    req.headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().into()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The page: its module script calls the API once per entry of `calls` and leaves what it
/// could read in `window.corsResults`.
fn page(api: &str, calls: &serde_json::Value) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CORS page</title></head>
<body><pre id="out">running</pre><script type="module">
const API = {api};
const CALLS = {calls};
const out = {{}};
for (const [name, headers] of Object.entries(CALLS)) {{
  try {{
    const r = await fetch(API, {{ headers, mode: 'cors' }});
    out[name] = {{ ok: true, status: r.status, body: await r.text(),
      requestId: r.headers.get('X-Ca-Request-Id'), errorCode: r.headers.get('X-Ca-Error-Code'),
      upstream: r.headers.get('X-Upstream') }};
  }} catch (e) {{
    out[name] = {{ ok: false, error: `${{e.name}}: ${{e.message}}` }};
  }}
}}
document.getElementById('out').textContent = JSON.stringify(out);
window.corsResults = out;
</script></body></html>"#,
        api = serde_json::Value::from(api),
    )
}

/// Serves `html` at `/` on `listener`.
fn serve_page(listener: tokio::net::TcpListener, html: String) {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_another_origin_calls_a_signed_api_with_fetch_in_chromium() {
    let (chromium, script) = match tools() {
        Ok(t) => t,
        Err(why) => return skip("Chromium with playwright-core (browser tests)", &why),
    };
    // Two page origins: the first is allowed by the policy, the second is not.
    let allowed_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_origin = format!("http://{}", allowed_l.local_addr().unwrap());
    let other_origin = format!("http://{}", other_l.local_addr().unwrap());

    // The gateway: a signed API on a loopback upstream, bound to the CORS policy.
    let up = common::upstream("cors-up").await;
    let f = common::fx(BackendKind::Http).await;
    f.define(
        Stage::RELEASE,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await;
    let api = f
        .api("browserOrders", "GET", "/orders", |a| {
            a.auth = AuthType::App
        })
        .await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let policy =
        f.cp.create_policy(NewPolicy {
            name: "pageOrigin".into(),
            spec: PolicySpec::Cors(Cors::new([allowed_origin.clone()])),
        })
        .await
        .unwrap();
    f.cp.bind_policy(&api.id, &policy.id, Stage::RELEASE)
        .await
        .unwrap();
    let app =
        f.cp.create_app(NewApp {
            name: "browserApp".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    f.cp.authorize(&app.id, &api.id, Stage::RELEASE, None)
        .await
        .unwrap();

    // Every request the gateway sees: (method, Origin).
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let log = Arc::clone(&seen);
    let gateway = tower::ServiceExt::map_request(
        f.layer().standalone(),
        move |req: Request<hyper::body::Incoming>| {
            let origin = req
                .headers()
                .get("origin")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            log.lock().push((req.method().to_string(), origin));
            req
        },
    );
    let gw: SocketAddr = common::serve(gateway).await;
    let api_url = format!("http://{gw}/orders");

    let key = &app.keys[0];
    let signer = Signer::new(&key.app_key, key.app_secret.clone()).unwrap();
    let forged = Signer::new(&key.app_key, "not-the-secret").unwrap();
    let now = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap();
    let allowed_calls = serde_json::json!({
        "good": signed_headers(&signer, now, "cors-browser-good"),
        "badSignature": signed_headers(&forged, now, "cors-browser-forged"),
    });
    let other_calls = serde_json::json!({
        "good": signed_headers(&signer, now, "cors-browser-other"),
    });
    serve_page(allowed_l, page(&api_url, &allowed_calls));
    serve_page(other_l, page(&api_url, &other_calls));

    let child = tokio::process::Command::new("node")
        .arg(&script)
        .arg(format!("{allowed_origin}/"))
        .arg(format!("{other_origin}/"))
        .arg(ErrorCode::A403IS.as_str())
        .env("STAGEGATE_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let done = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the browser run finishes within 2 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout);
    let stderr = String::from_utf8_lossy(&done.stderr);
    println!("{stdout}");
    assert!(
        done.status.success(),
        "the browser run failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        done.status
    );

    // What reached the gateway: a real preflight from each page origin, then the two actual
    // calls from the allowed origin only (the other origin's call never left the browser).
    let seen = seen.lock().clone();
    let count = |method: &str, origin: &str| {
        seen.iter()
            .filter(|(m, o)| m == method && o.as_deref() == Some(origin))
            .count()
    };
    assert!(count("OPTIONS", &allowed_origin) >= 1, "{seen:?}");
    assert_eq!(count("GET", &allowed_origin), 2, "{seen:?}");
    assert!(count("OPTIONS", &other_origin) >= 1, "{seen:?}");
    assert_eq!(count("GET", &other_origin), 0, "{seen:?}");
}
