//! `HttpForwarder` against loopback upstreams (127.0.0.1 only), through the public API.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use stagegate::proxy::{
    ForwardContext, GatewayBody, HttpForwarder, ProxyError, TargetError, UpstreamTarget,
};
use tokio::net::TcpListener;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A running loopback upstream; its accept loop ends with the test's runtime.
struct Upstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    fn target(&self, scheme: &str) -> UpstreamTarget {
        UpstreamTarget::parse(&format!("{scheme}://{}", self.addr)).expect("valid target")
    }
}

/// Serves `handler` on 127.0.0.1:0 with HTTP/1.1 and HTTP/2 (TLS when `tls` is given).
async fn spawn_upstream<F, Fut>(tls: Option<tokio_rustls::TlsAcceptor>, handler: F) -> Upstream
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<GatewayBody>> + Send + 'static,
{
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = tower::service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let service = TowerToHyperService::new(service);
                let builder = auto::Builder::new(TokioExecutor::new());
                // Errors here are the connection closing under test conditions.
                let _ = match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(stream) => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Err(_) => return,
                    },
                    None => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                };
            });
        }
    });
    Upstream { addr, connections }
}

/// Echoes what the upstream received: method, URI, version as headers; request headers as
/// `name: value` lines in the body.
async fn echo(req: Request<Incoming>) -> Response<GatewayBody> {
    let mut lines = String::new();
    for (name, value) in req.headers() {
        lines.push_str(&format!(
            "{name}: {}\n",
            value.to_str().unwrap_or("<binary>")
        ));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("x-echo-method", req.method().as_str())
        .header("x-echo-uri", req.uri().to_string())
        .header("x-echo-version", format!("{:?}", req.version()))
        .body(GatewayBody::full(lines))
        .expect("response")
}

/// Parses the `name: value` lines of [`echo`] back into a map.
async fn seen_headers(res: Response<GatewayBody>) -> HeaderMap {
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    let mut map = HeaderMap::new();
    for line in text.lines() {
        let (name, value) = line.split_once(": ").expect("echo line");
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    map
}

fn ctx() -> ForwardContext {
    ForwardContext::new(Duration::from_secs(10))
}

/// `GET path` through `forwarder` to `target`, which must answer.
async fn get(
    forwarder: &HttpForwarder,
    target: &UpstreamTarget,
    path: &str,
) -> Response<GatewayBody> {
    let req = Request::get(path)
        .body(GatewayBody::empty())
        .expect("request");
    forwarder
        .forward(req, target, &ctx())
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e:?}"))
}

#[tokio::test]
async fn get_and_post_pass_through_with_headers_and_status() {
    let upstream = spawn_upstream(None, |req: Request<Incoming>| async move {
        let method = req.method().clone();
        let custom = req.headers().get("x-custom").cloned();
        let body = req.into_body().collect().await.expect("body").to_bytes();
        let mut res = Response::builder()
            .status(if method == http::Method::POST {
                201
            } else {
                200
            })
            .header("x-method", method.as_str())
            .header("set-cookie", "a=1")
            .body(GatewayBody::full(body))
            .expect("response");
        if let Some(custom) = custom {
            res.headers_mut().insert("x-custom-back", custom);
        }
        res
    })
    .await;
    let forwarder = HttpForwarder::new();
    let target = upstream.target("http");

    let req = Request::get("/v1/items?id=7")
        .header("x-custom", "abc")
        .body(GatewayBody::empty())
        .expect("request");
    let res = forwarder.forward(req, &target, &ctx()).await.expect("get");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-method"], "GET");
    assert_eq!(res.headers()["x-custom-back"], "abc");
    assert_eq!(res.headers()["set-cookie"], "a=1");

    let req = Request::post("/v1/items")
        .header("content-type", "application/json")
        .body(GatewayBody::full(r#"{"name":"x"}"#))
        .expect("request");
    let res = forwarder.forward(req, &target, &ctx()).await.expect("post");
    assert_eq!(res.status(), StatusCode::CREATED);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], br#"{"name":"x"}"#);
}

#[tokio::test]
async fn backend_path_query_and_host_come_from_request_and_target() {
    let upstream = spawn_upstream(None, echo).await;
    let target = upstream.target("http");
    let req = Request::get("http://gw.example.com/backend/p?q=1&r=%20")
        .header("host", "gw.example.com")
        .body(GatewayBody::empty())
        .expect("request");
    let res = HttpForwarder::new()
        .forward(req, &target, &ctx())
        .await
        .expect("forward");
    assert_eq!(res.headers()["x-echo-uri"], "/backend/p?q=1&r=%20");
    assert_eq!(res.headers()["x-echo-version"], "HTTP/1.1");
    let seen = seen_headers(res).await;
    assert_eq!(seen["host"], upstream.addr.to_string().as_str());
    assert_eq!(seen["x-forwarded-host"], "gw.example.com");
}

#[tokio::test]
async fn host_override_replaces_host() {
    let upstream = spawn_upstream(None, echo).await;
    let target = upstream
        .target("http")
        .with_host_override(HeaderValue::from_static("internal.svc"));
    let req = Request::get("/")
        .header("host", "gw.example.com")
        .body(GatewayBody::empty())
        .expect("request");
    let res = HttpForwarder::new()
        .forward(req, &target, &ctx())
        .await
        .expect("forward");
    let seen = seen_headers(res).await;
    assert_eq!(seen["host"], "internal.svc");
    assert_eq!(seen.get_all("host").iter().count(), 1);
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let upstream = spawn_upstream(None, |req: Request<Incoming>| async move {
        let mut res = echo(req).await;
        let h = res.headers_mut();
        h.insert("connection", HeaderValue::from_static("x-upstream-private"));
        h.insert("x-upstream-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert("x-end-to-end", HeaderValue::from_static("kept"));
        res
    })
    .await;
    let req = Request::get("/")
        .header("connection", "keep-alive, X-Client-Private")
        .header("x-client-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("upgrade", "websocket")
        .header("x-end-to-end", "kept")
        .body(GatewayBody::empty())
        .expect("request");
    let res = HttpForwarder::new()
        .forward(req, &upstream.target("http"), &ctx())
        .await
        .expect("forward");

    for name in [
        "connection",
        "x-upstream-private",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
    ] {
        assert!(!res.headers().contains_key(name), "response kept {name}");
    }
    assert_eq!(res.headers()["x-end-to-end"], "kept");

    let seen = seen_headers(res).await;
    for name in [
        "x-client-private",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(!seen.contains_key(name), "upstream saw {name}");
    }
    // hyper's client may add its own `connection` only for its own framing; ours is gone.
    assert!(
        seen.get("connection")
            .is_none_or(|v| !v.to_str().unwrap_or("").contains("X-Client-Private"))
    );
    assert_eq!(seen["x-end-to-end"], "kept");
}

#[tokio::test]
async fn forwarded_headers_are_added_and_appended() {
    let upstream = spawn_upstream(None, echo).await;
    let req = Request::get("/")
        .header("host", "api.example.com")
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-forwarded-proto", "gopher")
        .body(GatewayBody::empty())
        .expect("request");
    let ctx = ctx()
        .with_client_addr(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)))
        .with_original_scheme(http::uri::Scheme::HTTPS);
    let res = HttpForwarder::new()
        .forward(req, &upstream.target("http"), &ctx)
        .await
        .expect("forward");
    let seen = seen_headers(res).await;
    assert_eq!(seen["x-forwarded-for"], "198.51.100.1, 203.0.113.9");
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(seen["x-forwarded-host"], "api.example.com");

    // Without any prior list the client address starts one.
    let req = Request::get("/")
        .body(GatewayBody::empty())
        .expect("request");
    let ctx = ForwardContext::new(Duration::from_secs(5))
        .with_client_addr(LOCALHOST)
        .with_original_host(HeaderValue::from_static("orig.example.com"));
    let res = HttpForwarder::new()
        .forward(req, &upstream.target("http"), &ctx)
        .await
        .expect("forward");
    let seen = seen_headers(res).await;
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-host"], "orig.example.com");
    assert!(!seen.contains_key("x-forwarded-proto"));
}

/// Peak resident set size of this process in KiB (Linux), if readable.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 1600; // 100 MiB

fn chunked_body(chunks: usize) -> GatewayBody {
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let frames =
        stream::iter((0..chunks).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))));
    GatewayBody::new(StreamBody::new(frames))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_stream_both_ways_with_bounded_memory() {
    let upstream = spawn_upstream(None, |req: Request<Incoming>| async move {
        // Count the request body frame by frame, never holding more than one frame.
        let mut body = req.into_body();
        let mut received: u64 = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("request frame").into_data() {
                received += data.len() as u64;
            }
        }
        Response::builder()
            .header("x-received", received.to_string())
            .body(chunked_body(CHUNKS))
            .expect("response")
    })
    .await;
    let before = peak_rss_kib();
    let started = Instant::now();

    let req = Request::post("/upload")
        .body(chunked_body(CHUNKS))
        .expect("request");
    let ctx = ForwardContext::new(Duration::from_secs(120));
    let res = HttpForwarder::new()
        .forward(req, &upstream.target("http"), &ctx)
        .await
        .expect("forward");
    let total = (CHUNK * CHUNKS) as u64;
    assert_eq!(res.headers()["x-received"], total.to_string().as_str());

    let mut body = res.into_body();
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("response frame").into_data() {
            received += data.len() as u64;
        }
    }
    assert_eq!(received, total);

    let elapsed = started.elapsed();
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        let grown_mib = after.saturating_sub(before) / 1024;
        println!("200 MiB streamed in {elapsed:?}; peak RSS grew by {grown_mib} MiB");
        // Buffering either body would need at least 100 MiB.
        assert!(grown_mib < 48, "peak RSS grew by {grown_mib} MiB");
    }
}

