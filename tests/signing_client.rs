//! The signing client against a real gateway on loopback: `stagegate::client::Client` and
//! `SigningLayer` over hyper-util's client sign GET, JSON and form requests the gateway
//! verifies, with a fresh nonce per request.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use common::{client, collect, serve, upstream};
use http::Request;
use http_body_util::Full;
use stagegate::auth::Signer;
use stagegate::client::{Client, ClientError, SigningLayer};
use stagegate::control::{NewApp, NewBackend, NewGroup};
use stagegate::model::{ApiDefinition, App, BackendKind, HttpDefinition, Stage, StageDefinition};
use stagegate::store::MemoryStore;
use stagegate::{ControlPlane, GatewayLayer};
use tower::{Layer as _, ServiceExt as _};

/// A gateway on loopback with three APP APIs to an echoing upstream, published in TEST only,
/// and an app authorized for them in TEST.
async fn gateway() -> (std::net::SocketAddr, App, Arc<ControlPlane>) {
    let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    let up = upstream("u").await;
    let b = cp
        .create_backend(NewBackend::new("echo", BackendKind::Http))
        .await
        .unwrap();
    cp.set_stage_definition(
        &b.id,
        Stage::TEST,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await
    .unwrap();
    let g = cp
        .create_group(NewGroup {
            name: "client_group".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let app = cp
        .create_app(NewApp {
            name: "client_app".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for (name, method, path) in [
        ("getUser", "GET", "/users/{id}"),
        ("createUser", "POST", "/users"),
        ("login", "POST", "/login"),
    ] {
        let a = ApiDefinition::new(g.id.clone(), name, method, path, b.id.clone()).unwrap();
        let a = cp.create_api(a).await.unwrap();
        cp.publish(&a.id, Stage::TEST, None).await.unwrap();
        cp.authorize(&app.id, &a.id, Stage::TEST, None)
            .await
            .unwrap();
    }
    let gw = serve(GatewayLayer::new(cp.snapshot_handle()).standalone()).await;
    (gw, app, cp)
}

fn signer(app: &App) -> Signer {
    Signer::new(&app.keys[0].app_key, app.keys[0].app_secret.clone())
        .unwrap()
        .with_stage(Stage::TEST)
}

fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn client_get_is_verified_and_each_request_has_its_own_nonce() {
    let (gw, app, _cp) = gateway().await;
    let client = Client::new(signer(&app));
    let mut nonces = HashSet::new();
    for i in 0..3 {
        let res = client.get(&format!("http://{gw}/users/{i}")).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.headers());
        let echo = json(res.body());
        assert_eq!(echo["path"], format!("/users/{i}"));
        assert_eq!(echo["headers"]["x-ca-stage"], "TEST");
        let nonce = echo["headers"]["x-ca-nonce"].as_str().unwrap().to_owned();
        assert!(nonces.insert(nonce), "a nonce was sent twice");
    }
}

#[tokio::test]
async fn client_json_and_form_bodies_are_signed_and_delivered() {
    let (gw, app, _cp) = gateway().await;
    let client = Client::new(signer(&app));
    let res = client
        .post_json(&format!("http://{gw}/users"), r#"{"name":"alice"}"#)
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.headers());
    let echo = json(res.body());
    assert_eq!(echo["body"], r#"{"name":"alice"}"#);
    assert!(echo["headers"]["content-md5"].is_string());

    let res = client
        .post_form(
            &format!("http://{gw}/login"),
            &[("user", "alice"), ("note", "a b&c")],
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.headers());
    let echo = json(res.body());
    assert_eq!(echo["body"], "user=alice&note=a+b%26c");
    assert!(echo["headers"].get("content-md5").is_none());
}

#[tokio::test]
async fn a_wrong_secret_or_no_stage_is_refused_by_the_gateway() {
    let (gw, app, _cp) = gateway().await;
    let wrong = Signer::new(&app.keys[0].app_key, "not-the-secret")
        .unwrap()
        .with_stage(Stage::TEST);
    let res = Client::new(wrong)
        .get(&format!("http://{gw}/users/1"))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["x-ca-error-code"], "A403IS");
    // without a stage the request is for RELEASE, where nothing is published
    let release = Signer::new(&app.keys[0].app_key, app.keys[0].app_secret.clone()).unwrap();
    let res = Client::new(release)
        .get(&format!("http://{gw}/users/1"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn signing_layer_over_hyper_util_client() {
    let (gw, app, _cp) = gateway().await;
    let svc = SigningLayer::new(signer(&app)).layer(client());
    let req = Request::post(format!("http://{gw}/users"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"n\":1}")))
        .unwrap();
    let got = collect(svc.oneshot(req).await.unwrap()).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["body"], "{\"n\":1}");
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_sent() {
    let client = Client::new(Signer::new("k", "s").unwrap());
    for bad in ["/users/1", "not a uri", "http://"] {
        match client.get(bad).await {
            Err(ClientError::InvalidRequest { field: "uri", .. }) => {}
            other => panic!("{bad}: {other:?}"),
        }
    }
    let small =
        Client::with_layer(SigningLayer::new(Signer::new("k", "s").unwrap()).with_request_limit(3));
    // a dead port: the limit is checked before any connection is tried
    let port = common::dead_port().await;
    match small
        .post_json(&format!("http://127.0.0.1:{port}/x"), "1234")
        .await
    {
        Err(ClientError::RequestTooLarge { limit: 3 }) => {}
        other => panic!("{other:?}"),
    }
}
