//! [`GatewayLayer`]: the configuration every [`Gateway`](super::Gateway) built from it shares.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::auth::Authenticator;
use super::service::{Gateway, GatewayService, NotFound};
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
