//! The admin REST API: every console operation as JSON over HTTP, plus the debug (test-invoke)
//! endpoint and OpenAPI documents, as a tower `Service` that also mounts in axum.
//!
//! Every call needs `Authorization: Bearer <token>` (compared in constant time) except
//! `GET /health` and the web console's static files at `/console/` (they hold no data). Bodies are JSON objects with no unknown fields, at most 1 MiB by default.
//! Refusals answer `{"code","message"}`: 400 for bad input, 401 for a missing or wrong token,
//! 404 for unknown ids, 409 for refused operations, 413 for oversized bodies, 503 `Timeout` for
//! a call that took longer than the timeout (30 s by default). A refused call changes nothing.
//!
//! # Middleware
//!
//! The router carries [tower-http](https://docs.rs/tower-http) middleware, outermost first:
//!
//! 1. `SetSensitiveRequestHeadersLayer` marks [`SENSITIVE_HEADERS`] (`Authorization` with the
//!    admin token or an AppCode, `Proxy-Authorization`, `X-Ca-Signature`) as sensitive, so no
//!    log prints their values.
//! 2. `SetRequestIdLayer` / `PropagateRequestIdLayer` on `X-Request-Id`: a request id sent by the
//!    client (or a proxy in front) is kept, else one is made in the gateway's format (an
//!    upper-case UUID, as on `X-Ca-Request-Id`); every response carries it. The admin API uses
//!    `X-Request-Id`, not `X-Ca-Request-Id`: the latter is the data plane's, which the gateway
//!    always makes itself and never takes from a client.
//! 3. `TraceLayer`: a span `admin` (target `stagegate::admin`) with the method, path and request
//!    id, the request headers at `DEBUG` and the status and latency at `INFO`.
//! 4. The token check, then `RequestBodyLimitLayer` (the body limit, checked on
//!    `Content-Length` and while the body streams) and `TimeoutLayer` (the timeout).
//!
//! A handler runs as a task of its own: a timed-out call (or one whose client went away) is
//! answered at once, but a change it was making is still applied whole, never cut off half way.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /health` | 200 `{"status":"ok","store":"reachable",...}` with the node's freshness (`applied_revision`, `store_revision`, `behind`, `last_applied_at`, `since_applied_ms`, `since_caught_up_ms`, `max_staleness_ms`); 503 `{"status":"failing","store":"disk full"}` (or `"I/O error"`) while the store's writes fail, and 503 `"status":"stale"` once the node has not been known current for longer than [`AdminApi::with_max_staleness`] (`"store":"unreachable"` when the store cannot be reached); no token needed |
//! | `POST /backends`, `GET /backends`, `GET`/`PATCH`/`DELETE /backends/{id}` | backend services |
//! | `PUT`/`GET`/`DELETE /backends/{id}/stages/{stage}` | a backend's definition in a stage, with per-API reports; `?dry_run=true` on `PUT` and `DELETE` answers the same report and changes nothing |
//! | `GET /backends/{id}/apis?stage=` | the APIs using a backend |
//! | `POST`/`GET /vpc-access`, `GET`/`PUT`/`DELETE /vpc-access/{id}` | VPC access authorizations |
//! | `POST`/`GET /groups`, `GET`/`PUT`/`DELETE /groups/{id}`, `GET /groups/{id}/openapi?stage=` | groups and their API documentation |
//! | `PUT`/`GET`/`DELETE /groups/{id}/domains/{domain}/certificate`, `GET /groups/{id}/certificates` | a group domain's TLS certificate: `PUT` a body `{"certificate": PEM chain, "private_key": PEM}` (checked: parses, key matches, valid now, covers the domain, the domain is the group's; 400 naming the problem otherwise), answered with its metadata (names, validity, SHA-256 fingerprint) as `GET` is; no read ever returns the key; `DELETE` answers 204 |
//! | `POST /apis`, `GET /apis?group_id=`, `GET`/`PUT`/`DELETE /apis/{id}` | API drafts |
//! | `POST /apis/{id}/publish`, `/unpublish`, `/rollback`, `GET /apis/{id}/deployments` | publishing |
//! | `POST`/`GET /apis/{id}/authorizations`, `DELETE /apis/{id}/authorizations/{app_id}?stage=` | grants |
//! | `POST /apis/{id}/debug` | sign as an app and call the API through the real data plane |
//! | `POST /apps`, `GET /apps?name=`, `GET`/`PATCH`/`DELETE /apps/{id}` | apps |
//! | `POST /apps/{id}/keys`, `DELETE /apps/{id}/keys/{key}`, `POST /apps/{id}/keys/{key}/rotate` | key pairs |
//! | `POST`/`DELETE /apps/{id}/codes`, `GET /apps/{id}/authorizations` | AppCodes, an app's grants |
//! | `POST`/`GET /access-keys`, `DELETE /access-keys/{id}` | CloudAPI access key pairs (feature `cloudapi`, with [`AdminApi::with_access_keys`]); the secret is in the `POST` answer only |
//! | `GET /console/` | the web console (static files embedded in the binary, no token needed; see [`ASSETS`]) |
//! | `GET /export`, `POST /import` | the whole configuration as one JSON document (by id, with history) |
//! | `GET /config`, `POST /config/plan?scope=`, `POST /config/apply?scope=&revision=` | the declarative configuration document (by name, no secrets): export, plan, apply; JSON, or TOML with `Content-Type: application/toml` (feature `toml`); `scope` is `whole` (default: what the document does not name is deleted) or `named`; apply answers the plan applied, 409 `PlanStale` when `revision` (the plan's) is no longer current, 400 `InvalidConfig` listing every error of the document |
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use stagegate::{ControlPlane, GatewayLayer};
//! use stagegate::admin::AdminApi;
//! use stagegate::model::Secret;
//! use stagegate::store::MemoryStore;
//! use tower::ServiceExt;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
//! let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
//! let admin = AdminApi::new(control, Secret::new("s3cret-token"), gateway);
//! let res = admin
//!     .router()
//!     .oneshot(http::Request::get("/backends").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), http::StatusCode::UNAUTHORIZED);
//! # });
//! ```

