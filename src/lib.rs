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
//! - [`GatewayLayer`] / [`Gateway`] is the data plane. It reads one immutable
//!   [`Snapshot`](routing::Snapshot) per request through a lock-free
//!   [`SnapshotHandle`](routing::SnapshotHandle); every change is visible to the next request.
//!
//! # Which module for what
//!
//! The root holds only what mounting the gateway and driving the control plane need:
//! [`Gateway`], [`GatewayLayer`], [`GatewayService`], [`ClientAddr`], [`Caller`], [`AuthMethod`]
//! (mounting); [`ControlPlane`], [`ControlError`] (configuration); [`ErrorCode`], [`WireError`],
//! [`GatewayError`] (errors). Everything else is reached by its module, e.g.
//! `stagegate::model::Stage`, `stagegate::store::MemoryStore`, `stagegate::auth::Signer`.
//!
//! | you want to | reach for |
//! |---|---|
//! | mount the gateway in axum or hyper | [`GatewayLayer`], [`Gateway`], [`ClientAddr`], [`layer::ConnectionInfo`]; custom authenticators in [`layer`] |
//! | serve it on a socket facing untrusted clients | `serve::Server` (feature `serve`) |
//! | check a TLS certificate and key before serving them; certificates per group domain | `tls::CertificatePair` (feature `tls`); `ControlPlane::set_domain_certificate` |
//! | create backends, groups, APIs, apps; publish; import and export | [`ControlPlane`]; its inputs and reports (`NewBackend`, `NewApp`, `ConfigExport`, ...) in [`control`] |
//! | describe the whole configuration in one document (JSON or TOML), plan and apply it | [`control::ConfigDocument`], [`ControlPlane::plan`], [`ControlPlane::apply`] |
//! | the domain types (backend kinds, stage definitions, APIs, apps, ids, secrets) | [`model`] |
//! | persist the configuration, or write your own store | [`store`]: `MemoryStore`, `RedbStore` (feature `redb`), `PostgresStore` (feature `postgres`), `SealedStore` (secrets sealed at rest, feature `sealed`), the [`Store`](store::Store) trait and its conformance suite (feature `conformance`) |
//! | call published APIs from Rust, every request signed | [`client`] (`Client`, `SigningLayer`) |
//! | sign requests as a client, verify signatures yourself, or guard against replays | [`auth`] ([`Signer`](auth::Signer), [`verify`](auth::verify), [`MemoryReplayGuard`](auth::MemoryReplayGuard); `RedisReplayGuard` shares nonces between nodes, feature `redis`) |
//! | plug in a function runtime, object store, event sink or registry | [`backend`] |
//! | every error code a caller can receive, with its status and message | [`error_code`] ([`ErrorCode`]) |
//! | throttling, IP access control, CORS, the gateway-to-backend signature (and its verifier for Rust backends) | [`policy`] |
//! | the admin REST API (the debug endpoint, the web console at `/console/`) | `admin::AdminApi` (feature `admin`) |
//! | let scripts on Alibaba Cloud's official SDKs manage the gateway | `cloudapi::CloudApi` (feature `cloudapi`) |
//! | Prometheus metrics of the data plane, the access log | `metrics::GatewayMetrics` (feature `metrics`); the `stagegate::access` tracing target ([`layer`]) |
//! | read the published state: route lookup, the lock-free snapshot, its grants | [`routing`] ([`SnapshotHandle`](routing::SnapshotHandle): `load` for a cheap guard, `load_full` for an `Arc`) |
//! | map parameters yourself, for a custom dispatcher | [`mapping`] ([`map_request`](mapping::map_request)) |
//! | forward to an HTTP upstream, for a custom dispatcher | [`proxy`] ([`HttpForwarder`](proxy::HttpForwarder), [`GatewayBody`](proxy::GatewayBody)) |
//!
//! A request goes: context (arrival time, request id, client address, host, stage) → path
//! confinement → route (one snapshot load) → authenticate → policies (IP control, throttling) → map → dispatch by the
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
//! use stagegate::{ClientAddr, ControlPlane, GatewayLayer};
//! use stagegate::store::MemoryStore;
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
//! | `admin` | `stagegate::admin`: the admin REST API as a tower `Service` (an axum `Router`, no server, no extra axum features); turns `axum` on |
//! | `axum` | the layer reads axum's `ConnectInfo<SocketAddr>` as the client's address (axum's core types only) |
//! | `redb` | `stagegate::store::RedbStore`: the embedded, durable store (needs Rust 1.90) |
//! | `postgres` | `stagegate::store::PostgresStore`: a store shared by several gateway nodes on PostgreSQL (tokio-postgres, deadpool-postgres, TLS through rustls) |
//! | `conformance` | `store::conformance` and `store_conformance!`, for `Store` adapter authors |
//! | `serve` | `stagegate::serve`: a hardened server loop (timeouts, connection cap, accept back-off, graceful shutdown); turns `tls` on |
//! | `tls` | `stagegate::tls`: certificate chains and keys checked before they are served (x509-parser), and per-domain certificates in the control plane and admin API |
//! | `cloudapi` | `stagegate::cloudapi`: the CloudAPI (2016-07-14) management endpoint the official Alibaba Cloud SDKs drive |
//! | `oss-s3` | S3-compatible object stores for OSS backends (`object_store`'s `aws` support) |
//! | `redis` | `stagegate::auth::RedisReplayGuard`: one nonce store for every gateway node, in Redis, failing closed (`X503NS`) |
//! | `sealed` | `stagegate::store::SealedStore`: app secrets and AppCodes sealed at rest in any store |
//! | `toml` | TOML configuration documents (`control::ConfigDocument::from_toml`; `Content-Type: application/toml` on the admin API's `/config` routes) |
//! | `metrics` | `stagegate::metrics`: Prometheus metrics (prometheus-client) rendered as text for a listener of your own |
//!
//! No feature is on by default: an application that embeds only the data plane gets neither
//! axum nor redb. The crate's own tests, examples and benches turn `admin`, `redb`, `postgres` and
//! `conformance` on (through a dev-dependency on itself), so `cargo test` and
//! `cargo run --example gateway` need no flags.
//!
#[cfg(feature = "admin")]
pub mod admin;
pub mod auth;
pub mod backend;
mod base;
pub mod client;
#[cfg(feature = "cloudapi")]
pub mod cloudapi;
pub mod control;
mod error;
pub mod error_code;
mod json;
pub mod layer;
pub mod mapping;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod model;
pub mod policy;
pub mod proxy;
pub mod routing;
#[cfg(feature = "serve")]
pub mod serve;
pub mod store;
mod swar;
#[cfg(feature = "tls")]
pub mod tls;

pub use control::{ControlError, ControlPlane};
pub use error_code::{ErrorCode, WireError};
pub use layer::{
    AuthMethod, Caller, ClientAddr, Gateway, GatewayError, GatewayLayer, GatewayService,
};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
