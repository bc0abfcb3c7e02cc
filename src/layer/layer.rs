//! [`GatewayLayer`]: the configuration every [`Gateway`](super::Gateway) built from it shares.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::TrustedProxies;
use super::auth::Authenticator;
use super::service::{Gateway, GatewayService, NotFound};
use crate::policy::{LocalCounter, RateCounter};
use crate::proxy::HttpForwarder;
use crate::routing::SnapshotHandle;

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
    /// Where served requests are counted (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::metrics::GatewayMetrics>,
    /// Counts requests for throttling policies.
    pub(crate) counter: Arc<dyn RateCounter>,
    /// What a near miss does.
    pub(crate) miss: Miss,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub(crate) trusted_proxies: TrustedProxies,
}

/// What the layer does with a request that matches no published API in its stage but would
/// match one in another stage, or with another method: a *near miss* (`X-Ca-Stage: TEST` for
/// an API published only in RELEASE, a `POST` to a `GET` API).
///
/// A request whose path matches no published API at all always falls through, silently: it
/// is the host application's. For a near miss the wire answer, when the gateway gives one, is
/// the protocol's `I404NF` (`API not found with `POST /users``); the log line names the stages
/// the API is published in and the methods it takes.
///
/// # Examples
///
/// ```
/// use stagegate::GatewayLayer;
/// use stagegate::layer::Miss;
/// use stagegate::routing::SnapshotHandle;
/// let layer = GatewayLayer::new(SnapshotHandle::default()).with_miss(Miss::Log);
/// assert_eq!(Miss::default(), Miss::FallThrough);
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Miss {
    /// Pass it to the inner service without a word (the default): the host app may serve it.
    #[default]
    FallThrough,
    /// Write a `warn` event (target `stagegate::miss`) saying where the API is published and
    /// with which methods, then pass it to the inner service.
    Log,
    /// Answer it with `I404NF` and write the same event: the host app never sees it.
    Answer,
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

/// The default body limit: 8 MiB, as Alibaba Cloud API Gateway's limits state for a request
/// body ("Limits" in its documentation).
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// The default limit of URL plus headers: 8 KiB, as Alibaba Cloud API Gateway's limits state
/// ("Limits" in its documentation).
pub const DEFAULT_HEADER_LIMIT: usize = 8 * 1024;

/// Wraps a service with the gateway: requests for published APIs are served, the rest reach
/// the inner service.
///
/// Cloning is a reference-count bump.
///
/// # Examples
///
/// ```
/// use stagegate::GatewayLayer;
/// use stagegate::routing::SnapshotHandle;
/// let layer = GatewayLayer::new(SnapshotHandle::default()).with_body_limit(1 << 20);
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
                miss: Miss::FallThrough,
                counter: Arc::new(LocalCounter::new()),
                trusted_proxies: TrustedProxies::default(),
                #[cfg(feature = "metrics")]
                metrics: None,
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
            miss: arc.miss,
            counter: Arc::clone(&arc.counter),
            trusted_proxies: arc.trusted_proxies.clone(),
            #[cfg(feature = "metrics")]
            metrics: arc.metrics.clone(),
        });
        f(&mut shared);
        // The pool gauges report whichever forwarder the layer ends up with.
        #[cfg(feature = "metrics")]
        if let Some(m) = &shared.metrics {
            m.watch_forwarder(&shared.forwarder);
        }
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The largest request body accepted (`I413RL` beyond); default 8 MiB.
    #[must_use]
    pub fn with_body_limit(self, bytes: usize) -> Self {
        self.with(|s| s.body_limit = bytes)
    }

    /// The largest URL plus headers accepted (`I413UL` beyond); default 8 KiB.
    #[must_use]
    pub fn with_header_limit(self, bytes: usize) -> Self {
        self.with(|s| s.header_limit = bytes)
    }

    /// The HTTP client used for HTTP, VPC and HTTP-function backends.
    #[must_use]
    pub fn with_forwarder(self, forwarder: HttpForwarder) -> Self {
        self.with(|s| s.forwarder = forwarder)
    }

    /// The authenticator for APIs whose auth type is `APP` (default: [`AppAuthenticator`](super::AppAuthenticator)
    /// with an in-memory replay guard).
    #[must_use]
    pub fn with_authenticator(self, a: impl Authenticator) -> Self {
        let a: Arc<dyn Authenticator> = Arc::new(a);
        self.with(|s| s.authenticator = a)
    }

    /// The dispatcher for Function Compute, OSS, EventBridge, service-discovery and address-less
    /// VPC backends (default: [`Backends::default()`](crate::backend::Backends)).
    #[must_use]
    pub fn with_backends(self, d: impl crate::backend::Dispatch) -> Self {
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
    /// use stagegate::GatewayLayer;
    /// use stagegate::routing::SnapshotHandle;
    /// let layer = GatewayLayer::new(SnapshotHandle::default()).with_debug_anonymous(true);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_debug_anonymous(self, enabled: bool) -> Self {
        self.with(|s| s.debug_anonymous = enabled)
    }

    /// What to do with a near miss: a request that matches a published API only in another
    /// stage or with another method (default [`Miss::FallThrough`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::GatewayLayer;
    /// use stagegate::layer::Miss;
    /// use stagegate::routing::SnapshotHandle;
    /// // answer `X-Ca-Stage: TEST` for a RELEASE-only API with I404NF, logging where it is
    /// let layer = GatewayLayer::new(SnapshotHandle::default()).with_miss(Miss::Answer);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_miss(self, miss: Miss) -> Self {
        self.with(|s| s.miss = miss)
    }

    /// The counter of throttling policies (default: a [`LocalCounter`], exact on one node).
    ///
    /// Every [`Gateway`] built from this layer shares it; a second layer counts apart unless
    /// given the same counter (an `Arc<impl RateCounter>` clone is one).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use stagegate::GatewayLayer;
    /// use stagegate::policy::LocalCounter;
    /// let counter = Arc::new(LocalCounter::new());
    /// let a = GatewayLayer::new(Default::default()).with_rate_counter(Arc::clone(&counter));
    /// let b = GatewayLayer::new(Default::default()).with_rate_counter(counter); // counts with `a`
    /// # let _ = (a, b);
    /// ```
    #[must_use]
    pub fn with_rate_counter(self, counter: impl RateCounter) -> Self {
        let c: Arc<dyn RateCounter> = Arc::new(counter);
        self.with(|s| s.counter = c)
    }

    /// Believes `X-Forwarded-For` / `X-Real-IP` (the client) and `X-Forwarded-Proto` /
    /// `Forwarded: proto=` (HTTPS) from peers inside `proxies`, and from nobody else: see
    /// [`TrustedProxies`]. The default trusts no one, so the client is the socket peer and the
    /// scheme is the connection's.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::{GatewayLayer, routing::SnapshotHandle};
    /// let layer = GatewayLayer::new(SnapshotHandle::default())
    ///     .with_trusted_proxies("10.0.0.0/8".parse().unwrap());
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.with(|s| s.trusted_proxies = proxies)
    }

    /// Counts every request into `metrics` (feature `metrics`): requests by group, API, stage,
    /// app, status class and error code, latencies, policy refusals, and the forwarder's pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::{GatewayLayer, metrics::GatewayMetrics, routing::SnapshotHandle};
    /// let metrics = GatewayMetrics::new();
    /// let layer = GatewayLayer::new(SnapshotHandle::default()).with_metrics(metrics.clone());
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn with_metrics(self, metrics: crate::metrics::GatewayMetrics) -> Self {
        self.with(|s| s.metrics = Some(metrics))
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
        Gateway::new(inner, Arc::clone(&self.shared))
    }
}
