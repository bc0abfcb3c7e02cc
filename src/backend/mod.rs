//! Backends beyond HTTP and MOCK: VPC authorizations without an address, Function Compute
//! event functions, OSS buckets, EventBridge buses and service discovery.
//!
//! The data plane hands every request whose stage definition is of such a kind to the
//! [`Dispatch`] configured on the [`GatewayLayer`](crate::GatewayLayer) (see
//! [`GatewayLayer::with_backends`](crate::GatewayLayer::with_backends)). [`Backends`] is the dispatcher
//! used by default: one small trait per kind, each with a default that works on one machine
//! without a cloud account.
//!
//! | kind | trait | default | also built in |
//! |---|---|---|---|
//! | VPC | [`VpcResolver`] | [`DefaultVpcResolver`] (`instance_id:port` as a host name) | |
//! | Function Compute (event) | [`FunctionInvoker`] | [`LocalFunctions`] (async Rust handlers) | [`HttpFunctionInvoker`] |
//! | OSS | [`ObjectStores`] | [`LocalObjectStores`] (a directory per bucket) | `S3ObjectStores` (feature `oss-s3`) |
//! | EventBridge | [`EventSink`] | [`InProcessBus`] | [`HttpEventSink`] |
//! | Service discovery | [`Discovery`] | [`Registries`] (static, DNS, Nacos) | [`StaticDiscovery`], [`DnsDiscovery`], [`NacosDiscovery`] |
//!
//! HTTP functions and VPC authorizations with an address are compiled into plain HTTP targets
//! and never reach the dispatcher.
//!
//! # Examples
//!
//! ```
//! use stagegate::backend::{Backends, InProcessBus, LocalFunctions, FunctionResponse};
//! use stagegate::GatewayLayer;
//! use stagegate::routing::SnapshotHandle;
//!
//! let functions = LocalFunctions::new();
//! functions.register("orders", "create", "LATEST", |_event| async {
//!     Ok(FunctionResponse::new(201).with_body("created").into_json())
//! });
//! let bus = InProcessBus::new();
//! let _events = bus.subscribe("orders");
//! let layer = GatewayLayer::new(SnapshotHandle::default())
//!     .with_backends(Backends::new().with_functions(functions).with_events(bus));
//! # let _ = layer;
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, header};

use crate::base::BoxFuture;
use crate::base::{Caller, Host};
use crate::error::GatewayError;
use crate::error_code::ErrorCode;
use crate::mapping::MappedRequest;
use crate::model::{FunctionDefinition, Stage, StageDefinition};
use crate::proxy::{
    BodyError, ForwardContext, GatewayBody, HttpForwarder, ProxyError, UpstreamTarget,
    collect_limited,
};
use crate::routing::LiveRoute;

mod discovery;
mod events;
pub(crate) mod forward;
mod function;
mod oss;
mod vpc;

pub use discovery::{
    Discovery, DiscoveryError, DnsDiscovery, EjectionPolicy, Instance, NacosDiscovery, Registries,
    StaticDiscovery,
};
pub use events::{CloudEvent, EventError, EventSink, HttpEventSink, InProcessBus};
pub use function::{
    ApiGatewayEvent, FunctionError, FunctionInvoker, FunctionRef, FunctionResponse,
    HttpFunctionInvoker, LocalFunctions,
};
#[cfg(feature = "oss-s3")]
pub use oss::S3ObjectStores;
pub use oss::{LocalObjectStores, ObjectStores, OssError};
pub use vpc::{DefaultVpcResolver, VpcError, VpcResolver};

/// One request for a pluggable backend, after authentication and parameter mapping.
#[derive(Debug)]
#[non_exhaustive]
pub struct BackendCall<'a> {
    /// The matched route: API snapshot and the backend's definition in the stage.
    pub route: &'a LiveRoute,
    /// The stage.
    pub stage: &'a Stage,
    /// The client's request line and headers, as received.
    pub parts: &'a Parts,
    /// Path parameters of the match (raw).
    pub path_params: &'a [(&'a str, &'a str)],
    /// The backend request the mapping step produced (path, query, headers, body action).
    pub mapped: MappedRequest,
    /// The request body (buffered or streaming).
    pub body: GatewayBody,
    /// The gateway's request id.
    pub request_id: &'a str,
    /// Who is calling.
    pub caller: &'a Caller,
    /// The client's address: the socket peer, or whom a trusted proxy names
    /// ([`TrustedProxies`](crate::layer::TrustedProxies)).
    pub client_addr: Option<SocketAddr>,
    /// The socket peer, which an HTTP call appends to `X-Forwarded-For`.
    pub peer_addr: Option<SocketAddr>,
    /// Whether the client used HTTPS (the connection, or a trusted proxy's word).
    pub https: bool,
    /// The API's timeout.
    pub timeout: Duration,
    /// The gateway's HTTP client, for backends that end in an HTTP call.
    pub forwarder: &'a HttpForwarder,
    /// The host the request was for (the request context's), for `X-Forwarded-Host`.
    pub(crate) host: Option<&'a Host>,
}

