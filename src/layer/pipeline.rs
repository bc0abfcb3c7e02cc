//! The request pipeline as named steps, each a function of the request's [`RequestContext`]:
//!
//! 1. [`route`]: stage, path confinement, one snapshot load, route lookup; builds the context
//!    (run synchronously in [`Gateway::call`](super::Gateway), which passes a miss on to the
//!    inner service);
//! 2. [`admit`] and [`read_body`]: header and body limits, protocol, buffering where a later
//!    step needs the body;
//! 3. [`authenticate`]: the [`Authenticator`](super::Authenticator) for `APP` APIs, then the
//!    request is trimmed to what was checked;
//! 4. [`policies`]: the traffic policies bound to the API in the stage: IP control, then
//!    throttling (CORS preflights are answered in [`route`], CORS headers added when the
//!    response is finished, the backend signature added in [`dispatch`]);
//! 5. [`map`]: parameter mapping onto the backend request;
//! 6. [`dispatch`]: mock, HTTP forwarding, or the pluggable [`Dispatch`](crate::backend::Dispatch).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, Request, Response, header};
use http_body::Body;
use jiff::Timestamp;

use super::auth::AuthRequest;
use super::layer::Shared;
use super::new_request_id;
use super::request_id::RequestId;
use super::service::ClientAddr;
use crate::backend::forward;
use crate::base::{AuthMethod, Caller, Host, Policy};
use crate::error::GatewayError;
use crate::error_code::ErrorCode;
use crate::mapping::MappedRequest;
use crate::model::{AuthType, Protocol, RequestMode, Stage};
use crate::policy::{BoundPolicies, CounterKey, PolicyRefusal, Window};
use crate::proxy::{BodyError, BoxError, GatewayBody, ProxyError, collect_limited};
use crate::routing::{BackendTarget, LiveRoute, RouteMatch, Snapshot};

/// Parsed once: a lookup or insertion by a `&str` parses and validates the name every time.
static X_CA_STAGE: HeaderName = HeaderName::from_static("x-ca-stage");
static X_CA_REQUEST_MODE: HeaderName = HeaderName::from_static("x-ca-request-mode");

/// Debug details for `X-Ca-Debug-Info` and the access log, filled in as the steps run.
#[derive(Default)]
pub(crate) struct Trace {
    pub(crate) auth: Option<&'static str>,
    pub(crate) app: Option<String>,
    /// Whether the caller may see `X-Ca-Debug-Info` (set once authentication passed).
    pub(crate) debug_allowed: bool,
    pub(crate) service_latency: Option<Duration>,
    /// The IP-control decision: whether the client address was admitted.
    pub(crate) ip_admitted: Option<bool>,
    /// The throttling decision, for the `RateLimit-*` headers.
    pub(crate) rate: Option<RateInfo>,
    /// The backend request was signed.
    pub(crate) signed: bool,
    /// The error the request was answered with, if any.
    pub(crate) error: Option<ErrorCode>,
    /// The traffic policy that refused the request, if one did.
    pub(crate) refused_by: Option<Policy>,
}

impl Trace {
    /// Records that `policy` refused the request: the one call the policies step makes, beside
    /// returning its error, for the policy-refusal metric and the access log.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "called by the policies step when its policies land"
        )
    )]
    pub(crate) fn refused_by(&mut self, policy: Policy) {
        self.refused_by = Some(policy);
    }
}

/// The policy a refusal's code belongs to, for a refusal whose step did not name it: the
/// catalogue's IP-control code (`A403IP`) and its throttling codes (`T429..`).
fn policy_of(code: ErrorCode) -> Option<Policy> {
    let s = code.as_str().as_bytes();
    match (s[0], code.status().as_u16(), &s[4..]) {
        (b'T', 429, _) => Some(Policy::Throttling),
        (b'A', 403, b"IP") => Some(Policy::IpControl),
        _ => None,
    }
}

/// What throttling decided: the tightest scope's limit and what is left of it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateInfo {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    pub(crate) reset_secs: u64,
    /// The code that refused the request, if it was refused.
    pub(crate) refused: Option<ErrorCode>,
}

