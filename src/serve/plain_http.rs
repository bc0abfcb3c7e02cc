//! [`PlainHttp`]: what a plain-HTTP listener beside an HTTPS one answers: a redirect to HTTPS,
//! or a refusal.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::error::GatewayError;
use crate::error_code::ErrorCode;
use crate::layer::new_request_id;
use crate::proxy::GatewayBody;

/// A service for a plain-HTTP listener whose clients are to use HTTPS instead: every request is
/// answered either `308 Permanent Redirect` to the same host, path and query over HTTPS
/// ([`redirect`](Self::redirect); a 308 keeps the method and body, unlike a 301), or `403`
/// with the catalogue's `I403PT` (`Invalid protocol HTTP unsupported`, in the gateway's error
/// shape) ([`refuse`](Self::refuse)). Nothing is forwarded. A request whose `Host` is missing or
/// malformed cannot be redirected and is refused.
///
/// # Examples
///
/// ```
/// use stagegate::serve::PlainHttp;
/// use tower::ServiceExt as _;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let req = http::Request::get("/v1/items?page=2").header("host", "api.example.com:8080").body(()).unwrap();
/// let res = PlainHttp::redirect(8443).oneshot(req).await.unwrap();
/// assert_eq!(res.status(), 308);
/// assert_eq!(res.headers()["location"], "https://api.example.com:8443/v1/items?page=2");
///
/// let req = http::Request::get("/v1/items").header("host", "api.example.com").body(()).unwrap();
/// let res = PlainHttp::refuse().oneshot(req).await.unwrap();
/// assert_eq!(res.status(), 403);
/// assert_eq!(res.headers()["x-ca-error-code"], "I403PT");
/// # });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainHttp {
    /// `Some(port)`: redirect to HTTPS on that port (443 is left out of the URL).
    https_port: Option<u16>,
}

impl PlainHttp {
    /// Redirects every request to `https://` the same host (its port replaced by `https_port`,
    /// left out when 443) and the same path and query, with `308 Permanent Redirect`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(stagegate::serve::PlainHttp::redirect(443).https_port(), Some(443));
    /// ```
    #[must_use]
    pub const fn redirect(https_port: u16) -> Self {
        Self {
            https_port: Some(https_port),
        }
    }

    /// Refuses every request with `403` and `I403PT` (`Invalid protocol HTTP unsupported`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(stagegate::serve::PlainHttp::refuse().https_port(), None);
    /// ```
    #[must_use]
    pub const fn refuse() -> Self {
        Self { https_port: None }
    }

    /// The HTTPS port redirected to; `None` when refusing.
    #[must_use]
    pub const fn https_port(&self) -> Option<u16> {
        self.https_port
    }

    /// The response to `req`.
    fn answer<B>(self, req: &Request<B>) -> Response<GatewayBody> {
        let location = self.https_port.and_then(|port| https_location(req, port));
        match location {
            Some(location) => {
                let mut res = Response::new(GatewayBody::empty());
                *res.status_mut() = StatusCode::PERMANENT_REDIRECT;
                res.headers_mut().insert(header::LOCATION, location);
                res
            }
            None => GatewayError::with_detail(ErrorCode::I403PT, "HTTP")
                .into_response(&new_request_id()),
        }
    }
}

/// `https://HOST[:port]/path?query` for `req`, from its `Host` header (or the target's
/// authority); `None` when there is no valid host.
fn https_location<B>(req: &Request<B>, port: u16) -> Option<HeaderValue> {
    let host = match req.headers().get(header::HOST) {
        Some(v) => v.to_str().ok()?.parse::<http::uri::Authority>().ok()?,
        None => req.uri().authority()?.clone(),
    };
    // userinfo is never meant for a Host header; refuse rather than echo it
    if host.as_str().contains('@') {
        return None;
    }
    let name = host.host();
    let mut url = String::with_capacity(16 + name.len() + req.uri().path().len());
    url.push_str("https://");
    // `host()` keeps an IPv6 literal's brackets
    url.push_str(name);
    if port != 443 {
        url.push(':');
        url.push_str(&port.to_string());
    }
    url.push_str(req.uri().path_and_query().map_or("/", |p| p.as_str()));
    HeaderValue::from_str(&url).ok()
}

impl<B> tower_service::Service<Request<B>> for PlainHttp {
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<GatewayBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.answer(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: Option<&str>, target: &str, port: u16) -> Option<String> {
        let mut b = Request::get(target);
        if let Some(h) = host {
            b = b.header(header::HOST, h);
        }
        let res = PlainHttp::redirect(port).answer(&b.body(()).unwrap());
        res.headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn redirects_keep_host_path_and_query_and_change_the_port() {
        let got = location(Some("example.com"), "/a/b?x=1&y=%20", 443);
        assert_eq!(got.as_deref(), Some("https://example.com/a/b?x=1&y=%20"));
        let got = location(Some("example.com:8080"), "/", 8443);
        assert_eq!(got.as_deref(), Some("https://example.com:8443/"));
        let got = location(Some("[::1]:8080"), "/p", 8443);
        assert_eq!(got.as_deref(), Some("https://[::1]:8443/p"));
        // absolute-form target, no Host header
        let got = location(None, "http://example.org:80/q?z", 443);
        assert_eq!(got.as_deref(), Some("https://example.org/q?z"));
    }

    #[test]
    fn a_missing_or_bad_host_is_refused_not_redirected() {
        for host in [None, Some("a b"), Some("user@evil.example"), Some("")] {
            assert_eq!(location(host, "/x", 443), None, "{host:?}");
            let mut b = Request::get("/x");
            if let Some(h) = host {
                b = b.header(header::HOST, h);
            }
            let res = PlainHttp::redirect(443).answer(&b.body(()).unwrap());
            assert_eq!(res.status(), 403, "{host:?}");
        }
    }

    #[test]
    fn refusal_is_i403pt_in_the_error_shape() {
        let req = Request::get("/x")
            .header(header::HOST, "h")
            .body(())
            .unwrap();
        let res = PlainHttp::refuse().answer(&req);
        assert_eq!(res.status(), 403);
        assert_eq!(res.headers()["x-ca-error-code"], "I403PT");
        assert_eq!(
            res.headers()["x-ca-error-message"],
            "Invalid protocol HTTP unsupported"
        );
        assert!(res.headers().contains_key("x-ca-request-id"));
    }
}
