//! [`Gateway`]: the tower [`Service`] that serves published APIs and passes the rest on.
//!
//! `call` runs the route step (stage, path confinement, one snapshot load, route lookup) and
//! builds the request's [`RequestContext`]; the remaining steps run in
//! [`pipeline`](super::pipeline); [`finish`] stamps the response and writes the access log.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body::Body;
use tower_service::Service;

use super::layer::Shared;
use super::new_request_id;
use super::pipeline::{self, RequestContext, Routed};
use crate::error::{GatewayError, X_CA_REQUEST_ID};
use crate::proxy::{BoxError, GatewayBody};

/// The client's address, for `X-Forwarded-For` and the `CaClientIp` system parameter.
///
/// The gateway takes the peer address from, in this order: a `ClientAddr` request extension;
/// axum's `ConnectInfo<SocketAddr>` extension (feature `axum`, which `admin` turns on too), set
/// when the app is served with
/// `Router::into_make_service_with_connect_info::<SocketAddr>()`; a plain [`SocketAddr`]
/// extension; the address given to [`Gateway::with_client_addr`]. `stagegate::serve::Server`
/// (feature `serve`) sets it for you. Without any of them the backend gets no
/// `X-Forwarded-For` and `CaClientIp` is empty.
///
/// # Examples
///
/// ```
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(stagegate::layer::ClientAddr(([127, 0, 0, 1], 5000).into()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// What the serving code knows of the connection a request came on: whether it is TLS and,
/// for TLS, the server name the client asked for (SNI) and the negotiated ALPN protocol.
///
/// The HTTPS-only and HTTP-only checks of an API, the `CaProtocol`-style scheme the backend
/// is told (`X-Forwarded-Proto`) and mapping see the scheme from here. `stagegate::serve::Server`
/// (feature `serve`) inserts it into every request: plain from `serve`, TLS from `serve_tls`.
/// A host app that terminates TLS itself inserts `ConnectionInfo::tls()` as a request
/// extension. Without one, the gateway goes by the request target (`https://...` in absolute
/// form), which a client chooses: insert it whenever the app serves untrusted clients.
///
/// # Examples
///
/// ```
/// use stagegate::layer::ConnectionInfo;
/// let info = ConnectionInfo::tls().with_server_name("api.example.com").with_alpn(b"h2");
/// assert_eq!(info.scheme(), "https");
/// assert_eq!(info.server_name(), Some("api.example.com"));
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(info);
/// assert_eq!(ConnectionInfo::plain().scheme(), "http");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    tls: bool,
    server_name: Option<Arc<str>>,
    alpn: Option<Arc<[u8]>>,
}

impl ConnectionInfo {
    /// A plain TCP connection (`http`).
    #[must_use]
    pub fn plain() -> Self {
        Self::default()
    }

    /// A TLS connection (`https`).
    #[must_use]
    pub fn tls() -> Self {
        Self {
            tls: true,
            ..Self::default()
        }
    }

    /// The server name the client sent (SNI).
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The ALPN protocol negotiated (`h2`, `http/1.1`).
    #[must_use]
    pub fn with_alpn(mut self, protocol: &[u8]) -> Self {
        self.alpn = Some(protocol.into());
        self
    }

    /// Whether the connection is TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// `https` or `http`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// The server name the client sent (SNI), if it sent one over TLS.
    #[must_use]
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The negotiated ALPN protocol, if any.
    #[must_use]
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }
}

/// The gateway service: serves published APIs, passes everything else to `S`.
#[derive(Clone, Debug)]
pub struct Gateway<S> {
    inner: S,
    shared: Arc<Shared>,
    client: Option<SocketAddr>,
}

impl<S> Gateway<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            shared,
            client: None,
        }
    }

    /// Sets the client's address for every request this service serves that carries no
    /// [`ClientAddr`] (or [`SocketAddr`]) extension: a host server that makes one service per
    /// connection can set the peer once here instead of inserting an extension into every
    /// request (which allocates each time).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::GatewayLayer;
    /// use stagegate::routing::SnapshotHandle;
    /// let gateway = GatewayLayer::new(SnapshotHandle::default()).standalone();
    /// // per accepted connection:
    /// let per_connection = gateway.clone().with_client_addr(([203, 0, 113, 9], 40000).into());
    /// # let _ = per_connection;
    /// ```
    #[must_use]
    pub fn with_client_addr(mut self, addr: SocketAddr) -> Self {
        self.client = Some(addr);
        self
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

/// The gateway without an inner application.
pub type GatewayService = Gateway<NotFound>;

/// The inner service of [`GatewayService`]: answers every request with `I404NF`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NotFound;

impl<B> Service<Request<B>> for NotFound {
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let id = new_request_id();
        std::future::ready(Ok(GatewayError::not_found(
            req.method().as_str(),
            req.uri().path(),
        )
        .into_response(&id)))
    }
}

