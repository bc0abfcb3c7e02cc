//! [`GatewayLayer`], [`Gateway`] and the request pipeline.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, header};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::auth::{AuthRequest, Authenticator, Caller};
use super::error::{GatewayError, X_CA_REQUEST_ID};
use super::new_request_id;
use super::request_id::RequestId;
use crate::error_code::ErrorCode;
use crate::model::{AuthType, Protocol, RequestMode, Stage};
use crate::proxy::{
    BodyError, BoxError, ForwardContext, GatewayBody, HttpForwarder, collect_limited,
};
use crate::routing::{BackendTarget, RouteMatch, Snapshot, SnapshotHandle};

/// The client's address, for `X-Forwarded-For` and the `CaClientIp` system parameter.
///
/// Host servers insert it as a request extension (a plain [`SocketAddr`] extension is read too).
///
/// # Examples
///
/// ```
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(stagegate::ClientAddr(([127, 0, 0, 1], 5000).into()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// What every [`Gateway`] built from one layer shares.
pub(crate) struct Shared {
    pub(crate) handle: SnapshotHandle,
    pub(crate) forwarder: HttpForwarder,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) backends: Arc<dyn crate::backend::Dispatch>,
    pub(crate) body_limit: usize,
    pub(crate) header_limit: usize,
    /// `X-Ca-Request-Mode: debug` answered for ANONYMOUS APIs too.
    pub(crate) debug_anonymous: bool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("handle", &self.handle)
            .field("body_limit", &self.body_limit)
            .field("header_limit", &self.header_limit)
            .finish_non_exhaustive()
    }
}

/// The default body limit: 8 MiB (spec §6.3).
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// The default limit of URL plus headers: 8 KiB (spec §6.3).
pub const DEFAULT_HEADER_LIMIT: usize = 8 * 1024;

/// Wraps a service with the gateway: requests for published APIs are served, the rest reach
/// the inner service.
///
/// Cloning is a reference-count bump.
///
/// # Examples
///
/// ```
/// use stagegate::{GatewayLayer, SnapshotHandle};
/// let layer = GatewayLayer::new(SnapshotHandle::default()).body_limit(1 << 20);
/// let standalone = layer.standalone(); // answers misses with I404NF
/// # let _ = standalone;
/// ```
#[derive(Clone, Debug)]
pub struct GatewayLayer {
    shared: Arc<Shared>,
}

