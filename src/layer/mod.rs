//! The tower integration: [`GatewayLayer`] and [`Gateway`], the data plane that any host server
//! mounts.
//!
//! A request goes: group (by the authority of an absolute-form target, else `Host`) → stage
//! (`X-Ca-Stage`, default `RELEASE`) → path confinement → route (one snapshot load) →
//! authentication → policies → parameter mapping → backend → response. A request that
//! matches no published API falls through to the inner service; the standalone
//! [`GatewayService`] answers it with `I404NF`. Every refusal is a response carrying
//! `X-Ca-Error-Code` and `X-Ca-Error-Message`; the service's error type is the inner service's.
//!
//! `X-Ca-Stage` belongs to the gateway: a request carrying an unknown stage name is answered
//! `I400SG` even when it would otherwise fall through. A request whose path and stage match a
//! published API but with another method falls through too (the inner app may serve it),
//! except a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) for an
//! API with a CORS policy in the stage, which the gateway answers itself.
//! [`GatewayLayer::with_miss`] logs or answers such near misses (and requests for an API
//! published only in another stage) instead.
//!
//! The client's address comes from [`ClientAddr`], axum's `ConnectInfo<SocketAddr>` (feature
//! `axum`) or a `SocketAddr` extension; the scheme from [`ConnectionInfo`].
//!
//! Path confinement (see [`check_request_path`](crate::routing::check_request_path)): a path
//! holding a dot segment (`.`, `..`, raw or percent-encoded in any case) or a raw backslash is
//! answered `I400PA` before routing, whether or not an API would match it. An encoded slash or
//! backslash (`%2F`, `%5C`) in a path that matches a published API is answered `I400PA` unless
//! it sits in a `[param]` declared with
//! [`allow_encoded_slash`](crate::model::RequestParameter::allow_encoded_slash); a path that matches no
//! API falls through with it unchanged.
//!
//! # Own code and tower-http
//!
//! The admin API (feature `admin`) is built on tower-http's middleware. This layer keeps its own
//! code where tower-http cannot give the client's wire behaviour or would add per-request cost:
//! the body limit (`I413RL`, and only
//! when a signature or mapping needs the body buffered; `RequestBodyLimitLayer` answers a bare
//! 413 for every route), the header limit (`I413UL`), backend timeouts (per API, answered with
//! an error code; `TimeoutLayer` has one duration and a bare status), the request id
//! (`X-Ca-Request-Id`, always made by the gateway, never taken from the client as
//! `SetRequestIdLayer` does, held on the stack and also written into error responses and the
//! access log) and the access log (one `stagegate::access` event carrying the group, API, stage,
//! app and error code, which only the pipeline knows; `TraceLayer` would add a span and two
//! events per request without them). To trace the data plane as well, wrap it in `TraceLayer`
//! behind `SetSensitiveRequestHeadersLayer::new(stagegate::admin::SENSITIVE_HEADERS)`, and do not
//! log the query string: an AppCode may travel in it.
//!
//! # Examples
//!
//! Mounted in an axum app:
//!
//! ```
//! use axum::{Router, routing::get};
//! use stagegate::{ControlPlane, GatewayLayer};
//! use stagegate::store::MemoryStore;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let control = ControlPlane::open(MemoryStore::new()).await.unwrap();
//! let app: Router = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(GatewayLayer::new(control.snapshot_handle()));
//! # });
//! ```
//!
//! # Layout
//!
//! As tower-http lays out a middleware: the [`Layer`](tower_layer::Layer) in `layer.rs`
//! ([`GatewayLayer`]), the [`Service`](tower_service::Service) in `service.rs` ([`Gateway`]),
//! and the request pipeline in `pipeline.rs` as named steps, each a function of one request
//! context built in `Gateway::call` (arrival time, request id, stage, host, client address,
//! scheme, matched route): route → admit and read the body → authenticate → policies (IP control,
//! throttling; see [`policy`](crate::policy)) → map → dispatch. HTTP forwarding, inline or from a pluggable
//! backend, goes through one path in `backend/`.

mod app_auth;
mod auth;
#[expect(
    clippy::module_inception,
    reason = "the Layer in layer.rs, the Service in service.rs, as tower-http lays out a middleware"
)]
mod layer;
mod pipeline;
mod proxies;
mod request_id;
mod service;

pub use crate::base::{AuthMethod, Caller};
pub use crate::error::{GatewayError, X_CA_ERROR_CODE, X_CA_ERROR_MESSAGE, X_CA_REQUEST_ID};
pub use app_auth::AppAuthenticator;
pub use auth::{AuthRequest, Authenticator};
pub use layer::{DEFAULT_BODY_LIMIT, DEFAULT_HEADER_LIMIT, GatewayLayer, Miss};
pub use proxies::{TrustedProxies, TrustedProxiesError};
pub(crate) use request_id::new_request_id;
pub use service::{ClientAddr, ConnectionInfo, Gateway, GatewayService, NotFound, ResponseFuture};