#[cfg(feature = "cloudapi")]
mod access_keys;
mod console;
mod debug;
mod error;
mod openapi;
mod routes;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Instrument as _;

pub use console::{ASSETS, CONTENT_SECURITY_POLICY};
pub use debug::{DebugAuth, DebugRequest};
pub use error::AdminError;
pub use openapi::openapi_document;

use crate::control::ControlPlane;
use crate::layer::GatewayService;
use crate::model::Secret;

/// The default largest admin request body: 1 MiB.
pub const DEFAULT_ADMIN_BODY_LIMIT: usize = 1024 * 1024;

/// The default longest an admin call may take before it is answered 503 `Timeout`: 30 s.
pub const DEFAULT_ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The default [`AdminApi::with_max_staleness`]: 10 s.
///
/// # Examples
///
/// ```
/// assert_eq!(stagegate::admin::DEFAULT_MAX_STALENESS.as_secs(), 10);
/// ```
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(10);

/// The request headers whose values never show in a log: `Authorization` (the admin token, or
/// an `APPCODE`), `Proxy-Authorization` and `X-Ca-Signature`.
///
/// The admin API marks them sensitive itself. Mark them too in front of any tracing you add
/// around the data plane (an AppCode can also be sent as the `AppCode` query parameter, so do
/// not log a data-plane request's query string either).
///
/// # Examples
///
/// ```
/// use stagegate::admin::SENSITIVE_HEADERS;
/// use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
/// let layer = SetSensitiveRequestHeadersLayer::new(SENSITIVE_HEADERS);
/// # let _ = layer;
/// assert!(SENSITIVE_HEADERS.contains(&http::header::AUTHORIZATION));
/// ```
pub const SENSITIVE_HEADERS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("x-ca-signature"),
];

