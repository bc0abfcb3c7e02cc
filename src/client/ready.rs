//! [`Client`]: a ready-made signing HTTP and HTTPS client.

use std::fmt;

use bytes::Bytes;
use http::{Method, Request, Response, Uri, header};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_service::Service as _;

use super::{ClientError, SigningLayer, SigningService};
use crate::auth::Signer;
use crate::mapping::FORM_CONTENT_TYPE;

/// The largest response body a [`Client`] collects by default: 8 MiB.
pub const DEFAULT_RESPONSE_LIMIT: usize = 8 * 1024 * 1024;

type Inner = SigningService<HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>>;

/// A client that signs every request for one app and returns the whole answer: hyper-util's
/// pooled client (HTTP/1.1, and HTTP/2 where TLS negotiates it) with rustls and Mozilla's
/// roots for `https`, behind a [`SigningLayer`].
///
/// Cloning is cheap and shares the connection pool. Requests need a Tokio runtime.
///
/// # Examples
///
/// ```no_run
/// use stagegate::auth::Signer;
/// use stagegate::client::Client;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::new(Signer::new("203753385", "SECRET_abc123")?);
/// let res = client.get("https://api.example.com/users/42").await?;
/// assert!(res.status().is_success());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Inner,
    response_limit: usize,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("response_limit", &self.response_limit)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client signing with `signer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::auth::Signer;
    /// use stagegate::client::Client;
    /// use stagegate::model::Stage;
    /// let client = Client::new(Signer::new("203753385", "SECRET_abc123").unwrap().with_stage(Stage::TEST))
    ///     .with_response_limit(1 << 20);
    /// # let _ = client;
    /// ```
    #[must_use]
    pub fn new(signer: Signer) -> Self {
        Self::with_layer(SigningLayer::new(signer))
    }

    /// A client signing with `layer` (to set its request limit).
    #[must_use]
    pub fn with_layer(layer: SigningLayer) -> Self {
        let mut tls = crate::proxy::default_tls_config();
        // hyper-rustls sets ALPN itself and refuses a config that already has it.
        tls.alpn_protocols.clear();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Self {
            inner: tower_layer::Layer::layer(&layer, http),
            response_limit: DEFAULT_RESPONSE_LIMIT,
        }
    }

    /// The largest response body collected; a larger one fails with
    /// [`ClientError::ResponseTooLarge`].
    #[must_use]
    pub fn with_response_limit(mut self, bytes: usize) -> Self {
        self.response_limit = bytes;
        self
    }

    /// Signs and sends `req` (an absolute `http` or `https` URI) and collects the answer.
    ///
    /// # Errors
    ///
    /// [`ClientError`]: the URI is not absolute, the request body is over the signing limit,
    /// the request could not be sent, or the answer could not be read or is over the limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(client: stagegate::client::Client) -> Result<(), stagegate::client::ClientError> {
    /// let req = http::Request::put("http://127.0.0.1:8080/users/42")
    ///     .header("content-type", "application/json")
    ///     .body(r#"{"name":"bob"}"#)
    ///     .unwrap();
    /// let res = client.send(req).await?;
    /// # let _ = res;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send<T: Into<Bytes>>(
        &self,
        req: Request<T>,
    ) -> Result<Response<Bytes>, ClientError> {
        let uri = req.uri();
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(ClientError::InvalidRequest {
                field: "uri",
                reason: format!("`{uri}` is not an absolute http or https URI"),
            });
        }
        let req = req.map(|b| Full::new(b.into()));
        let mut inner = self.inner.clone();
        std::future::poll_fn(|cx| {
            tower_service::Service::<Request<Full<Bytes>>>::poll_ready(&mut inner, cx)
        })
        .await?;
        let res = inner.call(req).await?;
        let (parts, body) = res.into_parts();
        let limit = self.response_limit;
        let body = match Limited::new(body, limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                return Err(ClientError::ResponseTooLarge { limit });
            }
            Err(e) => return Err(ClientError::ResponseBody(e)),
        };
        Ok(Response::from_parts(parts, body))
    }

    /// A signed `GET` of `uri`.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); `uri` that does not parse is [`ClientError::InvalidRequest`].
    pub async fn get(&self, uri: &str) -> Result<Response<Bytes>, ClientError> {
        self.send(request(Method::GET, uri, None, Bytes::new())?)
            .await
    }

    /// A signed `POST` of a JSON body (`Content-Type: application/json; charset=utf-8`, signed
    /// with its `Content-MD5`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn post_json(
        &self,
        uri: &str,
        json: impl Into<Bytes>,
    ) -> Result<Response<Bytes>, ClientError> {
        let ct = "application/json; charset=utf-8";
        self.send(request(Method::POST, uri, Some(ct), json.into())?)
            .await
    }

    /// A signed `POST` of a form (`application/x-www-form-urlencoded`, its parameters signed).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn post_form(
        &self,
        uri: &str,
        fields: &[(&str, &str)],
    ) -> Result<Response<Bytes>, ClientError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let ct = FORM_CONTENT_TYPE;
        self.send(request(Method::POST, uri, Some(ct), Bytes::from(body))?)
            .await
    }
}

/// A request for `uri`, or the error naming it.
fn request(
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<Request<Bytes>, ClientError> {
    let parsed: Uri =
        uri.parse()
            .map_err(|e: http::uri::InvalidUri| ClientError::InvalidRequest {
                field: "uri",
                reason: e.to_string(),
            })?;
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = parsed;
    if let Some(ct) = content_type {
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_str(ct).map_err(|_| ClientError::InvalidRequest {
                field: "content-type",
                reason: "not a valid header value".to_owned(),
            })?,
        );
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_relative_or_bad_uri_is_refused_naming_the_uri() {
        let client = Client::new(Signer::new("k", "s").unwrap());
        for bad in ["/relative", "http://bad host/", ""] {
            let err = client.get(bad).await.unwrap_err();
            assert!(
                matches!(err, ClientError::InvalidRequest { field: "uri", .. }),
                "{bad}: {err}"
            );
        }
    }
}