impl BackendCall<'_> {
    /// The path parameters percent-decoded (lossily), by name: what event payloads carry.
    pub(crate) fn decoded_path_params(&self) -> std::collections::BTreeMap<String, String> {
        self.path_params
            .iter()
            .map(|(k, v)| {
                let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                ((*k).to_owned(), v.into_owned())
            })
            .collect()
    }
}

/// Serves requests for backend kinds other than HTTP/HTTPS and MOCK.
///
/// # Examples
///
/// A dispatcher that answers every call the same way:
///
/// ```
/// use stagegate::backend::{BackendCall, Dispatch};
/// use stagegate::GatewayError;
/// use stagegate::proxy::GatewayBody;
/// use stagegate::store::BoxFuture;
///
/// struct Teapot;
/// impl Dispatch for Teapot {
///     fn dispatch<'a>(&'a self, _call: BackendCall<'a>)
///         -> BoxFuture<'a, Result<http::Response<GatewayBody>, GatewayError>> {
///         Box::pin(async {
///             let mut res = http::Response::new(GatewayBody::full("short and stout"));
///             *res.status_mut() = http::StatusCode::IM_A_TEAPOT;
///             Ok(res)
///         })
///     }
/// }
/// ```
pub trait Dispatch: Send + Sync + 'static {
    /// Serves one call.
    fn dispatch<'a>(
        &'a self,
        call: BackendCall<'a>,
    ) -> BoxFuture<'a, Result<Response<GatewayBody>, GatewayError>>;
}

/// A dispatcher that serves nothing: answers `X501NI`.
///
/// # Examples
///
/// ```
/// use stagegate::GatewayLayer;
/// use stagegate::backend::Unsupported;
/// use stagegate::routing::SnapshotHandle;
/// let layer = GatewayLayer::new(SnapshotHandle::default()).with_backends(Unsupported);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Unsupported;

impl Dispatch for Unsupported {
    fn dispatch<'a>(
        &'a self,
        call: BackendCall<'a>,
    ) -> BoxFuture<'a, Result<Response<GatewayBody>, GatewayError>> {
        let kind = call.route.definition.kind();
        Box::pin(async move { Err(not_served(kind.as_str())) })
    }
}

fn not_served(what: &str) -> GatewayError {
    GatewayError::with_detail(ErrorCode::X501NI, what)
}

/// The dispatcher for every pluggable kind, with a builder; [`GatewayLayer::new`](crate::GatewayLayer::new)
/// uses `Backends::default()`.
///
/// Defaults: [`DefaultVpcResolver`], an empty [`LocalFunctions`], [`LocalObjectStores`] under
/// the system temporary directory (`stagegate-oss/<bucket>`: for trying things out; a deployment
/// gives its own root with [`Backends::with_object_stores`], as the example gateway does with
/// `<data-dir>/oss`), an [`InProcessBus`] without buses,
/// [`Registries`] (static, DNS and Nacos) with the default [`EjectionPolicy`].
///
/// # Examples
///
/// ```
/// use stagegate::backend::{Backends, EjectionPolicy, LocalObjectStores, Registries};
/// use std::time::Duration;
///
/// let backends = Backends::new()
///     .with_object_stores(LocalObjectStores::new(std::env::temp_dir().join("my-buckets")))
///     .with_discovery(Registries::default())
///     .with_ejection(EjectionPolicy::new(2, Duration::from_secs(5)))
///     .with_event_type_prefix("com.example.api");
/// # let _ = backends;
/// ```
#[derive(Clone)]
pub struct Backends {
    vpc: Arc<dyn VpcResolver>,
    functions: Arc<dyn FunctionInvoker>,
    objects: Arc<dyn ObjectStores>,
    events: Arc<dyn EventSink>,
    discovery: Arc<dyn Discovery>,
    balancer: Arc<discovery::Balancer>,
    event_type_prefix: Arc<str>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("event_type_prefix", &self.event_type_prefix)
            .finish_non_exhaustive()
    }
}

impl Default for Backends {
    fn default() -> Self {
        Self {
            vpc: Arc::new(DefaultVpcResolver),
            functions: Arc::new(LocalFunctions::new()),
            objects: Arc::new(LocalObjectStores::new(
                std::env::temp_dir().join("stagegate-oss"),
            )),
            events: Arc::new(InProcessBus::new()),
            discovery: Arc::new(Registries::default()),
            balancer: Arc::new(discovery::Balancer::new(EjectionPolicy::default())),
            event_type_prefix: Arc::from("stagegate.api"),
        }
    }
}