/// The admin API's request-id header.
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The admin REST API over a [`ControlPlane`], with the data plane it debugs through.
///
/// Cloning is a reference-count bump.
///
/// # Examples
///
/// Mounted next to other routes in an axum app:
///
/// ```
/// use std::sync::Arc;
/// use stagegate::{ControlPlane, GatewayLayer};
/// use stagegate::admin::AdminApi;
/// use stagegate::model::Secret;
/// use stagegate::store::MemoryStore;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
/// let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
/// let admin = AdminApi::new(control, Secret::generate(), gateway)
///     .with_body_limit(64 * 1024)
///     .with_timeout(std::time::Duration::from_secs(10));
/// let app: axum::Router = axum::Router::new().nest("/admin", admin.router());
/// # let _ = app;
/// # });
/// ```
#[derive(Clone)]
pub struct AdminApi {
    inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) control: Arc<ControlPlane>,
    pub(crate) token: Secret,
    pub(crate) gateway: GatewayService,
    pub(crate) body_limit: usize,
    pub(crate) timeout: Duration,
    #[cfg(feature = "cloudapi")]
    pub(crate) access_keys: Option<crate::cloudapi::AccessKeys>,
    pub(crate) max_staleness: Duration,
}

pub(crate) type AdminState = Arc<Inner>;

impl fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminApi")
            .field("control", &self.inner.control)
            .field("body_limit", &self.inner.body_limit)
            .field("timeout", &self.inner.timeout)
            .field("max_staleness", &self.inner.max_staleness)
            .finish_non_exhaustive()
    }
}

impl AdminApi {
    /// The admin API of `control`, guarded by `token`, debugging through `gateway` (the same
    /// data-plane service that serves clients, e.g. `GatewayLayer::new(..).standalone()`).
    #[must_use]
    pub fn new(control: Arc<ControlPlane>, token: Secret, gateway: GatewayService) -> Self {
        Self {
            inner: Arc::new(Inner {
                control,
                token,
                gateway,
                body_limit: DEFAULT_ADMIN_BODY_LIMIT,
                timeout: DEFAULT_ADMIN_TIMEOUT,
                #[cfg(feature = "cloudapi")]
                access_keys: None,
                max_staleness: DEFAULT_MAX_STALENESS,
            }),
        }
    }

    /// The largest request body accepted (413 beyond); default [`DEFAULT_ADMIN_BODY_LIMIT`].
    #[must_use]
    pub fn with_body_limit(self, bytes: usize) -> Self {
        self.with(|i| i.body_limit = bytes)
    }