impl GatewayLayer {
    /// A layer reading the live configuration through `handle` (see
    /// [`ControlPlane::snapshot_handle`](crate::ControlPlane::snapshot_handle)).
    #[must_use]
    pub fn new(handle: SnapshotHandle) -> Self {
        Self {
            shared: Arc::new(Shared {
                handle,
                forwarder: HttpForwarder::new(),
                authenticator: Arc::new(super::AppAuthenticator::default()),
                backends: Arc::new(crate::backend::Backends::default()),
                body_limit: DEFAULT_BODY_LIMIT,
                header_limit: DEFAULT_HEADER_LIMIT,
                debug_anonymous: false,
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::try_unwrap(self.shared).unwrap_or_else(|arc| Shared {
            handle: arc.handle.clone(),
            forwarder: arc.forwarder.clone(),
            authenticator: Arc::clone(&arc.authenticator),
            backends: Arc::clone(&arc.backends),
            body_limit: arc.body_limit,
            header_limit: arc.header_limit,
            debug_anonymous: arc.debug_anonymous,
        });
        f(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The largest request body accepted (`I413RL` beyond); default 8 MiB.
    #[must_use]
    pub fn body_limit(self, bytes: usize) -> Self {
        self.with(|s| s.body_limit = bytes)
    }

    /// The largest URL plus headers accepted (`I413UL` beyond); default 8 KiB.
    #[must_use]
    pub fn header_limit(self, bytes: usize) -> Self {
        self.with(|s| s.header_limit = bytes)
    }

    /// The HTTP client used for HTTP, VPC and HTTP-function backends.
    #[must_use]
    pub fn forwarder(self, forwarder: HttpForwarder) -> Self {
        self.with(|s| s.forwarder = forwarder)
    }

    /// The authenticator for APIs whose auth type is `APP` (default: [`AppAuthenticator`](super::AppAuthenticator)
    /// with an in-memory replay guard).
    #[must_use]
    pub fn authenticator(self, a: impl Authenticator) -> Self {
        let a: Arc<dyn Authenticator> = Arc::new(a);
        self.with(|s| s.authenticator = a)
    }

    /// The dispatcher for Function Compute, OSS, EventBridge, service-discovery and address-less
    /// VPC backends (default: [`Backends::default()`](crate::backend::Backends)).
    #[must_use]
    pub fn backends(self, d: impl crate::backend::Dispatch) -> Self {
        let d: Arc<dyn crate::backend::Dispatch> = Arc::new(d);
        self.with(|s| s.backends = d)
    }

    /// Whether `X-Ca-Request-Mode: debug` also answers `X-Ca-Debug-Info` for ANONYMOUS APIs
    /// (default `false`).
    ///
    /// The debug information names the API, group, backend, backend type and deployed
    /// version. For an `APP` API it is only given to a request that authenticated as an app
    /// authorized for the API (a refused request never gets it); for an ANONYMOUS API, where
    /// anyone could ask, only when this is on.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::{GatewayLayer, SnapshotHandle};
    /// let layer = GatewayLayer::new(SnapshotHandle::default()).debug_anonymous(true);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn debug_anonymous(self, enabled: bool) -> Self {
        self.with(|s| s.debug_anonymous = enabled)
    }

    /// A service without an inner application: misses are answered with `I404NF`.
    #[must_use]
    pub fn standalone(&self) -> GatewayService {
        self.layer(NotFound)
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = Gateway<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gateway {
            inner,
            shared: Arc::clone(&self.shared),
            client: None,
        }
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
    /// Sets the client's address for every request this service serves that carries no
    /// [`ClientAddr`] (or [`SocketAddr`]) extension: a host server that makes one service per
    /// connection can set the peer once here instead of inserting an extension into every
    /// request (which allocates each time).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::{GatewayLayer, SnapshotHandle};
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
static X_CA_STAGE: HeaderName = HeaderName::from_static("x-ca-stage");
static X_CA_REQUEST_MODE: HeaderName = HeaderName::from_static("x-ca-request-mode");
static X_CA_REQUEST_ID_NAME: HeaderName = HeaderName::from_static(X_CA_REQUEST_ID);

fn header_bytes<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let uri_len = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    uri_len
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

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
        let start = Instant::now();
        // A repeated `X-Ca-Stage` is refused: the backend would see both values.
        let mut stages = req.headers().get_all(&X_CA_STAGE).iter();
        let stage = match (stages.next(), stages.next()) {
            (None, _) => Stage::RELEASE,
            (Some(_), Some(_)) => {
                let id = new_request_id();
                return Box::pin(std::future::ready(Ok(
                    GatewayError::invalid_stage().into_response(&id)
                )));
            }
            (Some(v), None) => match v.to_str().ok().map(Stage::parse) {
                Some(Ok(s)) => s,
                _ => {
                    let id = new_request_id();
                    return Box::pin(std::future::ready(Ok(
                        GatewayError::invalid_stage().into_response(&id)
                    )));
                }
            },
        };
        // One snapshot per request; the route's Arc is cloned out and the snapshot kept only
        // for credentials and grants.
        // Path confinement before routing: a dot segment never reaches a route.
        let path_check = match crate::routing::check_request_path(req.uri().path()) {
            Ok(c) => c,
            Err(e) => return refuse(GatewayError::invalid_path(e)),
        };
        let snapshot = self.shared.handle.load();
        let host = request_host(req.uri(), req.headers());
        let Some(found) = snapshot.resolve(host, &stage, req.method(), req.uri().path()) else {
            let mut inner = self.inner.clone();
            std::mem::swap(&mut inner, &mut self.inner);
            return Box::pin(async move {
                std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                let res = inner.call(req).await?;
                Ok(res.map(GatewayBody::new))
            });
        };
        if path_check == crate::routing::PathCheck::EncodedSeparator
            && let Err(e) = crate::routing::encoded_separators_allowed(&found)
        {
            return refuse(GatewayError::invalid_path(e));
        }
        let shared = Arc::clone(&self.shared);
        let client = client_addr(&req).or(self.client);
        // `serve` boxed as it is, not inside another async block: that would hold a second copy
        // of the arguments and make the per-request allocation (and its copy) larger.
        Box::pin(serve(shared, snapshot, found, stage, req, client, start))
    }
}

/// An error answered before a route was chosen.
fn refuse<E: Send + 'static>(e: GatewayError) -> ResponseFuture<E> {
    let id = new_request_id();
    Box::pin(std::future::ready(Ok(e.into_response(&id))))
}

/// The host a request is for: the authority of an absolute-form target (RFC 9112 §3.2.2: it
/// wins over `Host`; HTTP/2's `:authority` arrives there too), else `Host`.
fn request_host<'r>(uri: &'r http::Uri, headers: &'r http::HeaderMap) -> Option<&'r str> {
    match uri.authority() {
        Some(a) => Some(without_userinfo(a)),
        None => headers.get(header::HOST).and_then(|h| h.to_str().ok()),
    }
}

/// `host[:port]` of an authority, without a `user:password@` (never a host, never forwarded).
fn without_userinfo(a: &http::uri::Authority) -> &str {
    let a = a.as_str();
    a.rsplit_once('@').map_or(a, |(_, host)| host)
}

/// Debug details for `X-Ca-Debug-Info`.
#[derive(Default)]
struct Trace {
    auth: Option<&'static str>,
    app: Option<String>,
    /// Whether the caller may see `X-Ca-Debug-Info` (set once authentication passed).
    debug_allowed: bool,
    service_latency: Option<Duration>,
}

async fn serve<B, E>(
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
    found: RouteMatch,
    stage: Stage,
    req: Request<B>,
    client: Option<SocketAddr>,
    start: Instant,
) -> Result<Response<GatewayBody>, E>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let request_id = new_request_id();
    let debug = req
        .headers()
        .get(&X_CA_REQUEST_MODE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"debug"));
    let mut trace = Trace::default();
    let result = pipeline(
        &shared,
        &snapshot,
        &found,
        &stage,
        req,
        client,
        &request_id,
        &mut trace,
    )
    .await;
    let mut res = match result {
        Ok(r) => r,
        Err(e) => e.into_response(&request_id),
    };
    let route = &found.route();
    res.headers_mut()
        .insert(X_CA_REQUEST_ID_NAME.clone(), request_id.to_header_value());
    let total = start.elapsed();
    if debug && trace.debug_allowed {
        let info = serde_json::json!({
            "TotalLatency": total.as_millis() as u64,
            "ServiceLatency": trace.service_latency.map_or(0, |d| d.as_millis() as u64),
            "TotalLatencyMicros": total.as_micros() as u64,
            "Api": route.api().name,
            "ApiId": route.api_id().as_str(),
            "GroupId": route.group_id().as_str(),
            "Stage": stage.as_str(),
            "Version": route.deployment.version,
            "Backend": route.backend_name,
            "BackendType": route.definition.kind().as_str(),
            "Auth": trace.auth.unwrap_or("NONE"),
            "AppId": trace.app,
        });
        if let Ok(v) = HeaderValue::from_str(&info.to_string()) {
            res.headers_mut().insert("x-ca-debug-info", v);
        }
    }
    tracing::info!(
        target: "stagegate::access",
        request_id = %request_id,
        group = %route.group_id(),
        api = %route.api().name,
        stage = %stage,
        app = trace.app.as_deref().unwrap_or("-"),
        status = res.status().as_u16(),
        error_code = res.headers().get(super::X_CA_ERROR_CODE).and_then(|v| v.to_str().ok()).unwrap_or("-"),
        latency_us = total.as_micros() as u64,
        "request"
    );
    Ok(res)
}

/// The body to send to the backend: the mapped replacement, else the buffered body, else the
/// client's stream.
fn backend_body(
    action: crate::mapping::BodyAction,
    buffered: Option<Bytes>,
    stream: Option<GatewayBody>,
) -> GatewayBody {
    match (action, buffered, stream) {
        (crate::mapping::BodyAction::Replace(b), _, _) | (_, Some(b), _) => GatewayBody::full(b),
        (_, None, Some(s)) => s,
        (_, None, None) => GatewayBody::empty(),
    }
}

/// Inserts every header of `added` into `headers`, as [`HeaderMap::insert`] per name (replacing
/// what `headers` had under it), keeping `added`'s repeated values.
fn insert_all(headers: &mut http::HeaderMap, added: http::HeaderMap) {
    let mut last: Option<HeaderName> = None;
    for (name, value) in added {
        match (name, &last) {
            (Some(name), _) => {
                headers.insert(name.clone(), value);
                last = Some(name);
            }
            (None, Some(name)) => {
                headers.append(name, value);
            }
            (None, None) => {}
        }
    }
}

fn client_addr<B>(req: &Request<B>) -> Option<SocketAddr> {
    req.extensions()
        .get::<ClientAddr>()
        .map(|c| c.0)
        .or_else(|| req.extensions().get::<SocketAddr>().copied())
}

#[expect(
    clippy::too_many_arguments,
    reason = "the request's facts, passed as they are: a struct for them would only be unpacked here"
)]
async fn pipeline<B>(
    shared: &Shared,
    snapshot: &Snapshot,
    found: &RouteMatch,
    stage: &Stage,
    req: Request<B>,
    client: Option<SocketAddr>,
    request_id: &RequestId,
    trace: &mut Trace,
) -> Result<Response<GatewayBody>, GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let route = &found.route();
    let api = route.api();
    if header_bytes(&req) > shared.header_limit {
        return Err(GatewayError::url_too_large());
    }
    let https = req.uri().scheme_str() == Some("https");
    let protocol = if https {
        Protocol::Https
    } else {
        Protocol::Http
    };
    if !api.request.protocols.contains(&protocol) {
        return Err(GatewayError::with_detail(
            ErrorCode::I403PT,
            if https { "HTTPS" } else { "HTTP" },
        ));
    }
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > shared.body_limit as u64
    {
        return Err(GatewayError::body_too_large());
    }
    let (mut parts, body) = req.into_parts();

    // Buffer the body only where a later step needs it.
    let needs_auth = api.auth == AuthType::App;
    let needs_body = (needs_auth && shared.authenticator.needs_body(&parts, route))
        || crate::mapping::needs_form_body(api);
    let (mut buffered, stream) = if needs_body {
        match collect_limited(body, shared.body_limit).await {
            Ok(b) => (Some(b), None),
            Err(BodyError::TooLarge { .. }) => return Err(GatewayError::body_too_large()),
            Err(_) => {
                return Err(GatewayError::unreadable_body());
            }
        }
    } else if body.is_end_stream() {
        // Nothing to stream (most GETs): an empty body, without boxing the client's.
        (None, Some(GatewayBody::empty()))
    } else {
        (
            None,
            Some(GatewayBody::new(http_body_util::Limited::new(
                body,
                shared.body_limit,
            ))),
        )
    };

    // Step 4: authentication.
    let caller = if needs_auth {
        let r = shared
            .authenticator
            .authenticate(AuthRequest {
                parts: &parts,
                body: buffered.as_deref(),
                route,
                snapshot,
                now: jiff::Timestamp::now(),
            })
            .await;
        match r {
            Ok(c) => c,
            Err(e) => {
                trace.auth = Some("REJECTED");
                return Err(e);
            }
        }
    } else {
        Caller::anonymous()
    };
    trace.auth = Some(caller.method.as_str());
    trace.app = caller.app_id.as_ref().map(ToString::to_string);
    trace.debug_allowed = needs_auth || shared.debug_anonymous;
    // The backend receives only what was checked: no AppCode, and of a signed query (or form)
    // only the signed (first) value of each key.
    crate::auth::prepare_for_backend(
        &mut parts,
        buffered.as_mut(),
        crate::auth::BackendView {
            signed_query_only: caller.method == super::AuthMethod::Signature,
            strip_appcode_header: !route.pass_appcode_to_backend,
            strip_appcode_query: !route.pass_appcode_to_backend && api.appcode_auth.allows_query(),
        },
    );

    // Step 5: parameters.
    let now_ms = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0);
    let host = request_host(&parts.uri, &parts.headers);
    let sys = crate::mapping::SystemValues {
        client_ip: client.map(|c| c.ip()),
        request_id,
        stage,
        api_name: &api.name,
        app_id: trace.app.as_deref(),
        domain: host,
        scheme: if https { "https" } else { "http" },
        handle_time_ms: now_ms,
    };
    let path_params: smallvec::SmallVec<[(&str, &str); 4]> = found.params().collect();
    let input = crate::mapping::MappingInput {
        method: &parts.method,
        request_path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        path_params: &path_params,
        rest: found.rest(),
        form_body: buffered.as_deref(),
    };
    // A mock answers from its own definition and never sees the mapped request: map it for
    // the checks (their errors still answer) without copying the client's headers. An HTTP
    // backend behind PASSTHROUGH gets the client's headers as they are: they are moved into
    // the backend request below instead of copied here.
    let client_headers = !matches!(route.target, BackendTarget::Mock { .. });
    let move_headers = matches!(route.target, BackendTarget::Http { .. })
        && api.request.mode == RequestMode::Passthrough;
    let map = |client_headers| {
        let options = crate::mapping::MapOptions {
            client_headers,
            params: false,
        };
        crate::mapping::map_request_with(api, &route.compiled, &input, &sys, options)
            .map_err(GatewayError::from)
    };
    let mut mapped = map(client_headers && !move_headers)?;
    let original_host = match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(without_userinfo(a)).ok(),
        None => parts.headers.get(header::HOST).cloned(),
    };
    if move_headers {
        if matches!(mapped.body, crate::mapping::BodyAction::Keep) {
            // Only insertions were made (parameters, Content-Type): the same on the client's
            // own map, taken rather than copied.
            let added = std::mem::take(&mut mapped.headers);
            mapped.headers = std::mem::take(&mut parts.headers);
            insert_all(&mut mapped.headers, added);
        } else {
            // A replaced body also removes headers: map again with a copy (rare).
            mapped = map(true)?;
        }
    }

    // Step 6: dispatch.
    let service_start = Instant::now();
    let res = match &route.target {
        BackendTarget::Mock {
            status,
            headers,
            body,
        } => {
            let mut res = Response::new(GatewayBody::full(body.clone()));
            *res.status_mut() = *status;
            *res.headers_mut() = headers.clone();
            Ok(res)
        }
        BackendTarget::Http {
            upstream,
            path_prefix,
            timeout_ms,
        } => {
            // In a block of its own: the builder and its parts are not kept in the future's
            // state across the forwarding await.
            let backend_req = {
                let method = match api.backend.method.as_deref() {
                    None | Some("ANY") => parts.method.clone(),
                    Some(m) => {
                        Method::from_bytes(m.as_bytes()).unwrap_or_else(|_| parts.method.clone())
                    }
                };
                let path = match path_prefix {
                    Some(p) => format!("{p}{}", mapped.path_and_query),
                    None => mapped.path_and_query,
                };
                let body = backend_body(mapped.body, buffered, stream);
                let mut builder = Request::builder().method(method).uri(path);
                if let Some(h) = builder.headers_mut() {
                    *h = mapped.headers;
                }
                builder.body(body).map_err(|e| {
                    tracing::warn!(error = %e, "backend request could not be built");
                    GatewayError::with_detail(ErrorCode::I400RU, "backend path")
                })?
            };
            let timeout = Duration::from_millis(u64::from(
                api.backend.timeout_ms.or(*timeout_ms).unwrap_or(10_000),
            ));
            let mut ctx = ForwardContext::new(timeout).with_original_scheme(if https {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            });
            if let Some(c) = client {
                ctx = ctx.with_client_addr(c.ip());
            }
            if let Some(h) = original_host {
                ctx = ctx.with_original_host(h);
            }
            // Inline, not boxed: the request's own future is over glibc's thread-cache limit
            // anyway, so a box of its own here was a second slow allocation per forwarded
            // request (callgrind: 650 instructions more for an anonymous request; a mock's
            // request, whose future now carries this one's room, costs 160 more instead).
            shared
                .forwarder
                .forward(backend_req, upstream, &ctx)
                .await
                .map_err(GatewayError::from)
        }
        BackendTarget::Plugged => {
            let mut mapped = mapped;
            let action = std::mem::replace(&mut mapped.body, crate::mapping::BodyAction::Keep);
            let body = backend_body(action, buffered, stream);
            let call = crate::backend::BackendCall {
                route,
                stage,
                parts: &parts,
                path_params: &path_params,
                mapped,
                body,
                request_id,
                caller: &caller,
                client_addr: client,
                timeout: Duration::from_millis(u64::from(api.backend.timeout_ms())),
                forwarder: &shared.forwarder,
            };
            shared.backends.dispatch(call).await
        }
    };
    trace.service_latency = Some(service_start.elapsed());
    res
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn insert_all_replaces_per_name_and_keeps_repeated_values() {
        let mut client = HeaderMap::new();
        client.insert("host", HeaderValue::from_static("a.example.com"));
        client.append("x-lang", HeaderValue::from_static("de"));
        client.append("x-lang", HeaderValue::from_static("fr"));
        client.insert("accept", HeaderValue::from_static("*/*"));
        let mut added = HeaderMap::new();
        added.insert("x-lang", HeaderValue::from_static("en"));
        added.append("x-multi", HeaderValue::from_static("1"));
        added.append("x-multi", HeaderValue::from_static("2"));

        // What mapping onto a copy of the client's headers gives: an insert per name.
        let mut expected = client.clone();
        expected.insert("x-lang", HeaderValue::from_static("en"));
        expected.insert("x-multi", HeaderValue::from_static("1"));
        expected.append("x-multi", HeaderValue::from_static("2"));

        super::insert_all(&mut client, added);
        assert_eq!(client, expected);
        let order: Vec<_> = client.keys().map(|k| k.as_str()).collect();
        assert_eq!(order, ["host", "x-lang", "accept", "x-multi"]);
    }
}