impl Backends {
    /// Every local default (same as [`Backends::default`]).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves VPC authorizations that have no address.
    #[must_use]
    pub fn with_vpc_resolver(mut self, r: impl VpcResolver) -> Self {
        self.vpc = Arc::new(r);
        self
    }

    /// Invokes event functions.
    #[must_use]
    pub fn with_functions(mut self, f: impl FunctionInvoker) -> Self {
        self.functions = Arc::new(f);
        self
    }

    /// Maps OSS definitions to object stores.
    #[must_use]
    pub fn with_object_stores(mut self, s: impl ObjectStores) -> Self {
        self.objects = Arc::new(s);
        self
    }

    /// Publishes EventBridge events.
    #[must_use]
    pub fn with_events(mut self, s: impl EventSink) -> Self {
        self.events = Arc::new(s);
        self
    }

    /// Finds instances of service-discovery definitions.
    #[must_use]
    pub fn with_discovery(mut self, d: impl Discovery) -> Self {
        self.discovery = Arc::new(d);
        self
    }

    /// When discovered instances are ejected and retried (resets the ejection state).
    #[must_use]
    pub fn with_ejection(mut self, p: EjectionPolicy) -> Self {
        self.balancer = Arc::new(discovery::Balancer::new(p));
        self
    }

    /// The CloudEvents `type` of events is `<prefix>.<api name>` (default `stagegate.api`).
    #[must_use]
    pub fn with_event_type_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.event_type_prefix = Arc::from(prefix.into());
        self
    }
}

impl Dispatch for Backends {
    fn dispatch<'a>(
        &'a self,
        call: BackendCall<'a>,
    ) -> BoxFuture<'a, Result<Response<GatewayBody>, GatewayError>> {
        Box::pin(async move {
            let def = Arc::clone(&call.route.definition);
            match &*def {
                StageDefinition::Vpc(v) => vpc::dispatch(&*self.vpc, v, call).await,
                StageDefinition::FunctionCompute(f @ FunctionDefinition::Event { .. }) => {
                    function::dispatch(&*self.functions, f, call).await
                }
                StageDefinition::Oss(o) => oss::dispatch(&*self.objects, o, call).await,
                StageDefinition::EventBridge(e) => {
                    events::dispatch(&*self.events, &self.event_type_prefix, e, call).await
                }
                StageDefinition::ServiceDiscovery(d) => {
                    discovery::dispatch(&*self.discovery, &self.balancer, d, call).await
                }
                // HTTP, MOCK, HTTP functions and VPC authorizations with an address are
                // compiled into inline targets (`routing::BackendTarget`) and never reach a
                // dispatcher.
                other => Err(not_served(other.kind().as_str())),
            }
        })
    }
}

/// The gateway error for a request body that could not be read.
pub(crate) fn body_error(e: &BodyError) -> GatewayError {
    let too_large = match e {
        BodyError::TooLarge { .. } => true,
        BodyError::Stream(s) => {
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(s.as_ref());
            let mut found = false;
            while let Some(err) = cur {
                if err.is::<http_body_util::LengthLimitError>() {
                    found = true;
                    break;
                }
                cur = err.source();
            }
            found
        }
        _ => false,
    };
    if too_large {
        GatewayError::body_too_large()
    } else {
        GatewayError::unreadable_body()
    }
}

/// Reads the whole request body (bounded by the gateway's body limit, which wraps it).
pub(crate) async fn read_body(body: GatewayBody) -> Result<Bytes, GatewayError> {
    collect_limited(body, usize::MAX)
        .await
        .map_err(|e| body_error(&e))
}

/// A small HTTP exchange used by the HTTP invoker, the HTTP event sink and the Nacos client:
/// `url` is a full URL (`scheme://host[:port]/path?query`).
pub(crate) async fn http_exchange(
    forwarder: &HttpForwarder,
    method: Method,
    url: &str,
    content_type: Option<&'static str>,
    body: Bytes,
    timeout: Duration,
    answer_limit: usize,
) -> Result<(StatusCode, http::HeaderMap, Bytes), ProxyError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ProxyError::InvalidRequest(e.into()))?;
    let base = match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}"),
        _ => format!("http://{}", uri.authority().map_or("", |a| a.as_str())),
    };
    let upstream = UpstreamTarget::parse(&base)?;
    let pq = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut builder = Request::builder().method(method).uri(pq.as_str());
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    let req = builder
        .body(GatewayBody::full(body))
        .map_err(ProxyError::InvalidRequest)?;
    let res = forwarder
        .forward(req, &upstream, &ForwardContext::new(timeout))
        .await?;
    let (parts, body) = res.into_parts();
    let bytes = collect_limited(body, answer_limit)
        .await
        .map_err(|e| match e {
            BodyError::Timeout => ProxyError::Timeout { timeout },
            other => ProxyError::Upstream {
                reason: "the answer could not be read".to_owned(),
                source: Box::new(other),
            },
        })?;
    Ok((parts.status, parts.headers, bytes))
}