    /// The longest a call may take, body included, before it is answered 503 `Timeout`;
    /// default [`DEFAULT_ADMIN_TIMEOUT`]. A change the call was making is still applied whole.
    /// It bounds `POST /apis/{id}/debug` too, which waits for the backend: set it above the
    /// longest backend timeout (`backend.timeout_ms`, up to 10 minutes) you debug.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use stagegate::{ControlPlane, GatewayLayer};
    /// use stagegate::admin::AdminApi;
    /// use stagegate::model::Secret;
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    /// let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
    /// let admin = AdminApi::new(control, Secret::generate(), gateway).with_timeout(Duration::from_secs(5));
    /// # let _ = admin;
    /// # });
    /// ```
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with(|i| i.timeout = timeout)
    }

    /// Manages the CloudAPI endpoint's access key pairs (feature `cloudapi`):
    /// `POST /access-keys` creates a pair and shows its secret once, `GET /access-keys` lists
    /// the ids, `DELETE /access-keys/{id}` removes one. Pass the same set as to
    /// [`CloudApi::new`](crate::cloudapi::CloudApi::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use stagegate::{ControlPlane, GatewayLayer, admin::AdminApi, cloudapi::AccessKeys};
    /// use stagegate::{model::Secret, store::MemoryStore};
    /// use tower::ServiceExt;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    /// let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
    /// let keys = AccessKeys::new();
    /// let admin = AdminApi::new(control, Secret::new("s3cret-token"), gateway).with_access_keys(keys.clone());
    /// let req = http::Request::post("/access-keys")
    ///     .header("authorization", "Bearer s3cret-token")
    ///     .body(axum::body::Body::empty())
    ///     .unwrap();
    /// let res = admin.router().oneshot(req).await.unwrap();
    /// assert_eq!(res.status(), http::StatusCode::CREATED);
    /// assert_eq!(keys.ids().len(), 1);
    /// # });
    /// ```
    #[cfg(feature = "cloudapi")]
    #[must_use]
    pub fn with_access_keys(self, keys: crate::cloudapi::AccessKeys) -> Self {
        self.with(|i| i.access_keys = Some(keys))
    }

    /// How long this node may go without confirming it has every change in the store before
    /// `GET /health` answers 503; default [`DEFAULT_MAX_STALENESS`]. The node counts as current
    /// whenever the store answers and the node has applied its latest revision; while it is
    /// behind, or the store cannot be reached, health stays 200 for this long after the node
    /// was last known to be current (so a brief blip does not take every node out of a load
    /// balancer at once), then turns 503. Keep it above the follower's poll interval.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use stagegate::{ControlPlane, GatewayLayer, admin::AdminApi, model::Secret, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    /// let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
    /// let admin = AdminApi::new(control, Secret::generate(), gateway)
    ///     .with_max_staleness(Duration::from_secs(5));
    /// # let _ = admin;
    /// # });
    /// ```
    #[must_use]
    pub fn with_max_staleness(self, max: Duration) -> Self {
        self.with(|i| i.max_staleness = max)
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| (*shared).clone());
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The control plane.
    #[must_use]
    pub fn control(&self) -> &Arc<ControlPlane> {
        &self.inner.control
    }

    /// The routes as an axum [`Router`], token check and middleware included (see the
    /// [module docs](self#middleware)), ready to serve or to `nest`.
    pub fn router(&self) -> Router {
        routes::router(Arc::clone(&self.inner))
            .fallback(fallback)
            .layer(axum::middleware::from_fn(detach))
            .layer(TimeoutLayer::with_status_code(
                TIMEOUT_STATUS,
                self.inner.timeout,
            ))
            .layer(RequestBodyLimitLayer::new(self.inner.body_limit))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&self.inner),
                authenticate,
            ))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(admin_span)
                    .on_request(log_request)
                    .on_response(
                        DefaultOnResponse::new()
                            .level(tracing::Level::INFO)
                            .latency_unit(tower_http::LatencyUnit::Micros),
                    ),
            )
            .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
            .layer(SetRequestIdLayer::new(
                X_REQUEST_ID.clone(),
                GatewayFormatRequestId,
            ))
            .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE_HEADERS))
    }

    /// The admin API as a tower `Service<http::Request<B>>` (an axum [`Router`] is one).
    pub fn into_service(self) -> Router {
        self.router()
    }
}

async fn fallback(uri: http::Uri) -> AdminError {
    AdminError::NoRoute(crate::model::id::truncate(uri.path()))
}

/// Checks the bearer token on every call but `GET /health` and the console's static files;
/// refuses oversized bodies early.
async fn authenticate(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let public = (req.method() == Method::GET && req.uri().path() == "/health")
        || console::is_public(req.method(), req.uri().path());
    if !public {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .is_some_and(|t| s.token.ct_eq_str(t));
        if !ok {
            return AdminError::Unauthorized.into_response();
        }
    }
    let res = next.run(req).await;
    if res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    {
        return res;
    }
    // Refusals made by axum (405) and tower-http (413 on `Content-Length`, the timeout) come
    // without a body of our shape: answer them as every other refusal.
    let refusal = match res.status() {
        StatusCode::METHOD_NOT_ALLOWED => AdminError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => AdminError::PayloadTooLarge {
            limit: s.body_limit,
        },
        TIMEOUT_STATUS => AdminError::Timeout { after: s.timeout },
        _ => return res,
    };
    let allow = res.headers().get(header::ALLOW).cloned();
    let mut res = refusal.into_response();
    if let Some(a) = allow {
        res.headers_mut().insert(header::ALLOW, a);
    }
    res
}

