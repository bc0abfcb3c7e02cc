//! The gateway layer mounted in a real axum server on loopback: the client's address reaches
//! the backend (`X-Forwarded-For`, `CaClientIp`) when axum is served with connect info, and
//! `{name}` path parameters work as `[name]` ones do.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use common::{Fx, client, collect, fx, upstream};
use http::Request;
use http_body_util::Full;
use stagegate::model::{
    ApiDefinition, BackendKind, HttpDefinition, ParamLocation, Stage, StageDefinition, SystemParam,
    SystemParameter,
};

/// An HTTP API on `path` (backend path `backend_path`) to an upstream that echoes the request,
/// mapping `CaClientIp` into `x-client-ip`, published in RELEASE.
async fn echo_api(path: &str, backend_path: Option<&str>) -> (Fx, ApiDefinition) {
    let fx = fx(BackendKind::Http).await;
    let up = upstream("u").await;
    fx.define(
        Stage::RELEASE,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await;
    let api = fx
        .api("whoCalls", "GET", path, |a| {
            a.backend.path = backend_path.map(str::to_owned);
            a.system_parameters.push(SystemParameter {
                name: SystemParam::CaClientIp,
                backend_name: "x-client-ip".into(),
                location: ParamLocation::Head,
            });
        })
        .await;
    fx.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    (fx, api)
}

/// Serves `app` with axum on 127.0.0.1, with or without connect info.
async fn serve_axum(app: Router, connect_info: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if connect_info {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        } else {
            axum::serve(listener, app).await
        }
    });
    addr
}

async fn get_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .unwrap();
    let got = collect(client().request(req).await.unwrap()).await;
    (got.status, got.json())
}

#[tokio::test]
async fn axum_connect_info_reaches_the_backend_as_the_client_address() {
    let (fx, _) = echo_api("/ip", None).await;
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .layer(fx.layer());
    let gw = serve_axum(app, true).await;
    let (status, json) = get_json(gw, "/ip").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(json["headers"]["x-client-ip"], "127.0.0.1");
    // the app's own routes are untouched
    let req = Request::get(format!("http://{gw}/health"))
        .body(Full::default())
        .unwrap();
    let got = collect(client().request(req).await.unwrap()).await;
    assert_eq!((got.status, got.text().as_str()), (200, "ok"));
}

#[tokio::test]
async fn without_connect_info_the_client_address_is_unknown() {
    // What the README's old mounting pattern gave: no address anywhere for the gateway to read.
    let (fx, _) = echo_api("/ip", None).await;
    let gw = serve_axum(Router::new().layer(fx.layer()), false).await;
    let (status, json) = get_json(gw, "/ip").await;
    assert_eq!(status, 200, "{json}");
    assert!(json["headers"].get("x-forwarded-for").is_none(), "{json}");
    assert_eq!(json["headers"]["x-client-ip"], "");
}

#[tokio::test]
async fn brace_and_bracket_parameters_route_and_map_alike() {
    for (path, backend) in [
        ("/users/{id}/orders/{oid}", "/v1/[oid]/of/{id}"),
        ("/users/[id]/orders/[oid]", "/v1/{oid}/of/[id]"),
    ] {
        let (fx, api) = echo_api(path, Some(backend)).await;
        let api = fx.cp.api(&api.id).await.unwrap();
        assert_eq!(api.request.path.as_str(), "/users/[id]/orders/[oid]");
        let gw = serve_axum(Router::new().layer(fx.layer()), true).await;
        let (status, json) = get_json(gw, "/users/u7/orders/o9").await;
        assert_eq!(status, 200, "{path}: {json}");
        assert_eq!(json["path"], "/v1/o9/of/u7", "{path}");
    }
}
