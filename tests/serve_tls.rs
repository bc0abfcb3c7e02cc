//! How the layer learns the scheme: `serve::Server::serve_tls` and `serve` insert a
//! `ConnectionInfo` into every request, and the HTTPS-only / HTTP-only checks go by it, through
//! a real TLS handshake on loopback.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::collect;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A server config for `localhost` offering h2 and http/1.1, and a client config trusting it.
fn tls_configs() -> (Arc<rustls::ServerConfig>, rustls::ClientConfig) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), client)
}

#[tokio::test]
async fn over_tls_https_only_and_dual_apis_serve_and_http_only_refuses() {
    let fx = common::tls::protocol_apis().await;
    let (server, client_config) = tls_configs();
    let addr = common::tls::serve_connection_echo(&fx, Some(server)).await;
    // offers h2 and http/1.1 by ALPN: the server picks h2
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let get = |path: &str| {
        let req = Request::get(format!("https://localhost:{}{path}", addr.port()))
            .body(Full::default())
            .unwrap();
        let client = client.clone();
        async move { collect(client.request(req).await.unwrap()).await }
    };
    let got = get("/https-only").await;
    assert_eq!((got.status, got.text().as_str()), (200, "served"));
    let got = get("/both").await;
    assert_eq!((got.status, got.text().as_str()), (200, "served"));
    let got = get("/http-only").await;
    assert_eq!(got.status, 403);
    assert_eq!(got.header("x-ca-error-code"), Some("I403PT"));
    assert_eq!(
        got.header("x-ca-error-message"),
        Some("Invalid protocol HTTPS unsupported")
    );
    // the host app sees the connection: TLS, the SNI the client sent, the protocol agreed
    let got = get("/elsewhere").await;
    assert_eq!(got.text(), "https localhost h2");
}

#[tokio::test]
async fn over_plain_tcp_https_only_refuses_even_an_https_target() {
    let fx = common::tls::protocol_apis().await;
    let addr = common::tls::serve_connection_echo(&fx, None).await;
    let raw = |target: &str| {
        let head = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(head.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    let got = raw("/http-only").await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let got = raw("/both").await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let got = raw("/https-only").await;
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("x-ca-error-code: i403pt"),
        "{got}"
    );
    // a client claiming https in an absolute-form target is still on plain TCP
    let got = raw("https://localhost/https-only").await;
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    let got = raw("/elsewhere").await;
    assert!(got.ends_with("http - -"), "{got}");
}

#[tokio::test]
async fn a_failed_handshake_closes_the_connection_and_the_server_goes_on() {
    let fx = common::tls::protocol_apis().await;
    let (server, client_config) = tls_configs();
    let addr = common::tls::serve_connection_echo(&fx, Some(server)).await;
    // plain HTTP to the TLS port: the handshake fails, the connection closes
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /both HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    assert!(!String::from_utf8_lossy(&out).contains("served"));
    // and the next TLS client is served
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config)
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let req = Request::get(format!("https://localhost:{}/both", addr.port()))
        .body(Full::default())
        .unwrap();
    let got = collect(client.request(req).await.unwrap()).await;
    assert_eq!(got.status, 200);
}