/// The status tower-http's timeout answers with (then given the `Timeout` body).
const TIMEOUT_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// Runs the handler as a task of its own, so that a timeout (or a client going away) only
/// stops the wait for its answer: a change it is making is applied whole, never cut off
/// between the store's commit and the snapshot swap.
async fn detach(req: Request, next: Next) -> Response {
    match tokio::spawn(next.run(req).in_current_span()).await {
        Ok(res) => res,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down.
        Err(_) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"code": "ShuttingDown", "message": "the server is shutting down"}),
        ),
    }
}

/// Request ids in the gateway's format (an upper-case UUID), for `X-Request-Id`.
#[derive(Clone, Copy)]
struct GatewayFormatRequestId;

impl MakeRequestId for GatewayFormatRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        Some(RequestId::new(
            crate::layer::new_request_id().to_header_value(),
        ))
    }
}

/// The admin API's trace span: method, path (never the query) and request id.
fn admin_span<B>(req: &http::Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        target: "stagegate::admin",
        "admin",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %id,
    )
}

/// The request's headers at `DEBUG`; [`SENSITIVE_HEADERS`] print as `Sensitive`.
fn log_request<B>(req: &http::Request<B>, _: &tracing::Span) {
    tracing::debug!(target: "stagegate::admin", headers = ?req.headers(), "request");
}

/// A JSON body: at most the configured limit, an object of exactly the expected shape. An
/// empty body reads as `{}`.
pub(crate) struct Json<T>(pub(crate) T);

/// Reads the whole body; more than `limit` bytes (cut off by the router's
/// `RequestBodyLimitLayer`) is `PayloadTooLarge`.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, AdminError> {
    match body.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if over_limit(&e) => Err(AdminError::PayloadTooLarge { limit }),
        Err(e) => Err(AdminError::InvalidJson(format!(
            "the body could not be read: {e}"
        ))),
    }
}

/// Whether `e`, or an error it wraps, is the body limit's.
fn over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // Typed structs refuse a repeated field, but maps and free-form values (a PATCH body, a stage
    // definition, headers) would keep the last one: refuse repeated keys at every depth first,
    // so every body means one thing.
    crate::json::check_unique_keys(bytes).map_err(|e| AdminError::InvalidJson(e.to_string()))?;
    serde_json::from_slice(bytes).map_err(|e| AdminError::InvalidJson(e.to_string()))
}

impl<T: DeserializeOwned + Send> FromRequest<AdminState> for Json<T> {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &AdminState) -> Result<Self, AdminError> {
        let bytes = read_body(req.into_body(), state.body_limit).await?;
        parse_json(&bytes).map(Json)
    }
}

/// A JSON response.
pub(crate) fn reply<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut res = (status, body).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "admin: response could not be serialized");
            let mut res = (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"code":"InternalError","message":"the response could not be serialized"}"#,
            )
                .into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
    }
}

/// The query string as pairs, refusing names outside `allowed`.
pub(crate) fn query_pairs(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, AdminError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (k, _) in &pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(AdminError::InvalidParameter(format!(
                "unknown query parameter `{}`",
                crate::model::id::truncate(k)
            )));
        }
    }
    Ok(pairs)
}

