//! Function Compute end to end: event functions through the in-process registry and the HTTP
//! invoker, answers turned into responses, failures, HTTP functions. Loopback only.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use common::{fx, oneshot, req, serve, upstream};
use stagegate::backend::{
    ApiGatewayEvent, Backends, FunctionError, FunctionResponse, HttpFunctionInvoker, LocalFunctions,
};
use stagegate::model::{BackendKind, FunctionDefinition, Stage, StageDefinition};

fn event_fn(function: &str) -> StageDefinition {
    StageDefinition::FunctionCompute(FunctionDefinition::Event {
        region: "local".into(),
        service: "orders".into(),
        function: function.into(),
        qualifier: "LATEST".into(),
        role_arn: None,
    })
}

fn functions() -> LocalFunctions {
    let f = LocalFunctions::new();
    f.register("orders", "echo", "LATEST", |event| async move {
        let e: ApiGatewayEvent = serde_json::from_value(event.clone())
            .map_err(|e| FunctionError::Failed(e.to_string()))?;
        let body = e
            .body_bytes()
            .map_err(|e| FunctionError::Failed(e.to_string()))?;
        Ok(FunctionResponse::new(201)
            .with_header("content-type", "application/json")
            .with_header("x-body-len", body.len().to_string())
            .with_body(event.to_string())
            .into_json())
    });
    f.register("orders", "binary", "LATEST", |_| async {
        Ok(FunctionResponse::new(200)
            .with_binary_body(&[0xff, 0x00, 0x01])
            .into_json())
    });
    f.register("orders", "malformed", "LATEST", |_| async {
        Ok(serde_json::json!({ "status": 200, "body": "no statusCode here" }))
    });
    f.register("orders", "slow", "LATEST", |_| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(FunctionResponse::new(200).into_json())
    });
    f
}

#[tokio::test]
async fn event_functions_get_the_trigger_event_and_answer_with_the_response() {
    let f = fx(BackendKind::FunctionCompute).await;
    f.define(Stage::RELEASE, event_fn("echo")).await;
    let api = f.api("echoApi", "POST", "/orders/[id]", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let svc = f
        .layer()
        .with_backends(Backends::new().with_functions(functions()))
        .standalone();

    let mut r = req("POST", "/orders/a%20b?q=1&r=two", "{\"n\":1}");
    r.headers_mut().insert("x-custom", "yes".parse().unwrap());
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(got.status, 201, "{}", got.text());
    assert_eq!(got.header("x-body-len"), Some("7"));
    let event = got.json();
    assert_eq!(event["path"], "/orders/a%20b");
    assert_eq!(event["httpMethod"], "POST");
    assert_eq!(event["headers"]["x-custom"], "yes");
    assert_eq!(event["queryParameters"]["r"], "two");
    assert_eq!(event["pathParameters"]["id"], "a b");
    assert_eq!(event["body"], "{\"n\":1}");
    assert_eq!(event["isBase64Encoded"], false);

    // a body that is not UTF-8 travels as base64
    let got = oneshot(svc, req("POST", "/orders/1", vec![0xffu8, 0xfe])).await;
    assert_eq!(got.json()["isBase64Encoded"], true);
    assert_eq!(got.json()["body"], "//4=");
    assert_eq!(got.header("x-body-len"), Some("2"));
}

#[tokio::test]
async fn base64_answers_are_decoded() {
    let f = fx(BackendKind::FunctionCompute).await;
    f.define(Stage::RELEASE, event_fn("binary")).await;
    let api = f.api("binApi", "GET", "/bin", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let svc = f
        .layer()
        .with_backends(Backends::new().with_functions(functions()))
        .standalone();
    let got = oneshot(svc, req("GET", "/bin", "")).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], &[0xff, 0x00, 0x01]);
}

