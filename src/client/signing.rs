//! [`SigningLayer`] and [`SigningService`]: sign every request on its way to an HTTP client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::Body;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use tower_layer::Layer;
use tower_service::Service;

use super::ClientError;
use crate::auth::Signer;
use crate::proxy::BoxError;

/// The largest request body a [`SigningService`] reads to sign by default: 8 MiB, the
/// gateway's own default body limit.
pub const DEFAULT_REQUEST_LIMIT: usize = 8 * 1024 * 1024;

/// A tower [`Layer`] that signs every request for an app before the inner HTTP client sends
/// it (see the [module docs](super) for the headers).
///
/// The body is read (up to a limit) to compute `Content-MD5` or sign a form, then sent as
/// [`Full<Bytes>`]; a timestamp and a random nonce are taken per request, so a retried
/// request is signed afresh.
///
/// # Examples
///
/// With hyper-util's client:
///
/// ```no_run
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use stagegate::auth::Signer;
/// use stagegate::client::SigningLayer;
/// use tower::{Layer as _, ServiceExt as _};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let http = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
/// let signer = Signer::new("203753385", "SECRET_abc123")?;
/// let client = SigningLayer::new(signer).layer(http);
/// let req = http::Request::post("http://127.0.0.1:8080/users")
///     .header("content-type", "application/json")
///     .body(Full::new(bytes::Bytes::from_static(br#"{"name":"alice"}"#)))?;
/// let res = client.oneshot(req).await?;
/// # let _ = res;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SigningLayer {
    signer: Arc<Signer>,
    limit: usize,
}

impl SigningLayer {
    /// A layer signing with `signer`, reading request bodies up to [`DEFAULT_REQUEST_LIMIT`].
    ///
    /// # Examples
    ///
    /// ```
    /// let signer = stagegate::auth::Signer::new("203753385", "SECRET_abc123").unwrap();
    /// let layer = stagegate::client::SigningLayer::new(signer).with_request_limit(1 << 20);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn new(signer: Signer) -> Self {
        Self {
            signer: Arc::new(signer),
            limit: DEFAULT_REQUEST_LIMIT,
        }
    }

    /// The largest request body read to sign; a larger one is refused with
    /// [`ClientError::RequestTooLarge`] before anything is sent.
    #[must_use]
    pub fn with_request_limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }
}

impl<S> Layer<S> for SigningLayer {
    type Service = SigningService<S>;

    fn layer(&self, inner: S) -> SigningService<S> {
        SigningService {
            inner,
            signer: Arc::clone(&self.signer),
            limit: self.limit,
        }
    }
}

/// The service of [`SigningLayer`]: signs each request, then calls `S` with it.
///
/// # Examples
///
/// ```
/// use stagegate::auth::Signer;
/// use stagegate::client::SigningService;
/// use tower::ServiceExt as _;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // An inner "client" that returns the headers it was given.
/// let inner = tower::service_fn(|req: http::Request<http_body_util::Full<bytes::Bytes>>| async move {
///     Ok::<_, std::convert::Infallible>(req.headers().clone())
/// });
/// let svc = SigningService::new(inner, Signer::new("203753385", "SECRET_abc123").unwrap());
/// let req = http::Request::get("http://api.example.com/hello").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
/// let headers = svc.oneshot(req).await.unwrap();
/// assert_eq!(headers["x-ca-key"], "203753385");
/// assert!(headers.contains_key("x-ca-signature"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct SigningService<S> {
    inner: S,
    signer: Arc<Signer>,
    limit: usize,
}

impl<S> SigningService<S> {
    /// Wraps `inner`, signing with `signer` (the same as `SigningLayer::new(signer).layer(inner)`).
    #[must_use]
    pub fn new(inner: S, signer: Signer) -> Self {
        SigningLayer::new(signer).layer(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The future of [`SigningService::call`].
pub(crate) type SigningFuture<R> = Pin<Box<dyn Future<Output = Result<R, ClientError>> + Send>>;

impl<S, B> Service<Request<B>> for SigningService<S>
where
    S: Service<Request<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = ClientError;
    type Future = SigningFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| ClientError::Send(e.into()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let signer = Arc::clone(&self.signer);
        let limit = self.limit;
        Box::pin(async move {
            let req = sign(&signer, req, limit).await?;
            inner
                .call(req)
                .await
                .map_err(|e| ClientError::Send(e.into()))
        })
    }
}

/// Reads the body (up to `limit` bytes) and signs the request with it.
pub(crate) async fn sign<B>(
    signer: &Signer,
    req: Request<B>,
    limit: usize,
) -> Result<Request<Full<Bytes>>, ClientError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(ClientError::RequestTooLarge { limit }),
        Err(e) => return Err(ClientError::RequestBody(e)),
    };
    let mut req = Request::from_parts(parts, ());
    signer.sign(&mut req, &body);
    Ok(req.map(|()| Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    fn echo_headers() -> impl Service<
        Request<Full<Bytes>>,
        Response = (http::HeaderMap, Bytes),
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone {
        tower::service_fn(|req: Request<Full<Bytes>>| async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            Ok((parts.headers, body))
        })
    }

    #[tokio::test]
    async fn json_bodies_get_content_md5_and_the_body_is_sent_unchanged() {
        let svc = SigningService::new(echo_headers(), Signer::new("k", "s").unwrap());
        let req = Request::post("http://h/p")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"name\":\"test\"}")))
            .unwrap();
        let (headers, body) = svc.oneshot(req).await.unwrap();
        assert_eq!(headers["content-md5"], "K4lbbvqii4GChOXGlqGHmQ==");
        assert_eq!(&body[..], b"{\"name\":\"test\"}");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_before_sending() {
        let svc = SigningLayer::new(Signer::new("k", "s").unwrap())
            .with_request_limit(4)
            .layer(echo_headers());
        let req = Request::post("http://h/p")
            .body(Full::new(Bytes::from_static(b"12345")))
            .unwrap();
        let err = svc.oneshot(req).await.unwrap_err();
        assert!(
            matches!(err, ClientError::RequestTooLarge { limit: 4 }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn every_request_gets_its_own_nonce() {
        let mut svc = SigningService::new(echo_headers(), Signer::new("k", "s").unwrap());
        let mut nonces = std::collections::HashSet::new();
        for _ in 0..8 {
            let req = Request::get("http://h/p")
                .body(Full::<Bytes>::default())
                .unwrap();
            let (headers, _) = tower::ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc)
                .await
                .unwrap()
                .call(req)
                .await
                .unwrap();
            assert!(nonces.insert(headers["x-ca-nonce"].clone()));
        }
    }
}
