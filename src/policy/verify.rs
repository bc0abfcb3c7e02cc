//! The backend side of the backend signature: a tower layer a Rust backend mounts to accept
//! only requests the gateway signed.
//!
//! [`VerifyBackendSignatureLayer`] buffers the body (up to a limit, 8 MiB by default), checks
//! `X-Ca-Proxy-Signature` against the secret of the key named in
//! `X-Ca-Proxy-Signature-Secret-Key` (compared in constant time), and passes the request on
//! with its body as [`Full<Bytes>`](http_body_util::Full). A request without a valid signature
//! is answered 401 and never reaches the inner service; a body over the limit, 413.
//!
//! # Examples
//!
//! ```
//! use stagegate::policy::{BackendSignature, VerifyBackendSignatureLayer};
//! use axum::{Router, routing::get};
//! let keys = [BackendSignature { key: "DemoKey1".into(), secret: "DemoSecret1".into() }];
//! let backend: Router = Router::new()
//!     .route("/users", get(|| async { "signed by the gateway" }))
//!     .layer(VerifyBackendSignatureLayer::new(keys));
//! # let _ = backend;
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::Full;
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use super::backend_sign::{
    BackendSignature, SignedRequest, X_CA_PROXY_SIGNATURE, X_CA_PROXY_SIGNATURE_SECRET_KEY,
    backend_string_to_sign, hmac_b64,
};
use crate::proxy::{BodyError, BoxError, GatewayBody, collect_limited};

/// The layer of [`VerifyBackendSignature`]: the keys the backend accepts.
#[derive(Clone)]
pub struct VerifyBackendSignatureLayer {
    keys: Arc<[BackendSignature]>,
    body_limit: usize,
}

impl fmt::Debug for VerifyBackendSignatureLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyBackendSignatureLayer")
            .field(
                "keys",
                &self.keys.iter().map(|k| &k.key).collect::<Vec<_>>(),
            )
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

impl VerifyBackendSignatureLayer {
    /// Accepts requests signed with any of `keys` (several during a rotation).
    #[must_use]
    pub fn new(keys: impl IntoIterator<Item = BackendSignature>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
            body_limit: crate::layer::DEFAULT_BODY_LIMIT,
        }
    }

    /// The largest body buffered for the check (413 beyond); default 8 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::policy::VerifyBackendSignatureLayer;
    /// let layer = VerifyBackendSignatureLayer::new([]).with_body_limit(1 << 20);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

impl<S> Layer<S> for VerifyBackendSignatureLayer {
    type Service = VerifyBackendSignature<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyBackendSignature {
            inner,
            layer: self.clone(),
        }
    }
}

/// Passes on only requests the gateway signed (see [`VerifyBackendSignatureLayer`]).
#[derive(Clone, Debug)]
pub struct VerifyBackendSignature<S> {
    inner: S,
    layer: VerifyBackendSignatureLayer,
}

impl<S> VerifyBackendSignature<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn refuse(status: StatusCode, text: &'static str) -> Response<GatewayBody> {
    let mut res = Response::new(GatewayBody::full(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

impl VerifyBackendSignatureLayer {
    /// Whether the request's signature is valid.
    fn verify(&self, parts: &http::request::Parts, body: &[u8]) -> bool {
        let (Some(sig), Some(key)) = (
            parts.headers.get(X_CA_PROXY_SIGNATURE),
            parts.headers.get(X_CA_PROXY_SIGNATURE_SECRET_KEY),
        ) else {
            return false;
        };
        let Some(secret) = self
            .keys
            .iter()
            .find(|k| k.key.as_bytes() == key.as_bytes())
        else {
            return false;
        };
        let sts = backend_string_to_sign(&SignedRequest {
            method: &parts.method,
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body: Some(body),
        });
        let expected = hmac_b64(&secret.secret, &sts);
        expected.as_bytes().ct_eq(sig.as_bytes()).into()
    }
}

impl<S, B, ResBody> Service<Request<B>> for VerifyBackendSignature<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = S::Error;
    type Future = crate::layer::ResponseFuture<S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut inner = self.inner.clone();
        std::mem::swap(&mut inner, &mut self.inner);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match collect_limited(body, layer.body_limit).await {
                Ok(b) => b,
                Err(BodyError::TooLarge { .. }) => {
                    return Ok(refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large",
                    ));
                }
                Err(_) => return Ok(refuse(StatusCode::BAD_REQUEST, "unreadable request body")),
            };
            if !layer.verify(&parts, &body) {
                return Ok(refuse(
                    StatusCode::UNAUTHORIZED,
                    "missing or invalid X-Ca-Proxy-Signature",
                ));
            }
            std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
            let res = inner
                .call(Request::from_parts(parts, Full::new(body)))
                .await?;
            Ok(res.map(GatewayBody::new))
        })
    }
}