/// The future of [`Gateway::call`].
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response<GatewayBody>, E>> + Send>>;

/// Parsed once: a lookup or insertion by a `&str` parses and validates the name every time.
static X_CA_REQUEST_ID_NAME: HeaderName = HeaderName::from_static(X_CA_REQUEST_ID);

impl<S, B, ResBody> Service<Request<B>> for Gateway<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness of the inner service is driven inside the call future, on a clone, so that a
        // request the gateway serves never holds the inner service's capacity.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match pipeline::route(&self.shared, &req, self.client) {
            Routed::Serve(ctx) => {
                let shared = Arc::clone(&self.shared);
                // `serve` boxed as it is, not inside another async block: that would hold a
                // second copy of the arguments and make the per-request allocation (and its
                // copy) larger.
                Box::pin(serve(shared, ctx, req))
            }
            Routed::Refuse(e) => {
                #[cfg(feature = "metrics")]
                if let Some(m) = &self.shared.metrics {
                    m.record_unrouted();
                }
                let id = new_request_id();
                Box::pin(std::future::ready(Ok(e.into_response(&id))))
            }
            Routed::Preflight(res) => Box::pin(std::future::ready(Ok(res))),
            Routed::NearMiss(miss) if self.shared.miss == super::Miss::Answer => {
                miss.log(&req, true);
                let id = new_request_id();
                let e = GatewayError::not_found(req.method().as_str(), req.uri().path());
                Box::pin(std::future::ready(Ok(e.into_response(&id))))
            }
            routed => {
                if let Routed::NearMiss(miss) = routed {
                    miss.log(&req, false);
                }
                #[cfg(feature = "metrics")]
                if let Some(m) = &self.shared.metrics {
                    m.record_unrouted();
                }
                let mut inner = self.inner.clone();
                std::mem::swap(&mut inner, &mut self.inner);
                Box::pin(async move {
                    std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                    let res = inner.call(req).await?;
                    Ok(res.map(GatewayBody::new))
                })
            }
        }
    }
}

/// Runs the pipeline's steps after routing and finishes the response.
async fn serve<B, E>(
    shared: Arc<Shared>,
    mut ctx: RequestContext,
    req: Request<B>,
) -> Result<Response<GatewayBody>, E>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let result = pipeline::run(&shared, &mut ctx, req).await;
    let res = match result {
        Ok(r) => r,
        Err(e) => {
            ctx.trace.error = Some(e.error_code());
            e.into_response(&ctx.request_id)
        }
    };
    Ok(finish(&shared, &ctx, res))
}

/// Stamps the request id (and, when asked and allowed, `X-Ca-Debug-Info`) on the response,
/// writes the access-log line and counts the request.
///
/// The access log is one `INFO` event per served request, target `stagegate::access`, fields:
/// `request_id`, `group` (id), `api` (name), `stage`, `app` (id, `-` when anonymous),
/// `status`, `error_code` (`-` when none), `policy` (the traffic policy that refused it, `-`
/// when none), `latency_us` (arrival to response head), `upstream_us` (the backend call, `-`
/// when no backend was called) and `gateway_us` (the rest: the gateway's own time).
fn finish(
    #[cfg_attr(
        not(feature = "metrics"),
        expect(unused_variables, reason = "metrics only")
    )]
    shared: &Shared,
    ctx: &RequestContext,
    mut res: Response<GatewayBody>,
) -> Response<GatewayBody> {
    let route = ctx.route();
    let trace = &ctx.trace;
    res.headers_mut().insert(
        X_CA_REQUEST_ID_NAME.clone(),
        ctx.request_id.to_header_value(),
    );
    policy_headers(ctx, res.headers_mut());
    let total = ctx.arrival.elapsed();
    if ctx.debug && trace.debug_allowed {
        let info = serde_json::json!({
            "TotalLatency": total.as_millis() as u64,
            "ServiceLatency": trace.service_latency.map_or(0, |d| d.as_millis() as u64),
            "TotalLatencyMicros": total.as_micros() as u64,
            "Api": route.api().name,
            "ApiId": route.api_id().as_str(),
            "GroupId": route.group_id().as_str(),
            "Stage": ctx.stage.as_str(),
            "Version": route.deployment.version,
            "Backend": route.backend_name,
            "BackendType": route.definition.kind().as_str(),
            "Auth": trace.auth.unwrap_or("NONE"),
            "AppId": trace.app,
            "Policies": policy_trace(ctx),
        });
        if let Ok(v) = HeaderValue::from_str(&info.to_string()) {
            res.headers_mut().insert("x-ca-debug-info", v);
        }
    }
    let error_code = trace.error.map(crate::error_code::ErrorCode::as_str);
    let upstream_us = trace.service_latency.map(|d| d.as_micros() as u64);
    tracing::info!(
        target: "stagegate::access",
        request_id = %ctx.request_id,
        group = %route.group_id(),
        api = %route.api().name,
        stage = %ctx.stage,
        app = trace.app.as_deref().unwrap_or("-"),
        status = res.status().as_u16(),
        error_code = error_code.unwrap_or("-"),
        detail = res.extensions().get::<crate::error::RefusalDetail>().map_or("-", |d| &*d.0),
        policy = trace.refused_by.map_or("-", crate::base::Policy::as_str),
        latency_us = total.as_micros() as u64,
        upstream_us = tracing::field::display(OrDash(upstream_us)),
        gateway_us = (total.as_micros() as u64).saturating_sub(upstream_us.unwrap_or(0)),
        "request"
    );
    #[cfg(feature = "metrics")]
    if let Some(m) = &shared.metrics {
        m.record(&crate::metrics::Outcome {
            route,
            app: trace.app.as_deref(),
            status: res.status().as_u16(),
            error: trace.error,
            refused_by: trace.refused_by,
            total,
            upstream: trace.service_latency,
        });
    }
    res
}

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// A number as a header value. Those below 1 024 (a reset in seconds or minutes, most limits
/// and what remains of them) are shared from a table built once: a clone is a reference count,
/// where formatting a new value costs an allocation.
fn number_value(n: u64) -> HeaderValue {
    static SMALL: std::sync::LazyLock<Box<[HeaderValue]>> =
        std::sync::LazyLock::new(|| (0..1024u32).map(HeaderValue::from).collect());
    match usize::try_from(n).ok().and_then(|i| SMALL.get(i)) {
        Some(v) => v.clone(),
        None => HeaderValue::from(n),
    }
}