#[tokio::test]
async fn malformed_answers_unknown_functions_and_timeouts_are_gateway_errors() {
    let f = fx(BackendKind::FunctionCompute).await;
    f.define(Stage::RELEASE, event_fn("malformed")).await;
    f.define(Stage::TEST, event_fn("missing")).await;
    f.define(Stage::PRE, event_fn("slow")).await;
    let api = f
        .api("fnApi", "GET", "/fn", |a| a.backend.timeout_ms = Some(200))
        .await;
    for s in [Stage::RELEASE, Stage::TEST, Stage::PRE] {
        f.cp.publish(&api.id, s, None).await.unwrap();
    }
    let svc = f
        .layer()
        .with_backends(Backends::new().with_functions(functions()))
        .standalone();

    let got = oneshot(svc.clone(), req("GET", "/fn", "")).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.header("x-ca-error-code"), Some("D502FC"));
    assert_eq!(
        got.header("x-ca-error-message"),
        // #21: what was wrong with the function's answer is logged, not sent.
        Some("Backend service response invalid")
    );

    let mut r = req("GET", "/fn", "");
    r.headers_mut()
        .insert("x-ca-stage", "TEST".parse().unwrap());
    let got = oneshot(svc.clone(), r).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.header("x-ca-error-code"), Some("D502FN"));
    assert_eq!(
        got.header("x-ca-error-message"),
        // #21: the function's name is logged, not sent.
        Some("Backend function not found")
    );

    let mut r = req("GET", "/fn", "");
    r.headers_mut().insert("x-ca-stage", "PRE".parse().unwrap());
    let started = std::time::Instant::now();
    let got = oneshot(svc, r).await;
    assert_eq!(got.status, 504);
    assert_eq!(got.header("x-ca-error-code"), Some("D504TO"));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_http_invoker_posts_the_event_to_the_functions_url() {
    let remote = Router::new().route(
        "/invoke/echo",
        post(|body: axum::body::Bytes| async move {
            let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            serde_json::json!({
                "statusCode": 202,
                "headers": {"x-remote": "yes"},
                "body": event["path"],
            })
            .to_string()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, remote).await });

    let f = fx(BackendKind::FunctionCompute).await;
    f.define(Stage::RELEASE, event_fn("echo")).await;
    f.define(Stage::TEST, event_fn("other")).await;
    let api = f.api("remoteApi", "GET", "/remote", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    f.cp.publish(&api.id, Stage::TEST, None).await.unwrap();
    let invoker = HttpFunctionInvoker::new().route(
        "orders",
        "echo",
        "LATEST",
        format!("http://{addr}/invoke/echo"),
    );
    let svc = f
        .layer()
        .with_backends(Backends::new().with_functions(invoker))
        .standalone();
    let got = oneshot(svc.clone(), req("GET", "/remote", "")).await;
    assert_eq!((got.status, got.text().as_str()), (202, "/remote"));
    assert_eq!(got.header("x-remote"), Some("yes"));

    let mut r = req("GET", "/remote", "");
    r.headers_mut()
        .insert("x-ca-stage", "TEST".parse().unwrap());
    let got = oneshot(svc, r).await;
    assert_eq!(got.header("x-ca-error-code"), Some("D502FN"));
}

#[tokio::test]
async fn http_functions_are_forwarded_under_the_trigger_path() {
    let up = upstream("fc-http").await;
    let f = fx(BackendKind::FunctionCompute).await;
    f.define(
        Stage::RELEASE,
        StageDefinition::FunctionCompute(FunctionDefinition::Http {
            url: format!("http://{up}"),
            path: Some("/2016-08-15/proxy/svc/fn/".into()),
        }),
    )
    .await;
    let api = f.api("httpFnApi", "GET", "/users/[id]", |_| {}).await;
    f.cp.publish(&api.id, Stage::RELEASE, None).await.unwrap();
    let addr = serve(f.layer().standalone()).await;
    let res = common::client()
        .request(
            http::Request::get(format!("http://{addr}/users/42?v=1"))
                .body(http_body_util::Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let got = common::collect(res).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["path"], "/2016-08-15/proxy/svc/fn/users/42");
    assert_eq!(got.json()["query"], "v=1");
}