#[tokio::test]
async fn slow_upstream_times_out_with_d504to() {
    let upstream = spawn_upstream(None, |_req: Request<Incoming>| async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Response::new(GatewayBody::empty())
    })
    .await;
    let started = Instant::now();
    let req = Request::get("/slow")
        .body(GatewayBody::empty())
        .expect("request");
    let err = HttpForwarder::new()
        .forward(
            req,
            &upstream.target("http"),
            &ForwardContext::new(Duration::from_millis(200)),
        )
        .await
        .expect_err("must time out");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, ProxyError::Timeout { .. }));
    assert_eq!(err.code(), "D504TO");
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        err.wire_message()
            .starts_with("Backend service request timeout")
    );
}

#[tokio::test]
async fn stalled_response_body_ends_with_an_error_at_the_deadline() {
    let upstream = spawn_upstream(None, |_req: Request<Incoming>| async move {
        // Headers and one frame now, then nothing for longer than the timeout.
        let frames = stream::once(async {
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"partial")))
        })
        .chain(stream::once(async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(Frame::data(Bytes::from_static(b"late")))
        }));
        Response::new(GatewayBody::new(StreamBody::new(frames)))
    })
    .await;
    let started = Instant::now();
    let req = Request::get("/")
        .body(GatewayBody::empty())
        .expect("request");
    let res = HttpForwarder::new()
        .forward(
            req,
            &upstream.target("http"),
            &ForwardContext::new(Duration::from_millis(300)),
        )
        .await
        .expect("headers arrive in time");
    let err = res.into_body().collect().await.expect_err("body is cut");
    assert!(started.elapsed() < Duration::from_secs(2));
    let body_err = err.downcast_ref::<stagegate::proxy::BodyError>();
    assert!(
        matches!(body_err, Some(stagegate::proxy::BodyError::Timeout)),
        "{err:?}"
    );
}