/// What the gateway knows of one request it serves, built once by [`route`].
pub(crate) struct RequestContext {
    /// When the request arrived (before any body was read), for latencies.
    pub(crate) arrival: Instant,
    /// The same moment as wall-clock time: `AuthRequest.now` and `CaRequestHandleTime`.
    pub(crate) now: Timestamp,
    pub(crate) request_id: RequestId,
    pub(crate) stage: Stage,
    pub(crate) host: Option<Host>,
    /// The client: the socket peer, or whom a trusted proxy names
    /// ([`TrustedProxies`](super::TrustedProxies)).
    pub(crate) client: Option<SocketAddr>,
    /// The socket peer, appended to `X-Forwarded-For` on the way to the backend.
    pub(crate) peer: Option<SocketAddr>,
    /// Whether the client used HTTPS: what a trusted proxy says, else the connection's
    /// [`ConnectionInfo`](super::ConnectionInfo), else an `https` absolute-form target.
    pub(crate) https: bool,
    /// `X-Ca-Request-Mode: debug` was asked for.
    pub(crate) debug: bool,
    /// The snapshot the request is served from (credentials and grants).
    pub(crate) snapshot: std::sync::Arc<Snapshot>,
    /// The matched route and its path parameters.
    pub(crate) found: RouteMatch,
    /// The policies bound to the API in the stage.
    pub(crate) policies: Option<Arc<BoundPolicies>>,
    /// The request's `Origin`, kept only when a CORS policy is bound.
    pub(crate) origin: Option<HeaderValue>,
    pub(crate) trace: Trace,
}

impl RequestContext {
    /// The matched route.
    pub(crate) fn route(&self) -> &LiveRoute {
        self.found.route()
    }

    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// What the route step decided.
#[expect(
    clippy::large_enum_variant,
    reason = "returned once and moved straight into the boxed response future: a box of its own would be a second allocation per request"
)]
pub(crate) enum Routed {
    /// A published API matched: serve it.
    Serve(RequestContext),
    /// Refused before a route was chosen.
    Refuse(GatewayError),
    /// No published API matched: the inner service answers.
    FallThrough,
    /// No published API matched, but one would in another stage or with another method, and
    /// the layer was asked to say so ([`Miss::Log`](super::Miss) or `Miss::Answer`).
    NearMiss(Box<NearMiss>),
    /// A CORS preflight for a published path with a CORS policy: answered by the gateway.
    Preflight(Response<GatewayBody>),
}

/// A near miss, for its log line (and answer).
pub(crate) struct NearMiss {
    pub(crate) stage: Stage,
    pub(crate) hint: crate::routing::MissHint,
}

impl NearMiss {
    /// Writes the `stagegate::miss` event.
    pub(crate) fn log<B>(&self, req: &Request<B>, answered: bool) {
        let stages: Vec<&str> = self.hint.stages.iter().map(Stage::as_str).collect();
        tracing::warn!(
            target: "stagegate::miss",
            method = %req.method(),
            path = %crate::model::id::truncate(req.uri().path()),
            stage = %self.stage,
            published_in = %stages.join(","),
            methods = %self.hint.methods.join(","),
            answered,
            "no API for this request in its stage: {}{}",
            if stages.is_empty() {
                String::new()
            } else {
                format!(
                    "published with this method in {} (send X-Ca-Stage); ",
                    stages.join(", ")
                )
            },
            if self.hint.methods.is_empty() {
                String::new()
            } else {
                format!("this path takes {} in {}", self.hint.methods.join(", "), self.stage)
            },
        );
    }
}

