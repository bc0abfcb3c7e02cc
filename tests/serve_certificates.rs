//! `serve::Certificates` behind `serve::Server::serve_tls`, through real TLS handshakes on
//! loopback: SNI picks the certificate, an unknown name gets the default or a clean failure,
//! certificates change without a restart, ALPN gives HTTP/2, sessions resume, and HTTPS-only,
//! HTTP-only and dual-protocol APIs behave as declared on TLS and plain listeners.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::Fx;
use common::tls::{certified, client_config, connect, get, served};
use http::Request;
use stagegate::serve::Certificates;

/// Serves the gateway over `fx` (the host app behind it answers with the connection it
/// learnt) with TLS from `certs`, or plain when `None`.
async fn start(fx: &Fx, certs: Option<&Arc<Certificates>>) -> SocketAddr {
    let config = certs.map(|c| Arc::new(Certificates::server_config(c).unwrap()));
    common::tls::serve_connection_echo(fx, config).await
}

#[tokio::test]
async fn sni_picks_the_domain_certificate_and_unknown_or_no_name_gets_the_default() {
    let fx = common::tls::protocol_apis().await;
    let (default, default_der) = certified(&["gateway.test"]);
    let (api, api_der) = certified(&["api.example.com"]);
    let (wild, wild_der) = certified(&["*.apps.example.com"]);
    let certs = Arc::new(Certificates::new());
    certs.set_default(Some(default));
    certs.insert("api.example.com", api).unwrap();
    certs.insert("*.apps.example.com", wild).unwrap();
    let addr = start(&fx, Some(&certs)).await;
    let client = client_config(&[b"http/1.1"]);
    for (sni, expected) in [
        ("api.example.com", &api_der),
        ("API.Example.com", &api_der),
        ("one.apps.example.com", &wild_der),
        ("two.one.apps.example.com", &default_der),
        ("unknown.example.net", &default_der),
        // an IP address: the client sends no SNI
        ("127.0.0.1", &default_der),
    ] {
        let stream = connect(addr, sni, &client).await.unwrap();
        assert_eq!(&served(&stream), expected, "{sni}");
    }
    // the server name reaches the host app
    let stream = connect(addr, "api.example.com", &client).await.unwrap();
    let (got, _) = get(stream, "api.example.com", "/elsewhere").await;
    assert_eq!(got.text(), "https api.example.com http/1.1");
}

#[tokio::test]
async fn with_no_default_an_unknown_name_fails_cleanly_and_the_listener_goes_on() {
    let fx = common::tls::protocol_apis().await;
    let (api, api_der) = certified(&["api.example.com"]);
    let certs = Arc::new(Certificates::new());
    certs.insert("api.example.com", api).unwrap();
    let addr = start(&fx, Some(&certs)).await;
    let client = client_config(&[b"h2", b"http/1.1"]);
    let err = connect(addr, "unknown.example.net", &client)
        .await
        .expect_err("no certificate for that name");
    assert!(
        err.to_string().to_lowercase().contains("alert") || err.to_string().contains("handshake"),
        "{err}"
    );
    assert!(connect(addr, "127.0.0.1", &client).await.is_err());
    // the next good handshake is served
    let stream = connect(addr, "api.example.com", &client).await.unwrap();
    assert_eq!(served(&stream), api_der);
    let (got, _) = get(stream, "api.example.com", "/both").await;
    assert_eq!((got.status, got.text().as_str()), (200, "served"));
    // a default set while serving applies to the next handshake, no restart
    let (default, default_der) = certified(&["gateway.test"]);
    certs.set_default(Some(default));
    let stream = connect(addr, "unknown.example.net", &client).await.unwrap();
    assert_eq!(served(&stream), default_der);
    // and so does a domain's new certificate
    let (api2, api2_der) = certified(&["api.example.com"]);
    certs
        .replace_domains([("api.example.com".to_owned(), api2)])
        .unwrap();
    // (a new client: `client` would resume its session, which keeps the certificate it had)
    let fresh = client_config(&[b"h2", b"http/1.1"]);
    let stream = connect(addr, "api.example.com", &fresh).await.unwrap();
    assert_eq!(served(&stream), api2_der);
}

#[tokio::test]
async fn alpn_agrees_on_h2_and_the_request_is_served_over_http2() {
    let fx = common::tls::protocol_apis().await;
    let (default, _) = certified(&["localhost"]);
    let certs = Arc::new(Certificates::new());
    certs.set_default(Some(default));
    let addr = start(&fx, Some(&certs)).await;
    let stream = connect(addr, "localhost", &client_config(&[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (got, version) = get(stream, "localhost", "/elsewhere").await;
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!(got.text(), "https localhost h2");
    // a client offering only HTTP/1.1 gets it
    let stream = connect(addr, "localhost", &client_config(&[b"http/1.1"]))
        .await
        .unwrap();
    let (got, version) = get(stream, "localhost", "/both").await;
    assert_eq!(
        (version, got.text().as_str()),
        (http::Version::HTTP_11, "served")
    );
}

#[tokio::test]
async fn a_second_connection_resumes_the_session() {
    let fx = common::tls::protocol_apis().await;
    let (default, _) = certified(&["localhost"]);
    let certs = Arc::new(Certificates::new());
    certs.set_default(Some(default));
    let addr = start(&fx, Some(&certs)).await;
    let client = client_config(&[b"http/1.1"]);
    let first = connect(addr, "localhost", &client).await.unwrap();
    assert_eq!(
        first.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    // TLS 1.3 tickets come after the handshake: a request makes sure the client has read them
    let (got, _) = get(first, "localhost", "/both").await;
    assert_eq!(got.status, 200);
    let second = connect(addr, "localhost", &client).await.unwrap();
    assert_eq!(
        second.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
}

#[tokio::test]
async fn https_only_http_only_and_dual_apis_behave_as_declared_on_each_listener() {
    let fx = common::tls::protocol_apis().await;
    let (default, _) = certified(&["localhost"]);
    let certs = Arc::new(Certificates::new());
    certs.set_default(Some(default));
    let tls = start(&fx, Some(&certs)).await;
    let plain = start(&fx, None).await;
    let client = common::client();
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let config = client_config(&[alpn]);
        for (path, status, code) in [
            ("/https-only", 200, None),
            ("/both", 200, None),
            ("/http-only", 403, Some("I403PT")),
        ] {
            let stream = connect(tls, "localhost", &config).await.unwrap();
            let (got, _) = get(stream, "localhost", path).await;
            assert_eq!(got.status, status, "TLS {path}");
            assert_eq!(got.header("x-ca-error-code"), code, "TLS {path}");
        }
    }
    for (path, status, code) in [
        ("/https-only", 403, Some("I403PT")),
        ("/both", 200, None),
        ("/http-only", 200, None),
    ] {
        let req = Request::get(format!("http://{plain}{path}"))
            .body(http_body_util::Full::default())
            .unwrap();
        let got = common::collect(client.request(req).await.unwrap()).await;
        assert_eq!(got.status, status, "plain {path}");
        assert_eq!(got.header("x-ca-error-code"), code, "plain {path}");
        if code.is_some() {
            assert_eq!(
                got.header("x-ca-error-message"),
                Some("Invalid protocol HTTP unsupported")
            );
        }
    }
}
