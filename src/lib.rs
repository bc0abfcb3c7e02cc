//! stagegate: an embeddable API gateway for axum and hyper.
//!
//! # Feature flags
//!
//! - `admin` (default): the admin REST API (`stagegate::admin`), built on axum's router with
//!   no server and no extra axum features.
//! - `redb` (default): `stagegate::store::RedbStore`, the embedded durable store.
//! - `conformance`: the store conformance suite for adapter authors.
//!
//! Both defaults are there so that `cargo run --example gateway` works with no flags. An
//! application that embeds only the data plane can depend on stagegate with
//! `default-features = false` and keep axum and redb out of its dependency tree.

#[cfg(feature = "admin")]
pub mod admin;
pub mod auth;
pub mod backend;
pub mod control;
pub mod layer;
pub mod mapping;
pub mod model;
pub mod proxy;
pub mod routing;
pub mod store;

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
pub use layer::{
    AppAuthenticator, AuthMethod, AuthRequest, Authenticator, Caller, ClientAddr, Gateway,
    GatewayError, GatewayLayer, GatewayService, NotFound,
};
pub use model::*;
pub use proxy::{
    BodyError, BoxError, ForwardContext, GatewayBody, HttpForwarder, HttpForwarderBuilder,
    ProxyError, TargetError, UpstreamTarget, append_forwarded_headers, collect_limited,
    strip_hop_by_hop,
};
pub use routing::{LiveRoute, RouteMatch, RouteTable, Snapshot, SnapshotHandle};