/// Step 1: stage, path confinement and route lookup; builds the request's context.
///
/// `X-Ca-Stage` belongs to the gateway: a repeated or unknown stage is refused even for a
/// request that would fall through.
pub(crate) fn route<B>(
    shared: &Shared,
    req: &Request<B>,
    conn_client: Option<SocketAddr>,
) -> Routed {
    let arrival = Instant::now();
    // A repeated `X-Ca-Stage` is refused: the backend would see both values.
    let mut stages = req.headers().get_all(&X_CA_STAGE).iter();
    let stage = match (stages.next(), stages.next()) {
        (None, _) => Stage::RELEASE,
        (Some(_), Some(_)) => return Routed::Refuse(GatewayError::invalid_stage()),
        (Some(v), None) => match v.to_str().ok().map(Stage::parse) {
            Some(Ok(s)) => s,
            _ => return Routed::Refuse(GatewayError::invalid_stage()),
        },
    };
    // Path confinement before routing: a dot segment never reaches a route.
    let path_check = match crate::routing::check_request_path(req.uri().path()) {
        Ok(c) => c,
        Err(e) => return Routed::Refuse(GatewayError::invalid_path(e)),
    };
    // One snapshot per request, owned: the context keeps it across the authentication await
    // (credentials and grants), where arc-swap's borrowed guard should not be held.
    let snapshot = shared.handle.load_full();
    let host = Host::of(req.uri(), req.headers());
    if req.method() == Method::OPTIONS
        && let Some(res) = preflight(&snapshot, host.as_ref(), &stage, req)
    {
        return Routed::Preflight(res);
    }
    let Some(found) = snapshot.resolve(
        host.as_ref().and_then(Host::as_str),
        &stage,
        req.method(),
        req.uri().path(),
    ) else {
        if shared.miss != super::Miss::FallThrough
            && let Some(hint) = snapshot.miss_hint(
                host.as_ref().and_then(Host::as_str),
                &stage,
                req.method(),
                req.uri().path(),
            )
        {
            return Routed::NearMiss(Box::new(NearMiss { stage, hint }));
        }
        return Routed::FallThrough;
    };
    if path_check == crate::routing::PathCheck::EncodedSeparator
        && let Err(e) = crate::routing::encoded_separators_allowed(&found)
    {
        return Routed::Refuse(GatewayError::invalid_path(e));
    }
    let policies = snapshot
        .policies
        .get(found.route().api_id(), &stage)
        .cloned();
    let origin = policies
        .as_ref()
        .filter(|p| p.cors.is_some())
        .and_then(|_| req.headers().get(header::ORIGIN).cloned());
    let peer = client_addr(req).or(conn_client);
    let (client, forwarded_https) = shared.trusted_proxies.resolve(req.headers(), peer);
    Routed::Serve(RequestContext {
        arrival,
        // Taken here, before any body is read: the time the request arrived.
        now: Timestamp::now(),
        request_id: new_request_id(),
        stage,
        host,
        client,
        peer,
        https: forwarded_https.unwrap_or_else(|| is_https(req)),
        debug: req
            .headers()
            .get(&X_CA_REQUEST_MODE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"debug")),
        snapshot,
        found,
        policies,
        origin,
        trace: Trace::default(),
    })
}

/// A browser's CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
/// for a published path whose API has a CORS policy in the stage: the route is looked up with
/// the method the browser asks for, and the gateway answers 204 itself.
fn preflight<B>(
    snapshot: &Snapshot,
    host: Option<&Host>,
    stage: &Stage,
    req: &Request<B>,
) -> Option<Response<GatewayBody>> {
    let headers = req.headers();
    headers.get(header::ORIGIN)?;
    let method = Method::from_bytes(
        headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
            .as_bytes(),
    )
    .ok()?;
    let found = snapshot.resolve(
        host.and_then(Host::as_str),
        stage,
        &method,
        req.uri().path(),
    )?;
    let bound = snapshot.policies.get(found.route().api_id(), stage)?;
    let cors = bound.cors.as_ref()?;
    let mut res = Response::new(GatewayBody::empty());
    *res.status_mut() = http::StatusCode::NO_CONTENT;
    let allowed = cors.value.preflight(headers, res.headers_mut());
    let id = new_request_id();
    res.headers_mut()
        .insert(X_CA_REQUEST_ID_NAME.clone(), id.to_header_value());
    tracing::debug!(request_id = %id, api = %found.route().api().name, stage = %stage, policy = %cors.name, allowed, "cors preflight");
    Some(res)
}

/// Parsed once.
static X_CA_REQUEST_ID_NAME: HeaderName = HeaderName::from_static(crate::error::X_CA_REQUEST_ID);

/// Whether the request came over TLS: the [`ConnectionInfo`](super::ConnectionInfo) the server
/// inserted, else (no server said) an `https` absolute-form target.
fn is_https<B>(req: &Request<B>) -> bool {
    match req.extensions().get::<super::ConnectionInfo>() {
        Some(c) => c.is_tls(),
        None => req.uri().scheme_str() == Some("https"),
    }
}

