//! The request context the data plane builds once per request: the arrival time is taken before
//! any body is read, and the same instant is what the authenticator sees (`AuthRequest.now`)
//! and what the backend gets as `CaRequestHandleTime`.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{collect, upstream};
use http::Request;
use http_body::{Body, Frame};
use jiff::Timestamp;
use stagegate::store::{BoxFuture, MemoryStore};
use stagegate::{
    Caller, ControlPlane, GatewayError, GatewayLayer,
    control::{NewBackend, NewGroup},
    layer::{AuthRequest, Authenticator},
    model::{
        ApiDefinition, BackendKind, HttpDefinition, ParamLocation, Stage, StageDefinition,
        SystemParam, SystemParameter,
    },
    routing::LiveRoute,
};

/// A request body whose bytes arrive when the test sends them.
struct Slow(tokio::sync::mpsc::Receiver<Bytes>);

impl Body for Slow {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Lets every request in, recording the `now` it was given; asks for the body, so the gateway
/// buffers it before authenticating.
#[derive(Clone, Default)]
struct Recorder(Arc<parking_lot::Mutex<Vec<Timestamp>>>);

impl Authenticator for Recorder {
    fn needs_body(&self, _parts: &http::request::Parts, _route: &LiveRoute) -> bool {
        true
    }

    fn authenticate<'a>(
        &'a self,
        req: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<Caller, GatewayError>> {
        self.0.lock().push(req.now);
        Box::pin(async { Ok(Caller::anonymous()) })
    }
}

#[tokio::test]
async fn arrival_time_is_taken_before_the_body_and_shared_by_auth_and_handle_time() {
    let up = upstream("ctx").await;
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let b = cp
        .create_backend(NewBackend::new("ctxBackend", BackendKind::Http))
        .await
        .unwrap();
    cp.set_stage_definition(
        &b.id,
        Stage::RELEASE,
        StageDefinition::Http(HttpDefinition::new(format!("http://{up}"))),
    )
    .await
    .unwrap();
    let g = cp
        .create_group(NewGroup {
            name: "ctx_group".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // An APP API (the builder's default), so the authenticator runs.
    let mut a =
        ApiDefinition::new(g.id.clone(), "upload", "POST", "/upload", b.id.clone()).unwrap();
    a.system_parameters = vec![SystemParameter {
        name: SystemParam::CaRequestHandleTime,
        backend_name: "x-handle-time".into(),
        location: ParamLocation::Head,
    }];
    let a = cp.create_api(a).await.unwrap();
    cp.publish(&a.id, Stage::RELEASE, None).await.unwrap();
    let seen = Recorder::default();
    let svc = GatewayLayer::new(cp.snapshot_handle())
        .with_authenticator(seen.clone())
        .standalone();

    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let req = Request::builder()
        .method("POST")
        .uri("/upload")
        .body(Slow(rx))
        .unwrap();
    let before = Timestamp::now();
    let call = tokio::spawn(tower::ServiceExt::oneshot(svc, req));
    // The body arrives well after the request head.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let body_sent = Timestamp::now();
    tx.send(Bytes::from_static(b"payload")).await.unwrap();
    drop(tx);
    let got = collect(call.await.unwrap().unwrap()).await;
    assert_eq!(got.status, 200, "{}", got.text());

    let now = *seen.0.lock().first().expect("authenticated once");
    assert!(
        now >= before,
        "now {now} is before the request was sent ({before})"
    );
    assert!(
        now < body_sent - Duration::from_millis(300),
        "AuthRequest.now {now} is when the body was read ({body_sent}), not when the request arrived"
    );
    let handle_time = got.json()["headers"]["x-handle-time"]
        .as_str()
        .expect("CaRequestHandleTime forwarded")
        .parse::<i64>()
        .unwrap();
    assert_eq!(
        handle_time,
        now.as_millisecond(),
        "CaRequestHandleTime and AuthRequest.now are the same arrival time"
    );
}
