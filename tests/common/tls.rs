//! TLS on loopback for tests: certificates made with rcgen, a client that takes any server
//! certificate (it only checks the handshake's signatures) so that tests can look at which one
//! the server chose, and one request over the stream by the protocol ALPN agreed.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{Got, collect};

/// A self-signed certificate for `names` (PEM chain, PEM PKCS#8 key), valid from yesterday for
/// a year unless `validity` says otherwise (as `(not_before, not_after)` in days from now).
pub fn pem_pair(names: &[&str], validity: Option<(i64, i64)>) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    let (from, to) = validity.unwrap_or((-1, 365));
    let day = |d: i64| {
        let now = std::time::SystemTime::now();
        let secs = d.unsigned_abs() * 86_400;
        let t = if d < 0 {
            now - std::time::Duration::from_secs(secs)
        } else {
            now + std::time::Duration::from_secs(secs)
        };
        rcgen::date_time_ymd(1970, 1, 1)
            + std::time::Duration::from_secs(
                t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            )
    };
    params.not_before = day(from);
    params.not_after = day(to);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A certified key for `names`, and its certificate (to compare with what a server sent).
pub fn certified(names: &[&str]) -> (Arc<CertifiedKey>, CertificateDer<'static>) {
    let c = rcgen::generate_simple_self_signed(
        names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
    )
    .unwrap();
    let cert = c.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(c.signing_key.serialize_der().into());
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(vec![cert.clone()], key, &provider).unwrap();
    (Arc::new(certified), cert)
}

/// The first certificate of a PEM chain.
pub fn der_of(pem: &str) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Takes any certificate; checks the handshake's signatures with ring.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config offering `alpn` that takes any server certificate. Its session cache lets a
/// second connection with the same config resume.
pub fn client_config(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` sending `sni` as the server name (an IP address: no SNI).
pub async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
}

/// The certificate the server presented.
pub fn served(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// One GET of `path` for `host` over `stream`, by HTTP/2 when ALPN agreed on `h2`, else
/// HTTP/1.1; with the response's HTTP version.
pub async fn get(stream: TlsStream<TcpStream>, host: &str, path: &str) -> (Got, http::Version) {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get(format!("https://{host}{path}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        let version = res.version();
        (collect(res).await, version)
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(http::header::HOST, host)
            .body(Full::<Bytes>::default())
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        let version = res.version();
        (collect(res).await, version)
    }
}

/// Three mock APIs: `/https-only`, `/http-only`, `/both`, published in RELEASE.
pub async fn protocol_apis() -> super::Fx {
    let fx = super::fx(stagegate::model::BackendKind::Mock).await;
    fx.define_mock("served").await;
    for (name, path, protocols) in [
        (
            "httpsOnly",
            "/https-only",
            vec![stagegate::model::Protocol::Https],
        ),
        (
            "httpOnly",
            "/http-only",
            vec![stagegate::model::Protocol::Http],
        ),
        (
            "both",
            "/both",
            vec![
                stagegate::model::Protocol::Http,
                stagegate::model::Protocol::Https,
            ],
        ),
    ] {
        let api = fx
            .api(name, "GET", path, |a| a.request.protocols = protocols)
            .await;
        fx.cp
            .publish(&api.id, stagegate::model::Stage::RELEASE, None)
            .await
            .unwrap();
    }
    fx
}

/// Serves the gateway over `fx` with TLS from `tls`, or plain when `None`, on a loopback port.
/// The host app behind the layer answers a request that falls through with what it learnt of
/// the connection: `"{scheme} {server name or -} {alpn or -}"`, or `none`.
pub async fn serve_connection_echo(
    fx: &super::Fx,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> SocketAddr {
    use tower::Layer as _;
    let host_app = tower::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let text = match req.extensions().get::<stagegate::layer::ConnectionInfo>() {
            None => "none".to_owned(),
            Some(i) => format!(
                "{} {} {}",
                i.scheme(),
                i.server_name().unwrap_or("-"),
                i.alpn().map_or("-".into(), String::from_utf8_lossy)
            ),
        };
        Ok::<_, std::convert::Infallible>(http::Response::new(stagegate::proxy::GatewayBody::full(
            Bytes::from(text),
        )))
    });
    let gateway = fx.layer().layer(host_app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let make = move |_peer| gateway.clone();
        let forever = std::future::pending::<()>();
        match tls {
            Some(config) => {
                stagegate::serve::Server::new()
                    .serve_tls(listener, config, make, forever)
                    .await
            }
            None => {
                stagegate::serve::Server::new()
                    .serve(listener, make, forever)
                    .await
            }
        }
    });
    addr
}