/// The client's address from the request's extensions: a [`ClientAddr`], axum's
/// `ConnectInfo<SocketAddr>` (feature `axum`), or a plain [`SocketAddr`], in that order.
pub(crate) fn client_addr<B>(req: &Request<B>) -> Option<SocketAddr> {
    let ext = req.extensions();
    if let Some(c) = ext.get::<ClientAddr>() {
        return Some(c.0);
    }
    #[cfg(feature = "axum")]
    if let Some(c) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(c.0);
    }
    ext.get::<SocketAddr>().copied()
}

/// The request after its body was dealt with: the head, and the body buffered or streaming.
pub(crate) struct Incoming {
    parts: Parts,
    buffered: Option<Bytes>,
    stream: Option<GatewayBody>,
}

/// Runs the steps after [`route`] for a request whose API matched.
pub(crate) async fn run<B>(
    shared: &Shared,
    ctx: &mut RequestContext,
    req: Request<B>,
) -> Result<Response<GatewayBody>, GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    admit(shared, ctx, &req)?;
    let mut incoming = read_body(shared, ctx, req).await?;
    let caller = authenticate(shared, ctx, &mut incoming).await?;
    if let Err(e) = policies(shared, ctx, &caller).await {
        if ctx.trace.refused_by.is_none() {
            ctx.trace.refused_by = policy_of(e.error_code());
        }
        return Err(e);
    }
    let mapped = map(ctx, &mut incoming)?;
    dispatch(shared, ctx, incoming, mapped, &caller).await
}

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