#[cfg(all(test, feature = "redb"))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use http_body_util::BodyExt as _;
    use serde_json::{Value, json};
    use tower::ServiceExt as _;

    use super::AdminApi;
    use crate::store::RedbStore;
    use crate::{ControlPlane, GatewayLayer, model::Secret};

    async fn call(
        app: &axum::Router,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Bearer test-token-0123456789")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            ))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn health_turns_stale_once_the_node_is_behind_for_longer_than_the_bound() {
        let store: Arc<dyn crate::store::Store> = Arc::new(crate::store::MemoryStore::new());
        let writer = ControlPlane::open_shared(Arc::clone(&store)).await.unwrap();
        let reader = Arc::new(ControlPlane::open_shared(store).await.unwrap());
        let gateway = GatewayLayer::new(reader.snapshot_handle()).standalone();
        let app = AdminApi::new(
            Arc::clone(&reader),
            Secret::new("test-token-0123456789"),
            gateway,
        )
        .with_max_staleness(std::time::Duration::from_millis(50))
        .router();
        let (status, health) = call(&app, "GET", "/health", None).await;
        assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
        assert_eq!(health["max_staleness_ms"], json!(50), "{health}");

        // Another node commits; this one (no follower) falls behind.
        writer
            .create_group(serde_json::from_value(json!({"name": "group_one"})).unwrap())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        let (status, health) = call(&app, "GET", "/health", None).await;
        assert_eq!(
            (status, &health["status"]),
            (503, &json!("stale")),
            "{health}"
        );
        assert_eq!(health["behind"], json!(1), "{health}");
        assert_eq!(health["store"], json!("reachable"), "{health}");
        assert_eq!(health["applied_revision"], json!(0), "{health}");
        assert!(
            health["since_caught_up_ms"].as_u64().unwrap() >= 50,
            "{health}"
        );

        // Caught up: healthy again.
        reader.follow().await.unwrap();
        let (status, health) = call(&app, "GET", "/health", None).await;
        assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
        assert_eq!(
            (&health["applied_revision"], &health["behind"]),
            (&json!(1), &json!(0)),
            "{health}"
        );
    }

    #[tokio::test]
    async fn a_full_disk_answers_507_and_fails_health_until_a_write_succeeds_again() {
        let path = std::env::temp_dir().join(format!(
            "stagegate-admin-full-{}-{}.redb",
            std::process::id(),
            fastrand::u32(..)
        ));
        let (store, full) = RedbStore::open_on_disk_that_fills(&path).unwrap();
        let control = Arc::new(ControlPlane::open(store).await.unwrap());
        let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
        let app = AdminApi::new(
            Arc::clone(&control),
            Secret::new("test-token-0123456789"),
            gateway,
        )
        .router();
        let (status, health) = call(&app, "GET", "/health", None).await;
        assert_eq!(
            (status, &health["status"], &health["store"]),
            (200, &json!("ok"), &json!("reachable")),
            "{health}"
        );

        full.store(true, Ordering::SeqCst);
        let (status, body) =
            call(&app, "POST", "/groups", Some(json!({"name": "group_one"}))).await;
        assert_eq!(status, 507, "{body}");
        assert_eq!(body["code"], "InsufficientStorage", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("the disk is full"), "{message}");
        assert_eq!(
            call(&app, "GET", "/health", None).await,
            (503, json!({"status": "failing", "store": "disk full"}))
        );

        // Space again: the next write succeeds without a restart, and health recovers.
        full.store(false, Ordering::SeqCst);
        let (status, body) =
            call(&app, "POST", "/groups", Some(json!({"name": "group_two"}))).await;
        assert_eq!(status, 201, "{body}");
        let (status, health) = call(&app, "GET", "/health", None).await;
        assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
        assert_eq!(health["applied_revision"], json!(1), "{health}");
        assert_eq!(health["behind"], json!(0), "{health}");
        let (_, groups) = call(&app, "GET", "/groups", None).await;
        let text = groups.to_string();
        assert!(
            text.contains("group_two") && !text.contains("group_one"),
            "{text}"
        );
        drop((app, control));
        let _ = std::fs::remove_file(&path);
    }
}
