//! The web console's static files from the admin API: content types, caching, the security
//! headers, no token needed for them (and only for them), unknown files and traversal refused.
#![cfg(feature = "admin")]

mod common;

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use stagegate::admin::{ASSETS, AdminApi, CONTENT_SECURITY_POLICY};
use stagegate::model::Secret;
use stagegate::store::MemoryStore;
use stagegate::{ControlPlane, GatewayLayer};

const TOKEN: &str = "console-test-token";

async fn admin() -> AdminApi {
    let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
    AdminApi::new(control, Secret::new(TOKEN), gateway)
}

async fn get(a: &AdminApi, path: &str, headers: &[(&str, &str)]) -> common::Got {
    let mut b = Request::get(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    common::oneshot(a.router(), b.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn assets_are_served_without_a_token_with_their_types_and_security_headers() {
    let a = admin().await;
    for (path, ty, needle) in [
        (
            "/console/",
            "text/html; charset=utf-8",
            "<script type=\"module\" src=\"app.js\">",
        ),
        (
            "/console/index.html",
            "text/html; charset=utf-8",
            "<html lang=\"en\">",
        ),
        (
            "/console/app.js",
            "text/javascript; charset=utf-8",
            "sessionStorage",
        ),
        ("/console/style.css", "text/css; charset=utf-8", ":root"),
        ("/console/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let got = get(&a, path, &[]).await;
        assert_eq!(got.status, 200, "{path}: {}", got.text());
        assert_eq!(got.header("content-type"), Some(ty), "{path}");
        assert!(got.text().contains(needle), "{path}");
        assert_eq!(
            got.header("content-security-policy"),
            Some(CONTENT_SECURITY_POLICY)
        );
        assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(got.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(got.header("x-frame-options"), Some("DENY"));
        assert_eq!(got.header("cache-control"), Some("no-cache"));
        assert!(got.header("etag").is_some_and(|e| e.starts_with('"')));
        assert!(got.header("set-cookie").is_none());
    }
    // The policy allows no inline script and no other origin for data.
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(CONTENT_SECURITY_POLICY.contains(part), "{part}");
    }
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    // The page holds no inline script or style to need it.
    let (_, _, html) = ASSETS.iter().find(|(n, _, _)| *n == "index.html").unwrap();
    let html = std::str::from_utf8(html).unwrap();
    assert!(!html.contains("<script>") && !html.contains("style=") && !html.contains("onclick"));
}

#[tokio::test]
async fn etag_revalidation_answers_304_and_head_works() {
    let a = admin().await;
    let first = get(&a, "/console/app.js", &[]).await;
    let etag = first.header("etag").unwrap().to_owned();
    let again = get(&a, "/console/app.js", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let other = get(&a, "/console/app.js", &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(other.status, 200);
    assert_ne!(
        get(&a, "/console/style.css", &[]).await.header("etag"),
        Some(etag.as_str())
    );
    let head = common::oneshot(
        a.router(),
        Request::head("/console/app.js")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn console_without_slash_redirects_relatively() {
    let a = admin().await;
    let got = get(&a, "/console", &[]).await;
    assert_eq!(got.status, 308);
    assert_eq!(got.header("location"), Some("console/"));
}

#[tokio::test]
async fn unknown_files_are_404_and_need_the_token() {
    let a = admin().await;
    let auth = format!("Bearer {TOKEN}");
    let got = get(&a, "/console/nope.js", &[("authorization", &auth)]).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.json()["code"], "NotFound");
    assert_eq!(get(&a, "/console/nope.js", &[]).await.status, 401);
    // Only GET and HEAD of the console are public.
    let post = common::oneshot(
        a.router(),
        Request::post("/console/app.js")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 401);
}

#[tokio::test]
async fn traversal_out_of_the_console_is_refused_and_never_reaches_data() {
    let a = admin().await;
    // Something that a traversal would reveal if it reached `/backends`.
    a.control()
        .create_backend(stagegate::control::NewBackend::new(
            "secret_backend",
            stagegate::model::BackendKind::Http,
        ))
        .await
        .unwrap();
    let auth = format!("Bearer {TOKEN}");
    for path in [
        "/console/../backends",
        "/console/%2e%2e/backends",
        "/console/%2E%2E/backends",
        "/console/..%2fbackends",
        "/console/.%2e/backends",
        "/console/x/../../backends",
        "/console/..\\backends",
        "/console//app.js",
        "/console/./app.js",
        "/console/app.js/",
    ] {
        let Ok(uri) = path.parse::<http::Uri>() else {
            continue;
        };
        let anon = get(&a, &uri.to_string(), &[]).await;
        assert_eq!(anon.status, 401, "{path} without a token: {}", anon.text());
        let with = get(&a, &uri.to_string(), &[("authorization", &auth)]).await;
        assert_eq!(with.status, 404, "{path} with the token: {}", with.text());
        assert!(!with.text().contains("secret_backend"), "{path}");
    }
    // Data routes still need the token.
    assert_eq!(get(&a, "/backends", &[]).await.status, 401);
}

#[tokio::test]
async fn nested_under_a_prefix_the_console_is_served_there() {
    let a = admin().await;
    let app: axum::Router = axum::Router::new().nest("/admin", a.router());
    let got = common::oneshot(
        app.clone(),
        Request::get("/admin/console/app.js")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    let redirect = common::oneshot(
        app,
        Request::get("/admin/console").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(redirect.status, 308);
}
