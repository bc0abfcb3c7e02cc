//! An embeddable API gateway for axum and hyper.
//!
//! stagegate manages typed **backend services** with one definition per **stage** (`TEST`,
//! `PRE`, `RELEASE`), **APIs** that are published as snapshots into stages, and **apps** that
//! call them with AppCodes or HMAC signatures — the model and wire protocol of Alibaba Cloud API
//! Gateway — and serves them from a tower [`Layer`](tower_layer::Layer) you mount in your own
//! server.
//!
//! - [`ControlPlane`] performs every console operation on a [`Store`](store::Store), with the
//!   cascades of the model: changing a backend's definition in a stage re-points every API
//!   published there; deleting it unpublishes them.
//! - [`GatewayLayer`] / [`Gateway`] is the data plane. It reads one immutable [`Snapshot`] per
//!   request through a lock-free [`SnapshotHandle`]; every change is visible to the next request.
//!
//! # Which module for what
//!
//! | you want to | reach for |
//! |---|---|
//! | mount the gateway in axum or hyper | [`GatewayLayer`], [`Gateway`], [`ClientAddr`] ([`layer`]) |
//! | serve it on a socket facing untrusted clients | `serve::Server` (feature `serve`) |
//! | create backends, groups, APIs, apps; publish; import and export | [`ControlPlane`] ([`control`]) |
//! | the domain types (backend kinds, stage definitions, APIs, apps) | [`model`] |
//! | persist the configuration, or write your own store | [`store`]: `MemoryStore`, `RedbStore` (feature `redb`), `SealedStore` (secrets sealed at rest, feature `sealed`), the [`Store`](store::Store) trait and its conformance suite (feature `conformance`) |
//! | sign requests as a client, or verify signatures yourself; share nonces between nodes | [`auth`] ([`Signer`], [`verify`], `RedisReplayGuard` with feature `redis`) |
//! | plug in a function runtime, object store, event sink or registry | [`backend`] |
//! | every error code a caller can receive, with its status and message | [`error_code`] |
//! | the admin REST API (the debug endpoint, the web console at `/console/`) | `admin::AdminApi` (feature `admin`) |
//! | Prometheus metrics of the data plane, the access log | `metrics::GatewayMetrics` (feature `metrics`); the `stagegate::access` tracing target ([`layer`]) |
//! | route lookup and the lock-free snapshot | [`routing`] |
//! | parameter mapping and upstream forwarding, for custom dispatchers | [`mapping`], [`proxy`] |
//!
//! A request goes: context (arrival time, request id, client address, host, stage) → path
//! confinement → route (one snapshot load) → authenticate → policies → map → dispatch by the
//! stage definition's backend kind; every refusal carries `X-Ca-Error-Code` and
//! `X-Ca-Error-Message` from [`error_code`]. `SECURITY.md` at the repository root states the
//! threat model and the defaults.
//!
//! # A plain hyper server
//!
//! The bare accept loop below has no timeouts, no connection cap and no graceful shutdown; for
//! a server facing untrusted clients use `stagegate::serve::Server` (feature `serve`), which
//! adds them.
//!
//! ```no_run
//! use hyper_util::rt::{TokioExecutor, TokioIo};
//! use hyper_util::service::TowerToHyperService;
//! use stagegate::{ClientAddr, ControlPlane, GatewayLayer, store::MemoryStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let control = ControlPlane::open(MemoryStore::new()).await?;
//! let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (stream, peer) = listener.accept().await?;
//!     let svc = tower::ServiceExt::map_request(gateway.clone(), move |mut req: http::Request<_>| {
//!         req.extensions_mut().insert(ClientAddr(peer));
//!         req
//!     });
//!     tokio::spawn(async move {
//!         let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
//!             .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
//!             .await;
//!     });
//! }
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `admin` | `stagegate::admin`: the admin REST API as a tower `Service` (an axum `Router`, no server, no extra axum features) |
//! | `redb` | `stagegate::store::RedbStore`: the embedded, durable store (needs Rust 1.90) |
//! | `postgres` | `stagegate::store::PostgresStore`: a store shared by several gateway nodes on PostgreSQL (tokio-postgres, deadpool-postgres, TLS through rustls) |
//! | `conformance` | `store::conformance` and `store_conformance!`, for `Store` adapter authors |
//! | `serve` | `stagegate::serve`: a hardened server loop (timeouts, connection cap, accept back-off, graceful shutdown) |
//! | `oss-s3` | S3-compatible object stores for OSS backends (`object_store`'s `aws` support) |
//! | `redis` | `stagegate::auth::RedisReplayGuard`: one nonce store for every gateway node, in Redis, failing closed (`X503NS`) |
//! | `sealed` | `stagegate::store::SealedStore`: app secrets and AppCodes sealed at rest in any store |
//! | `metrics` | `stagegate::metrics`: Prometheus metrics (prometheus-client) rendered as text for a listener of your own |
//!
//! No feature is on by default: an application that embeds only the data plane gets neither
//! axum nor redb. The crate's own tests, examples and benches turn `admin`, `redb`, `postgres` and
//! `conformance` on (through a dev-dependency on itself), so `cargo test` and
//! `cargo run --example gateway` need no flags.
//!
//! [`Snapshot`]: routing::Snapshot

#[cfg(feature = "admin")]
pub mod admin;
pub mod auth;
pub mod backend;
mod base;
pub mod control;
mod error;
pub mod error_code;
pub mod layer;
pub mod mapping;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod model;
pub mod proxy;
pub mod routing;
#[cfg(feature = "serve")]
pub mod serve;
pub mod store;
mod swar;

pub use auth::{
    AuthError, DEFAULT_MAX_SKEW_MS, DEFAULT_NONCE_TTL_MS, MAX_NONCE_LEN, MAX_SIGNED_HEADERS,
    MemoryReplayGuard, ReplayError, ReplayFuture, ReplayGuard, SignatureChecked, SignatureMethods,
    SignaturePolicy, Signed, Signer, Verified, appcode_from_request, appcode_matches,
    check_signature, is_form, sign, string_to_sign, verify, verify_signature,
};
pub use control::{
    ApiReport, AppPatch, BackendPatch, ConfigExport, ControlError, ControlPlane, DefinitionChange,
    DeploymentInfo, EXPORT_FORMAT, ImportSummary, NewApp, NewBackend, NewGroup, ReportResult,
};
pub use error_code::{ErrorCode, WireError};
pub use layer::{
    AppAuthenticator, AuthMethod, AuthRequest, Authenticator, Caller, ClientAddr, Gateway,
    GatewayError, GatewayLayer, GatewayService, NotFound,
};
pub use mapping::{
    BodyAction, FORM_CONTENT_TYPE, MAPPING_HEADER_ALLOWLIST, MAPPING_HEADER_PREFIXES,
    MappedRequest, MappingError, MappingInput, SystemValues, map_request, needs_form_body,
};
pub use model::*;
pub use proxy::{
    BodyError, BoxError, ForwardContext, GatewayBody, HttpForwarder, HttpForwarderBuilder,
    ProxyError, TargetError, UpstreamTarget, append_forwarded_headers, collect_limited,
    strip_hop_by_hop,
};
pub use routing::{LiveRoute, RouteMatch, RouteTable, Snapshot, SnapshotHandle};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