/// The headers the policies add to every response of the API, error responses included:
/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (and `Retry-After` on a 429)
/// as Kong sends them, and the CORS headers for an allowed origin.
fn policy_headers(ctx: &RequestContext, h: &mut http::HeaderMap) {
    if let Some(rate) = &ctx.trace.rate {
        h.insert(RATELIMIT_LIMIT.clone(), number_value(rate.limit.into()));
        h.insert(
            RATELIMIT_REMAINING.clone(),
            number_value(rate.remaining.into()),
        );
        let reset = number_value(rate.reset_secs);
        if rate.refused.is_some() {
            h.insert(http::header::RETRY_AFTER, reset.clone());
        }
        h.insert(RATELIMIT_RESET.clone(), reset);
    }
    if let Some(cors) = ctx.policies.as_ref().and_then(|p| p.cors.as_ref()) {
        cors.value.actual(ctx.origin.as_ref(), h);
    }
}

/// Which policy decided what, for `X-Ca-Debug-Info` and the admin debug endpoint.
fn policy_trace(ctx: &RequestContext) -> serde_json::Value {
    let Some(p) = ctx.policies.as_deref() else {
        return serde_json::Value::Null;
    };
    let trace = &ctx.trace;
    let mut out = serde_json::Map::new();
    if let Some(ip) = &p.ip {
        out.insert(
            "IpControl".into(),
            serde_json::json!({
                "Policy": ip.name,
                "PolicyId": ip.id.as_str(),
                "Mode": ip.value.mode.to_string(),
                "Decision": match trace.ip_admitted {
                    Some(true) => "ALLOWED",
                    Some(false) => "REFUSED",
                    None => "NOT_REACHED",
                },
            }),
        );
    }
    if let Some(t) = &p.throttle {
        out.insert(
            "Throttling".into(),
            serde_json::json!({
                "Policy": t.name,
                "PolicyId": t.id.as_str(),
                "Unit": t.value.unit.as_str(),
                "Decision": match &trace.rate {
                    Some(r) => r.refused.map_or("ADMITTED", |c| c.as_str()),
                    None => "NOT_REACHED",
                },
                "Limit": trace.rate.map(|r| r.limit),
                "Remaining": trace.rate.map(|r| r.remaining),
            }),
        );
    }
    if let Some(c) = &p.cors {
        out.insert(
            "Cors".into(),
            serde_json::json!({
                "Policy": c.name,
                "PolicyId": c.id.as_str(),
                "OriginAllowed": ctx.origin.as_ref().and_then(|o| o.to_str().ok()).is_some_and(|o| c.value.policy.allows_origin(o)),
            }),
        );
    }
    if let Some(sg) = &p.sign {
        out.insert(
            "BackendSignature".into(),
            serde_json::json!({
                "Policy": sg.name,
                "PolicyId": sg.id.as_str(),
                "Key": sg.value.key,
                "Signed": trace.signed,
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// A number, or `-` when there is none (the access log's way of saying "not measured").
struct OrDash(Option<u64>);

impl std::fmt::Display for OrDash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => n.fmt(f),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::number_value;

    #[test]
    fn numbers_read_the_same_from_the_table_and_beyond_it() {
        for n in [0, 7, 59, 1023, 1024, 86_400, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(number_value(n).to_str().unwrap(), n.to_string());
        }
    }
}