/// Step 2a: the limits on URL plus headers and on a declared body, and the API's protocols.
fn admit<B>(shared: &Shared, ctx: &RequestContext, req: &Request<B>) -> Result<(), GatewayError> {
    let api = ctx.route().api();
    if header_bytes(req) > shared.header_limit {
        return Err(GatewayError::url_too_large());
    }
    let protocol = if ctx.https {
        Protocol::Https
    } else {
        Protocol::Http
    };
    if !api.request.protocols.contains(&protocol) {
        return Err(GatewayError::with_detail(
            ErrorCode::I403PT,
            if ctx.https { "HTTPS" } else { "HTTP" },
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
    Ok(())
}

/// Step 2b: buffers the body only where a later step needs it; else streams it, bounded.
async fn read_body<B>(
    shared: &Shared,
    ctx: &RequestContext,
    req: Request<B>,
) -> Result<Incoming, GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let route = ctx.route();
    let api = route.api();
    let needs_body = (api.auth == AuthType::App && shared.authenticator.needs_body(&parts, route))
        || crate::mapping::needs_form_body(api)
        // the backend signature covers the body's MD5 and form parameters
        || (ctx.policies.as_ref().is_some_and(|p| p.sign.is_some())
            && matches!(route.target, BackendTarget::Http { .. }));
    let (buffered, stream) = if needs_body {
        match collect_limited(body, shared.body_limit).await {
            Ok(b) => (Some(b), None),
            Err(BodyError::TooLarge { .. }) => return Err(GatewayError::body_too_large()),
            Err(_) => return Err(GatewayError::unreadable_body()),
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
    Ok(Incoming {
        parts,
        buffered,
        stream,
    })
}

/// Step 3: authentication (`APP` APIs), then the request is trimmed to what was checked.
async fn authenticate(
    shared: &Shared,
    ctx: &mut RequestContext,
    incoming: &mut Incoming,
) -> Result<Caller, GatewayError> {
    let route = ctx.found.route();
    let api = route.api();
    let needs_auth = api.auth == AuthType::App;
    let caller = if needs_auth {
        let r = shared
            .authenticator
            .authenticate(AuthRequest {
                parts: &incoming.parts,
                body: incoming.buffered.as_deref(),
                route,
                snapshot: &ctx.snapshot,
                now: ctx.now,
            })
            .await;
        match r {
            Ok(c) => c,
            Err(e) => {
                ctx.trace.auth = Some("REJECTED");
                return Err(e);
            }
        }
    } else {
        Caller::anonymous()
    };
    ctx.trace.auth = Some(caller.method.as_str());
    ctx.trace.app = caller.app_id.as_ref().map(ToString::to_string);
    ctx.trace.debug_allowed = needs_auth || shared.debug_anonymous;
    // The backend receives only what was checked: no AppCode, and of a signed query (or form)
    // only the signed (first) value of each key.
    crate::auth::prepare_for_backend(
        &mut incoming.parts,
        incoming.buffered.as_mut(),
        crate::auth::BackendView {
            signed_query_only: caller.method == AuthMethod::Signature,
            strip_appcode_header: !route.pass_appcode_to_backend,
            strip_appcode_query: !route.pass_appcode_to_backend && api.appcode_auth.allows_query(),
        },
    );
    Ok(caller)
}

/// Step 4: traffic policies, between authentication and mapping: IP control, then
/// throttling. Each sees the caller (app) and the context (client address, API, stage) and
/// refuses with its own code before the backend is called.
///
/// The counter answers from memory on the usual path; only a cluster-wide counter that holds
/// no tokens for the key answers with a future, awaited here (bounded by its own timeout).
async fn policies(
    shared: &Shared,
    ctx: &mut RequestContext,
    caller: &Caller,
) -> Result<(), GatewayError> {
    let Some(bound) = ctx.policies.as_deref() else {
        return Ok(());
    };
    if let Some(ip) = &bound.ip {
        // The request context's client: the socket peer (or what the host server put in
        // `ClientAddr`), or whom a trusted proxy names; never a header from anyone else.
        let admitted = ip
            .value
            .admits(ctx.client.map(|c| c.ip()), caller.app_id.as_ref());
        ctx.trace.ip_admitted = Some(admitted);
        if !admitted {
            return Err(PolicyRefusal::IpDenied.into());
        }
    }
    if let Some(t) = &bound.throttle {
        let now_ms = u64::try_from(ctx.now.as_millisecond()).unwrap_or(0);
        let window = Window::at(t.value.unit, now_ms);
        let reset_secs = window.reset_after_secs();
        let api_key = CounterKey {
            policy: &t.id,
            api: ctx.found.route().api_id(),
            stage: &ctx.stage,
            app: None,
        };
        // The app's scope first: the narrower one.
        let mut app_taken = None;
        if let Some(app) = caller.app_id.as_ref()
            && let Some((limit, code)) = t.value.app_limit(app)
        {
            let key = CounterKey {
                app: Some(app),
                ..api_key
            };
            let got = shared.counter.acquire(&key, window, limit).resolve().await;
            if !got.admitted {
                ctx.trace.rate = Some(RateInfo {
                    limit,
                    remaining: 0,
                    reset_secs,
                    refused: Some(code),
                });
                return Err(PolicyRefusal::throttled(code).into());
            }
            app_taken = Some((key, limit, got.remaining));
        }
        let limit = t.value.api_default;
        let got = shared
            .counter
            .acquire(&api_key, window, limit)
            .resolve()
            .await;
        if !got.admitted {
            if let Some((key, _, _)) = &app_taken {
                // Refused requests count against no scope.
                shared.counter.release(key, window);
            }
            ctx.trace.rate = Some(RateInfo {
                limit,
                remaining: 0,
                reset_secs,
                refused: Some(ErrorCode::T429PA),
            });
            return Err(PolicyRefusal::ApiThrottled.into());
        }
        // The headers tell the scope with the fewest requests left.
        let (limit, remaining) = match app_taken {
            Some((_, l, r)) if r < got.remaining => (l, r),
            _ => (limit, got.remaining),
        };
        ctx.trace.rate = Some(RateInfo {
            limit,
            remaining,
            reset_secs,
            refused: None,
        });
    }
    Ok(())
}

/// Step 5: parameter mapping onto the backend request.
fn map(ctx: &RequestContext, incoming: &mut Incoming) -> Result<MappedRequest, GatewayError> {
    let route = ctx.route();
    let api = route.api();
    let parts = &mut incoming.parts;
    let sys = crate::mapping::SystemValues {
        client_ip: ctx.client.map(|c| c.ip()),
        request_id: &ctx.request_id,
        stage: &ctx.stage,
        api_name: &api.name,
        app_id: ctx.trace.app.as_deref(),
        domain: ctx.host.as_ref().and_then(Host::as_str),
        scheme: ctx.scheme(),
        handle_time_ms: u64::try_from(ctx.now.as_millisecond()).unwrap_or(0),
    };
    let path_params: smallvec::SmallVec<[(&str, &str); 4]> = ctx.found.params().collect();
    let input = crate::mapping::MappingInput {
        method: &parts.method,
        request_path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        path_params: &path_params,
        rest: ctx.found.rest(),
        form_body: incoming.buffered.as_deref(),
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
    Ok(mapped)
}

/// Step 6: the backend call, timed for `ServiceLatency`.
async fn dispatch(
    shared: &Shared,
    ctx: &mut RequestContext,
    incoming: Incoming,
    mut mapped: MappedRequest,
    caller: &Caller,
) -> Result<Response<GatewayBody>, GatewayError> {
    let service_start = Instant::now();
    let route = ctx.found.route();
    let api = route.api();
    let Incoming {
        parts,
        buffered,
        stream,
    } = incoming;
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
            // Built before the await: the builder and its parts are not kept in the future's
            // state across the forwarding await.
            let sign = ctx.policies.as_ref().and_then(|p| p.sign.as_ref());
            let signed_body = sign.and_then(|_| match &mapped.body {
                crate::mapping::BodyAction::Replace(b) => Some(b.clone()),
                _ => buffered.clone(),
            });
            let body = backend_body(mapped.body, buffered, stream);
            let mut backend_req = forward::backend_request(
                api,
                &parts.method,
                mapped.path_and_query,
                mapped.headers,
                path_prefix.as_deref(),
                body,
            )
            .map_err(|e| {
                tracing::warn!(error = %e, "backend request could not be built");
                GatewayError::from(ProxyError::InvalidBackendUri(e))
            })?;
            if let Some(sign) = sign {
                let method = backend_req.method().clone();
                let uri = backend_req.uri().clone();
                crate::policy::sign_backend_request(
                    &sign.value,
                    &method,
                    uri.path(),
                    uri.query(),
                    backend_req.headers_mut(),
                    signed_body.as_deref(),
                );
                ctx.trace.signed = true;
            }
            let timeout = Duration::from_millis(u64::from(
                api.backend.timeout_ms.or(*timeout_ms).unwrap_or(10_000),
            ));
            let fwd = forward::forward_context(timeout, ctx.https, ctx.peer, ctx.host.as_ref());
            // Inline, not boxed: the request's own future is over glibc's thread-cache limit
            // anyway, so a box of its own here was a second slow allocation per forwarded
            // request (callgrind: 650 instructions more for an anonymous request; a mock's
            // request, whose future now carries this one's room, costs 160 more instead).
            shared
                .forwarder
                .forward(backend_req, upstream, &fwd)
                .await
                .map_err(GatewayError::from)
        }
        BackendTarget::Plugged => {
            let action = std::mem::replace(&mut mapped.body, crate::mapping::BodyAction::Keep);
            let body = backend_body(action, buffered, stream);
            let path_params: smallvec::SmallVec<[(&str, &str); 4]> = ctx.found.params().collect();
            let call = crate::backend::BackendCall {
                route,
                stage: &ctx.stage,
                parts: &parts,
                path_params: &path_params,
                mapped,
                body,
                request_id: &ctx.request_id,
                caller,
                client_addr: ctx.client,
                peer_addr: ctx.peer,
                https: ctx.https,
                timeout: api.backend.timeout(),
                forwarder: &shared.forwarder,
                host: ctx.host.as_ref(),
            };
            shared.backends.dispatch(call).await
        }
    };
    ctx.trace.service_latency = Some(service_start.elapsed());
    res
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
///
/// [`HeaderMap::insert`]: http::HeaderMap::insert
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

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use crate::base::Policy;
    use crate::error_code::ErrorCode;

    #[test]
    fn refusal_codes_name_their_policy() {
        assert_eq!(super::policy_of(ErrorCode::A403IS), None);
        assert_eq!(super::policy_of(ErrorCode::X503BZ), None);
        for code in ErrorCode::ALL {
            if let Some(p) = super::policy_of(*code) {
                let s = code.as_str();
                assert!(
                    (p == Policy::Throttling && s.starts_with("T429"))
                        || (p == Policy::IpControl && s == "A403IP"),
                    "{s}"
                );
            }
        }
        let mut trace = super::Trace::default();
        trace.refused_by(Policy::Cors);
        assert_eq!(trace.refused_by, Some(Policy::Cors));
    }

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
