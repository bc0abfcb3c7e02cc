//! The web console in a real browser: an in-process admin API and data plane on loopback, and
//! `tests/browser/console.mjs` driving Debian's headless Chromium through playwright-core over
//! the seed's whole workflow (create a backend service, define it for TEST, create an API and
//! publish it to TEST, see PRE refused, create and authorize an app, debug, edit the definition
//! with its impact list and see the debug response follow, delete it with its impact list and
//! see the API unpublished), plus keyboard, labels, the 390-px phone layout and a lost token.
//!
//! Needs `node`, `/usr/bin/chromium` (or `STAGEGATE_CHROMIUM`) and `npm ci` in `tests/browser`;
//! where one is missing the test skips with a message (fails under
//! `STAGEGATE_REQUIRE_SERVICES=1`). Screenshots (1280x800) go to a temporary directory, or to
//! `STAGEGATE_SCREENSHOTS` (e.g. `STAGEGATE_SCREENSHOTS=docs/screenshots`) when set.
#![cfg(feature = "admin")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::services::{skip, unique_name};
use stagegate::admin::AdminApi;
use stagegate::model::{Secret, Stage};
use stagegate::store::MemoryStore;
use stagegate::{ControlPlane, GatewayLayer};

/// What the browser test needs, or why it cannot run.
fn tools() -> Result<(PathBuf, PathBuf), String> {
    common::services::browser_tools("console.mjs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_walks_the_whole_workflow_in_chromium() {
    let (chromium, script) = match tools() {
        Ok(t) => t,
        Err(why) => return skip("Chromium with playwright-core (browser tests)", &why),
    };
    let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
    let token = Secret::generate();
    let admin = AdminApi::new(Arc::clone(&control), token.clone(), gateway).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, admin).await });
    let v1 = common::upstream("v1").await;
    let v2 = common::upstream("v2").await;

    let out = match std::env::var_os("STAGEGATE_SCREENSHOTS") {
        Some(d) => Path::new(env!("CARGO_MANIFEST_DIR")).join(d),
        None => std::env::temp_dir().join(unique_name("stagegate-console")),
    };
    std::fs::create_dir_all(&out).unwrap();
    let child = tokio::process::Command::new("node")
        .arg(&script)
        .arg(format!("http://{admin_addr}/console/"))
        .arg(token.expose())
        .arg(&out)
        .env("CONSOLE_UPSTREAM_1", format!("http://{v1}"))
        .env("CONSOLE_UPSTREAM_2", format!("http://{v2}"))
        .env("STAGEGATE_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let done = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("the browser walk finishes within 5 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout);
    let stderr = String::from_utf8_lossy(&done.stderr);
    println!("{stdout}");
    assert!(
        done.status.success(),
        "the browser walk failed ({}); screenshots in {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        done.status,
        out.display()
    );

    // What the console did, as the control plane sees it.
    let backends = control.backends().await;
    let orders = backends.iter().find(|b| b.name == "orders_http").unwrap();
    assert!(
        !orders.stages.contains_key(&Stage::TEST),
        "TEST definition deleted"
    );
    let apis = control.apis(None).await;
    let api = apis.iter().find(|a| a.name == "getOrder").unwrap();
    assert!(control.published(&api.id, &Stage::TEST).await.is_none());
    assert!(control.published(&api.id, &Stage::PRE).await.is_none());
    assert_eq!(control.deployments(&api.id).await.unwrap().len(), 1);
    let app = control.apps(Some("mobile_app")).await.pop().unwrap();
    let grants = control.authorizations(Some(&api.id), Some(&app.id)).await;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].stage, Stage::TEST);
    assert!(grants[0].expires_at.is_some());
    for name in [
        "sign-in",
        "backend-services",
        "backend-service",
        "publish-refused",
        "apis",
        "app",
        "debug",
        "docs",
        "impact-edit",
        "impact-delete",
        "phone-backend-services",
    ] {
        let png = std::fs::read(out.join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}.png is a PNG");
    }
    if std::env::var_os("STAGEGATE_SCREENSHOTS").is_none() {
        let _ = std::fs::remove_dir_all(&out);
    }
}