use futures_util::StreamExt as _;

#[tokio::test]
async fn refused_connection_is_d504co() {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let target = UpstreamTarget::parse(&format!("http://{addr}")).expect("target");
    let req = Request::get("/")
        .body(GatewayBody::empty())
        .expect("request");
    let err = HttpForwarder::new()
        .forward(req, &target, &ctx())
        .await
        .expect_err("nothing listens");
    assert_eq!(err.code(), "D504CO", "{err:?}");
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        err.wire_message(),
        "Backend service connect failed 'Connection refused'"
    );
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let upstream = spawn_upstream(None, echo).await;
    let forwarder = HttpForwarder::new();
    let target = upstream.target("http");
    for i in 0..5 {
        let req = Request::get(format!("/n/{i}"))
            .body(GatewayBody::empty())
            .expect("request");
        let res = forwarder
            .clone()
            .forward(req, &target, &ctx())
            .await
            .expect("forward");
        res.into_body().collect().await.expect("body");
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}

/// A self-signed certificate for 127.0.0.1, a TLS acceptor offering `alpn`, and a forwarder
/// that trusts the certificate.
fn tls_pair(alpn: &[&[u8]]) -> (tokio_rustls::TlsAcceptor, HttpForwarder) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let forwarder = HttpForwarder::builder().with_tls_config(client).build();
    (tokio_rustls::TlsAcceptor::from(Arc::new(server)), forwarder)
}

