//! Loopback helpers shared by the integration tests: upstreams, a gateway server, a client.
#![allow(dead_code, unreachable_pub)]

pub mod logs;
pub mod relay;
pub mod services;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use stagegate::proxy::{BoxError, GatewayBody};
use tokio::net::TcpListener;

/// An upstream on 127.0.0.1 that answers every request with JSON describing it:
/// `{"tag","method","path","query","headers":{..},"body_len"}`. Paths under `/sleep/{ms}` sleep first.
pub async fn upstream(tag: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| async move {
                        let (parts, body) = req.into_parts();
                        if let Some(ms) = parts.uri.path().strip_prefix("/sleep/") {
                            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0)))
                                .await;
                        }
                        // count the body without keeping it
                        let mut body = body;
                        let mut len = 0usize;
                        let mut text = Vec::new();
                        while let Some(frame) = body.frame().await {
                            if let Ok(data) = frame.map(|f| f.into_data())
                                && let Ok(d) = data
                            {
                                len += d.len();
                                if text.len() < 4096 {
                                    text.extend_from_slice(&d[..d.len().min(4096)]);
                                }
                            }
                        }
                        let headers: serde_json::Map<String, serde_json::Value> = parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
                            .collect();
                        let json = serde_json::json!({
                            "tag": tag,
                            "method": parts.method.as_str(),
                            "path": parts.uri.path(),
                            "query": parts.uri.query(),
                            "headers": headers,
                            "body_len": len,
                            "body": String::from_utf8_lossy(&text),
                        });
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .header("x-upstream", tag)
                                .body(Full::new(Bytes::from(json.to_string())))
                                .unwrap(),
                        )
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Serves any tower service on 127.0.0.1 and returns its address.
pub async fn serve<S>(svc: S) -> SocketAddr
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<GatewayBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let svc = svc.clone();
            tokio::spawn(async move {
                let svc = tower::ServiceExt::map_request(
                    svc,
                    move |mut req: Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(stagegate::ClientAddr(peer));
                        req
                    },
                );
                let hyper_svc = hyper_util::service::TowerToHyperService::new(svc);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper_svc)
                    .await;
            });
        }
    });
    addr
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A collected response.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn collect(
    res: Response<impl http_body::Body<Data = Bytes, Error = impl std::fmt::Debug>>,
) -> Got {
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Sends a request through a tower service with `oneshot`.
pub async fn oneshot<S, B, RB>(svc: S, req: Request<B>) -> Got
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Error: std::fmt::Debug,
    RB: http_body::Body<Data = Bytes>,
    RB::Error: std::fmt::Debug,
{
    let res = tower::ServiceExt::oneshot(svc, req).await.unwrap();
    collect(res).await
}

/// A control plane with one backend service of `kind` and one group.
pub struct Fx {
    pub cp: std::sync::Arc<stagegate::ControlPlane>,
    pub backend: stagegate::model::BackendService,
    pub group: stagegate::model::Group,
}

pub async fn fx(kind: stagegate::model::BackendKind) -> Fx {
    let cp = std::sync::Arc::new(
        stagegate::ControlPlane::open(stagegate::store::MemoryStore::new())
            .await
            .unwrap(),
    );
    let backend = cp
        .create_backend(stagegate::control::NewBackend::new("backendOne", kind))
        .await
        .unwrap();
    let group = cp
        .create_group(stagegate::control::NewGroup {
            name: "group_one".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    Fx { cp, backend, group }
}

impl Fx {
    /// Creates an anonymous API on the backend.
    pub async fn api(
        &self,
        name: &str,
        method: &str,
        path: &str,
        f: impl FnOnce(&mut stagegate::model::ApiDefinition),
    ) -> stagegate::model::ApiDefinition {
        let mut a = stagegate::model::ApiDefinition::new(
            self.group.id.clone(),
            name,
            method,
            path,
            self.backend.id.clone(),
        )
        .unwrap()
        .anonymous();
        f(&mut a);
        self.cp.create_api(a).await.unwrap()
    }

    pub async fn define(
        &self,
        stage: stagegate::model::Stage,
        def: stagegate::model::StageDefinition,
    ) {
        self.cp
            .set_stage_definition(&self.backend.id, stage, def)
            .await
            .unwrap();
    }

    /// Defines the (MOCK) backend in RELEASE to answer 200 with `body`.
    pub async fn define_mock(&self, body: &str) {
        self.define(
            stagegate::model::Stage::RELEASE,
            stagegate::model::StageDefinition::Mock(stagegate::model::MockDefinition {
                status: 200,
                headers: Default::default(),
                body: body.into(),
            }),
        )
        .await;
    }

    pub fn layer(&self) -> stagegate::GatewayLayer {
        stagegate::GatewayLayer::new(self.cp.snapshot_handle())
    }
}

/// A request with a body.
pub fn req(method: &str, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body.into()))
        .unwrap()
}

/// A port on 127.0.0.1 nobody listens on (bound, then released).
pub async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Reads until the server closes the connection; `None` if it is still open after `within`.
pub async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(got)
}

/// One call to an admin API `router` with the bearer `token` and a JSON body.
pub async fn admin_call(
    router: axum::Router,
    token: &str,
    method: &str,
    path: &str,
    body: impl Into<axum::body::Body>,
) -> Got {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    oneshot(router, req).await
}
