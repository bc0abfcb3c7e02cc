//! EventBridge backends end to end: CloudEvents on the in-process bus and over HTTP, unknown
//! buses, and the cascade (definition change re-points, delete unpublishes). Loopback only.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use common::{fx, oneshot, req};
use parking_lot::Mutex;
use stagegate::backend::{Backends, HttpEventSink, InProcessBus};
use stagegate::model::{BackendKind, EventBridgeDefinition, Stage, StageDefinition};

fn bus(name: &str) -> StageDefinition {
    StageDefinition::EventBridge(EventBridgeDefinition {
        bus: name.into(),
        source: "shop".into(),
        region: None,
    })
}

#[tokio::test]
async fn calls_become_cloudevents_on_the_in_process_bus() {
    let f = fx(BackendKind::EventBridge).await;
    f.define(Stage::RELEASE, bus("orders")).await;
    let api = f.api("createOrder", "POST", "/orders/[id]", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let events = InProcessBus::new();
    let mut rx = events.subscribe("orders");
    let svc = f
        .layer()
        .with_backends(Backends::new().with_events(events.clone()))
        .standalone();

    let got = oneshot(svc.clone(), req("POST", "/orders/7", "{\"sku\":42}")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let id = got.json()["event_id"].as_str().unwrap().to_owned();
    assert_eq!(Some(id.as_str()), got.header("x-ca-request-id"));
    let e = rx.try_recv().unwrap();
    assert_eq!(e.specversion, "1.0");
    assert_eq!(e.id, id);
    assert_eq!(e.source, "shop");
    assert_eq!(e.event_type, "stagegate.api.createOrder");
    assert_eq!(e.subject.as_deref(), Some("/orders/7"));
    assert!(e.time.is_some());
    assert_eq!(e.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(e.data, Some(serde_json::json!({"sku": 42})));

    // text, binary and empty bodies
    let _ = oneshot(svc.clone(), req("POST", "/orders/7", "plain words")).await;
    assert_eq!(
        rx.try_recv().unwrap().data,
        Some(serde_json::json!("plain words"))
    );
    let _ = oneshot(svc.clone(), req("POST", "/orders/7", vec![0xffu8, 0x00])).await;
    assert_eq!(rx.try_recv().unwrap().data_base64.as_deref(), Some("/wA="));
    let _ = oneshot(svc, req("POST", "/orders/8?note=hi", "")).await;
    assert_eq!(
        rx.try_recv().unwrap().data,
        Some(serde_json::json!({"pathParameters": {"id": "8"}, "queryParameters": {"note": "hi"}}))
    );
}

#[tokio::test]
async fn unknown_buses_fail_and_definition_changes_cascade() {
    let f = fx(BackendKind::EventBridge).await;
    f.define(Stage::RELEASE, bus("nobody")).await;
    let api = f.api("emit", "POST", "/emit", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let events = InProcessBus::new();
    let mut rx = events.subscribe("audit");
    let svc = f
        .layer()
        .with_backends(Backends::new().with_events(events))
        .standalone();

    let got = oneshot(svc.clone(), req("POST", "/emit", "{}")).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.header("x-ca-error-code"), Some("D502EB"));
    assert_eq!(
        got.header("x-ca-error-message"),
        // #21: the bus's name is logged, not sent.
        Some("Event bus request failed")
    );

    // re-point the stage to another bus: no republish needed
    f.define(Stage::RELEASE, bus("audit")).await;
    let got = oneshot(svc.clone(), req("POST", "/emit", "{}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(rx.try_recv().unwrap().source, "shop");

    // deleting the definition unpublishes the API
    f.cp.delete_stage_definition(&f.backend.id, &Stage::RELEASE)
        .await
        .unwrap();
    assert!(f.cp.published(&api.id, &Stage::RELEASE).await.is_none());
    let got = oneshot(svc, req("POST", "/emit", "{}")).await;
    assert_eq!(got.header("x-ca-error-code"), Some("I404NF"));
}

#[tokio::test]
async fn the_http_sink_posts_structured_json() {
    let seen: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let s = Arc::clone(&seen);
    let app = Router::new().route(
        "/events",
        post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
            let s = Arc::clone(&s);
            async move {
                let ct = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                s.lock()
                    .push((ct, serde_json::from_slice(&body).unwrap_or_default()));
                http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let f = fx(BackendKind::EventBridge).await;
    f.define(Stage::RELEASE, bus("orders")).await;
    let api = f.api("createOrder", "POST", "/orders", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let sink = HttpEventSink::new().with_bus("orders", format!("http://{addr}/events"));
    let svc = f
        .layer()
        .with_backends(
            Backends::new()
                .with_events(sink)
                .with_event_type_prefix("com.example"),
        )
        .standalone();
    let got = oneshot(svc, req("POST", "/orders", "[1,2]")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "application/cloudevents+json");
    assert_eq!(seen[0].1["type"], "com.example.createOrder");
    assert_eq!(seen[0].1["data"], serde_json::json!([1, 2]));
    assert_eq!(seen[0].1["id"], got.json()["event_id"]);
}