#[tokio::test]
async fn https_with_private_ca_negotiates_http2_by_alpn() {
    let (acceptor, forwarder) = tls_pair(&[b"h2", b"http/1.1"]);
    let upstream = spawn_upstream(Some(acceptor), echo).await;
    let target = upstream
        .target("https")
        .with_host_override(HeaderValue::from_static("tls.internal"));
    for i in 0..3 {
        let req = Request::post(format!("/secure/{i}?x=1"))
            .body(GatewayBody::full("payload"))
            .expect("request");
        let res = forwarder
            .forward(req, &target, &ctx())
            .await
            .expect("forward");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-echo-version"], "HTTP/2.0");
        assert_eq!(
            res.headers()["x-echo-uri"]
                .to_str()
                .ok()
                .map(|u| u.ends_with(&format!("/secure/{i}?x=1"))),
            Some(true)
        );
        let seen = seen_headers(res).await;
        assert_eq!(seen["host"], "tls.internal");
    }
    // HTTP/2 multiplexes every request over one connection.
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn https_falls_back_to_http1_when_the_server_has_no_h2() {
    let (acceptor, forwarder) = tls_pair(&[b"http/1.1"]);
    let upstream = spawn_upstream(Some(acceptor), echo).await;
    let req = Request::get("/")
        .body(GatewayBody::empty())
        .expect("request");
    let res = forwarder
        .forward(req, &upstream.target("https"), &ctx())
        .await
        .expect("forward");
    assert_eq!(res.headers()["x-echo-version"], "HTTP/1.1");
}

#[tokio::test]
async fn untrusted_certificate_is_a_connect_failure() {
    let (acceptor, _trusting) = tls_pair(&[b"h2", b"http/1.1"]);
    let upstream = spawn_upstream(Some(acceptor), echo).await;
    let req = Request::get("/")
        .body(GatewayBody::empty())
        .expect("request");
    // The default forwarder trusts only public roots.
    let err = HttpForwarder::new()
        .forward(req, &upstream.target("https"), &ctx())
        .await
        .expect_err("self-signed is not trusted");
    assert_eq!(err.code(), "D504CO", "{err:?}");
    assert!(
        err.wire_message()
            .starts_with("Backend service connect failed 'TLS handshake failed"),
        "{err:?}"
    );
}

#[test]
fn malformed_targets_are_rejected() {
    assert!(matches!(
        UpstreamTarget::parse("http://"),
        Err(TargetError::InvalidUri(_) | TargetError::MissingHost)
    ));
    assert!(matches!(
        UpstreamTarget::parse("http://127.0.0.1:8080/base"),
        Err(TargetError::UnexpectedPath { .. })
    ));
    assert!(matches!(
        UpstreamTarget::parse("ftp://127.0.0.1"),
        Err(TargetError::UnsupportedScheme { .. })
    ));
    assert!(matches!(
        UpstreamTarget::parse("127.0.0.1:8080"),
        Err(TargetError::MissingScheme | TargetError::InvalidUri(_))
    ));
    assert!(UpstreamTarget::parse("not a url at all").is_err());
    assert!(UpstreamTarget::parse("").is_err());
    let err = ProxyError::from(TargetError::MissingHost);
    assert_eq!(err.code(), "X500ER");
}

#[tokio::test]
async fn request_body_over_a_limit_is_i413rl() {
    let upstream = spawn_upstream(None, |req: Request<Incoming>| async move {
        // Read what arrives; the stream is cut when the gateway's limit trips.
        let _ = req.into_body().collect().await;
        Response::new(GatewayBody::empty())
    })
    .await;
    let limited = http_body_util::Limited::new(chunked_body(64), 1024 * 1024);
    let req = Request::post("/upload")
        .body(GatewayBody::new(limited))
        .expect("request");
    let err = HttpForwarder::new()
        .forward(req, &upstream.target("http"), &ctx())
        .await
        .expect_err("limit trips while streaming");
    assert_eq!(err.code(), "I413RL", "{err:?}");
    assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A backend that answers one request per connection and then closes it, without announcing
/// it (`Connection: close`): every pooled connection goes stale.
#[tokio::test]
async fn connections_the_backend_closed_while_idle_are_not_fatal() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // Closed right after the response, keep-alive notwithstanding.
            });
        }
    });
    let target = UpstreamTarget::parse(&format!("http://{addr}")).expect("target");
    let forwarder = HttpForwarder::new();
    for i in 0..5 {
        let res = get(&forwarder, &target, &format!("/{i}")).await;
        let body = res.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"ok");
        // Let the close reach the client half the time, so both the stale-at-checkout and the
        // refused-request paths are taken.
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn pool_max_idle_zero_opens_a_connection_per_request() {
    let upstream = spawn_upstream(None, echo).await;
    let forwarder = HttpForwarder::builder()
        .with_pool_max_idle_per_host(0)
        .build();
    let target = upstream.target("http");
    for _ in 0..3 {
        let res = get(&forwarder, &target, "/").await;
        res.into_body().collect().await.expect("body");
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn concurrent_requests_share_one_http2_connection_after_the_first() {
    let (acceptor, forwarder) = tls_pair(&[b"h2", b"http/1.1"]);
    let upstream = spawn_upstream(Some(acceptor), echo).await;
    let target = upstream.target("https");
    get(&forwarder, &target, "/first").await;
    let requests = (0..8).map(|i| {
        let forwarder = forwarder.clone();
        let target = target.clone();
        async move {
            let res = get(&forwarder, &target, &format!("/c/{i}")).await;
            assert_eq!(res.headers()["x-echo-version"], "HTTP/2.0");
            // The h2 request carries `:authority`, not a `Host` header of ours.
            let seen = seen_headers(res).await;
            assert!(
                seen.get("host")
                    .is_none_or(|h| h == upstream.addr.to_string().as_str())
            );
        }
    });
    futures_util::future::join_all(requests).await;
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}

/// An upstream answering with one header of `size` bytes.
async fn big_header_upstream(tls: Option<tokio_rustls::TlsAcceptor>, size: usize) -> Upstream {
    spawn_upstream(tls, move |_req| async move {
        Response::builder()
            .header("x-big", "a".repeat(size))
            .body(GatewayBody::full("ok"))
            .expect("response")
    })
    .await
}

#[tokio::test]
async fn a_response_header_over_the_limit_is_d502_over_http2_and_http1() {
    // HTTP/2: hyper's own limit was 16 KiB, and going over it a connection error (`N502RE`)
    for (size, over) in [(20 << 10, false), (100 << 10, true), (1 << 20, true)] {
        let (acceptor, forwarder) = tls_pair(&[b"h2", b"http/1.1"]);
        let upstream = big_header_upstream(Some(acceptor), size).await;
        let req = Request::get("/")
            .body(GatewayBody::empty())
            .expect("request");
        let res = forwarder
            .forward(req, &upstream.target("https"), &ctx())
            .await;
        match (res, over) {
            (Ok(res), false) => {
                assert_eq!(res.version(), http::Version::HTTP_11);
                assert_eq!(res.headers()["x-big"].len(), size);
            }
            (Err(e), true) => {
                assert_eq!(e.code(), "D502FC", "{size}: {e:?}");
                assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
            }
            (res, _) => panic!("{size} bytes over h2: {:?}", res.map(|r| r.status())),
        }
    }
    // HTTP/1.1, with a limit of its own
    let forwarder = HttpForwarder::builder()
        .with_max_response_header_bytes(16 * 1024)
        .build();
    for (size, over) in [(10 << 10, false), (20 << 10, true)] {
        let upstream = big_header_upstream(None, size).await;
        let req = Request::get("/")
            .body(GatewayBody::empty())
            .expect("request");
        let res = forwarder
            .forward(req, &upstream.target("http"), &ctx())
            .await;
        match (res, over) {
            (Ok(res), false) => assert_eq!(res.status(), StatusCode::OK),
            (Err(e @ ProxyError::ResponseHeaderTooLarge { .. }), true) => {
                assert_eq!(e.code(), "D502FC");
                assert_eq!(
                    e.wire_message(),
                    "Backend service response header too large"
                );
            }
            (res, _) => panic!("{size} bytes over h1: {:?}", res.map(|r| r.status())),
        }
    }
}
