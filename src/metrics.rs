//! Prometheus metrics for the data plane (feature `metrics`), on
//! [`prometheus-client`](https://docs.rs/prometheus-client).
//!
//! A [`GatewayMetrics`] is a registry of its own (no global recorder: two gateways in one
//! process, or two tests, never share counters). Attach it with
//! [`GatewayLayer::with_metrics`](crate::GatewayLayer::with_metrics) and serve
//! [`render`](GatewayMetrics::render) on a listener of your own; the example gateway does that
//! with `--metrics-listen`.
//!
//! # What is counted
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `stagegate_requests_total` | counter | `group`, `api`, `stage`, `app`, `status_class`, `error_code` |
//! | `stagegate_request_duration_seconds` | histogram | `group`, `api`, `stage` |
//! | `stagegate_upstream_duration_seconds` | histogram | `group`, `api`, `stage` |
//! | `stagegate_policy_refusals_total` | counter | `group`, `api`, `stage`, `policy` |
//! | `stagegate_unrouted_requests_total` | counter | none: requests no published API matched, or refused before routing |
//! | `stagegate_upstream_in_flight`, `stagegate_upstream_idle_connections`, `stagegate_upstream_http2_connections`, `stagegate_upstream_pooled_backends` | gauge | none: the [`HttpForwarder`]'s pool at scrape time |
//! | `stagegate_config_revision`, `stagegate_config_seconds_since_change`, `stagegate_config_revisions_behind` | gauge | none: from [`observe_freshness`](GatewayMetrics::observe_freshness) |
//! | `stagegate_throttle_store_outage` (gauge, 1 during an outage), `stagegate_throttle_store_outages_total`, `stagegate_throttle_leases_total`, `stagegate_throttle_lease_waits_total`, `stagegate_throttle_fallback_admitted_total` (counters) | | none: a `RedisCounter`'s stats, from `observe_throttle_store` (features `metrics` and `redis`) |
//!
//! `group` is the group id, `api` the API's name, `app` the app id (`-` for anonymous calls),
//! `status_class` `1xx`..`5xx`, `error_code` the catalogue code (`-` when there is none).
//!
//! # Bounded cardinality
//!
//! Label values come from the live snapshot's matched route, never from the request: a request
//! no published API matches only adds to the one unlabelled `stagegate_unrouted_requests_total`.
//! Apps are named up to a top N ([`DEFAULT_TOP_APPS`] = 10, see
//! [`with_top_apps`](GatewayMetrics::with_top_apps)): the first N distinct apps that call
//! through this gateway since it started keep their own `app` value, every later one is
//! counted as `other`. First come rather than by volume: a label value never moves from one
//! app to another, so a series always means the same app (re-ranking by volume would make
//! series appear and vanish as traffic shifts). Choose N above the number of apps you want to
//! see by name; the `other` series shows how much traffic the rest carry.
//!
//! # Cost
//!
//! Each route's series are resolved once, on its first request, and cached per deployment:
//! a request takes read locks on two small maps and increments atomics, without allocating
//! (see `benches/pipeline.rs`, `pipeline/anonymous_mock_metrics`).
//!
//! # Examples
//!
//! ```
//! use stagegate::{ControlPlane, GatewayLayer, metrics::GatewayMetrics, store::MemoryStore};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let control = ControlPlane::open(MemoryStore::new()).await.unwrap();
//! let metrics = GatewayMetrics::new().with_top_apps(20);
//! let gateway = GatewayLayer::new(control.snapshot_handle())
//!     .with_metrics(metrics.clone())
//!     .standalone();
//! // On a scrape:
//! metrics.observe_freshness(&control.freshness().await);
//! let text = metrics.render();
//! assert!(text.contains("stagegate_config_revision"));
//! # let _ = gateway;
//! # });
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rustc_hash::FxBuildHasher;

use crate::base::Policy;
use crate::control::Freshness;
use crate::error_code::ErrorCode;
use crate::proxy::HttpForwarder;
use crate::routing::LiveRoute;

/// How many apps keep their own `app` label value by default (see the module docs).
pub const DEFAULT_TOP_APPS: usize = 10;

/// The `Content-Type` of [`GatewayMetrics::render`]'s text (OpenMetrics, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `app` value of apps beyond the top N.
pub const OTHER_APP: &str = "other";

/// The latency buckets, in seconds: 0.5 ms to 10 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    group: Arc<str>,
    api: Arc<str>,
    stage: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    group: Arc<str>,
    api: Arc<str>,
    stage: Arc<str>,
    app: Arc<str>,
    status_class: &'static str,
    error_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    group: Arc<str>,
    api: Arc<str>,
    stage: Arc<str>,
    policy: &'static str,
}

/// One request's facts, as the pipeline's last step knows them.
pub(crate) struct Outcome<'a> {
    pub(crate) route: &'a LiveRoute,
    pub(crate) app: Option<&'a str>,
    pub(crate) status: u16,
    pub(crate) error: Option<ErrorCode>,
    pub(crate) refused_by: Option<Policy>,
    pub(crate) total: Duration,
    pub(crate) upstream: Option<Duration>,
}

/// Index of an app's label value in `Apps::labels`; `0` is [`OTHER_APP`], `1` anonymous.
type AppSlot = u16;
const SLOT_OTHER: AppSlot = 0;
const SLOT_ANONYMOUS: AppSlot = 1;

/// What tells a route's request series apart: app slot, status class, error code.
type OutcomeKey = (AppSlot, u8, Option<ErrorCode>);

/// A route's series, resolved once per deployment.
struct RouteHandles {
    /// The deployment they were made for: held weakly so its address is not reused while this
    /// entry exists, and a new deployment gets a new entry (with its group and API name).
    deployment: Weak<crate::store::Deployment>,
    labels: RouteLabels,
    duration: Histogram,
    upstream: Histogram,
    requests: RwLock<HashMap<OutcomeKey, Counter, FxBuildHasher>>,
    refusals: [OnceLock<Counter>; Policy::COUNT],
}

/// The apps that keep their own label value.
struct Apps {
    slots: HashMap<Box<str>, AppSlot, FxBuildHasher>,
    labels: Vec<Arc<str>>,
}

/// What a `RedisCounter` reports: its stats, copied in at scrape time.
#[cfg(feature = "redis")]
struct ThrottleStore {
    outage: Gauge,
    outages: Counter,
    leases: Counter,
    waits: Counter,
    fallback: Counter,
}

#[cfg(feature = "redis")]
impl ThrottleStore {
    fn register(registry: &mut Registry) -> Self {
        let t = Self {
            outage: Gauge::default(),
            outages: Counter::default(),
            leases: Counter::default(),
            waits: Counter::default(),
            fallback: Counter::default(),
        };
        registry.register(
            "throttle_store_outage",
            "1 while the throttling store (Redis) cannot be reached and each node counts alone",
            t.outage.clone(),
        );
        registry.register(
            "throttle_store_outages",
            "Outages of the throttling store begun",
            t.outages.clone(),
        );
        registry.register(
            "throttle_leases",
            "Token leases the throttling store granted this node",
            t.leases.clone(),
        );
        registry.register(
            "throttle_lease_waits",
            "Requests that waited for a lease (their node held no token for their key)",
            t.waits.clone(),
        );
        registry.register(
            "throttle_fallback_admitted",
            "Requests admitted by counting alone during an outage of the throttling store",
            t.fallback.clone(),
        );
        t
    }
}

/// Raises `c` to `to` (a total read from elsewhere; counters never go down).
#[cfg(feature = "redis")]
fn catch_up(c: &Counter, to: u64) {
    let now = c.get();
    if to > now {
        c.inc_by(to - now);
    }
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    upstream: Family<RouteLabels, Histogram, fn() -> Histogram>,
    refusals: Family<RefusalLabels, Counter>,
    unrouted: Counter,
    in_flight: Gauge,
    idle: Gauge,
    http2: Gauge,
    backends: Gauge,
    config_revision: Gauge,
    config_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    config_behind: Gauge,
    /// A cluster-wide throttling counter's store (feature `redis`).
    #[cfg(feature = "redis")]
    throttle: ThrottleStore,
    top_apps: AtomicUsize,
    apps: RwLock<Apps>,
    routes: RwLock<HashMap<usize, Arc<RouteHandles>, FxBuildHasher>>,
    /// The forwarders whose pools the gauges sum (one per layer or worker; each pool once).
    forwarders: Mutex<Vec<HttpForwarder>>,
}

/// The data plane's Prometheus metrics (see the [module docs](self)).
///
/// Cloning is a reference-count bump; clones count into the same registry.
///
/// # Examples
///
/// ```
/// let metrics = stagegate::metrics::GatewayMetrics::new();
/// assert!(metrics.render().ends_with("# EOF\n"));
/// ```
#[derive(Clone)]
pub struct GatewayMetrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for GatewayMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayMetrics")
            .field("top_apps", &self.inner.top_apps.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl GatewayMetrics {
    /// An empty registry with every metric of the module docs, naming the first
    /// [`DEFAULT_TOP_APPS`] apps.
    ///
    /// # Examples
    ///
    /// ```
    /// let metrics = stagegate::metrics::GatewayMetrics::new();
    /// assert!(metrics.render().contains("stagegate_upstream_in_flight 0"));
    /// ```
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("stagegate");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            histogram as fn() -> Histogram,
        );
        let upstream = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            histogram as fn() -> Histogram,
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        let unrouted = Counter::default();
        registry.register(
            "requests",
            "Requests served for published APIs",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its response head",
            duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time spent in the backend call (forwarding, mock or plugged backend)",
            upstream.clone(),
        );
        registry.register(
            "policy_refusals",
            "Requests refused by a traffic policy",
            refusals.clone(),
        );
        registry.register(
            "unrouted_requests",
            "Requests no published API matched (passed on) or refused before routing",
            unrouted.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let in_flight = gauge(
            &mut registry,
            "upstream_in_flight",
            "Requests sent to backends and not yet answered",
        );
        let idle = gauge(
            &mut registry,
            "upstream_idle_connections",
            "Idle HTTP/1.1 backend connections in the pool",
        );
        let http2 = gauge(
            &mut registry,
            "upstream_http2_connections",
            "Shared HTTP/2 backend connections in the pool",
        );
        let backends = gauge(
            &mut registry,
            "upstream_pooled_backends",
            "Backends with an entry in the connection pool",
        );
        let config_revision = gauge(
            &mut registry,
            "config_revision",
            "The store revision this node serves",
        );
        let config_behind = gauge(
            &mut registry,
            "config_revisions_behind",
            "How many revisions this node is behind its store (-1: the store did not answer)",
        );
        let config_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "config_seconds_since_change",
            "Seconds since this node last applied a configuration change",
            config_age.clone(),
        );
        #[cfg(feature = "redis")]
        let throttle = ThrottleStore::register(&mut registry);
        let mut apps = Apps {
            slots: HashMap::default(),
            labels: Vec::new(),
        };
        apps.labels.push(Arc::from(OTHER_APP));
        apps.labels.push(Arc::from("-"));
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                duration,
                upstream,
                refusals,
                unrouted,
                in_flight,
                idle,
                http2,
                backends,
                config_revision,
                config_age,
                config_behind,
                #[cfg(feature = "redis")]
                throttle,
                top_apps: AtomicUsize::new(DEFAULT_TOP_APPS),
                apps: RwLock::new(apps),
                routes: RwLock::new(HashMap::default()),
                forwarders: Mutex::new(Vec::new()),
            }),
        }
    }

    /// How many apps keep their own `app` label value (default [`DEFAULT_TOP_APPS`]): the
    /// first `n` distinct apps to call; later ones are counted as `other`. Set it before the
    /// first request; apps already named keep their value.
    ///
    /// # Examples
    ///
    /// ```
    /// let metrics = stagegate::metrics::GatewayMetrics::new().with_top_apps(50);
    /// # let _ = metrics;
    /// ```
    #[must_use]
    pub fn with_top_apps(self, n: usize) -> Self {
        // Slots are u16, and two are taken by `other` and anonymous.
        let n = n.min(usize::from(AppSlot::MAX) - 2);
        self.inner.top_apps.store(n, Ordering::Relaxed);
        self
    }

    /// Sets the configuration gauges from a node's [`Freshness`] (call it before
    /// [`render`](Self::render) on each scrape, with
    /// [`ControlPlane::freshness`](crate::ControlPlane::freshness)).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::{ControlPlane, metrics::GatewayMetrics, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let control = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// let metrics = GatewayMetrics::new();
    /// metrics.observe_freshness(&control.freshness().await);
    /// assert!(metrics.render().contains("stagegate_config_revisions_behind 0\n"));
    /// # });
    /// ```
    pub fn observe_freshness(&self, f: &Freshness) {
        let i = &self.inner;
        i.config_revision
            .set(i64::try_from(f.applied_revision).unwrap_or(i64::MAX));
        i.config_age.set(f.since_applied.as_secs_f64());
        i.config_behind.set(
            f.behind()
                .map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
        );
    }

    /// Sets the throttling store's metrics from a [`RedisCounter`](crate::policy::RedisCounter)'s
    /// stats (features `metrics` and `redis`; call it before [`render`](Self::render) on each
    /// scrape). Alert on `stagegate_throttle_store_outage == 1`: limits are then held per node.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::{metrics::GatewayMetrics, policy::RedisCounter};
    /// let counter = RedisCounter::new("redis://127.0.0.1:6379").unwrap();
    /// let metrics = GatewayMetrics::new();
    /// metrics.observe_throttle_store(&counter.stats());
    /// assert!(metrics.render().contains("stagegate_throttle_store_outage 0\n"));
    /// ```
    #[cfg(feature = "redis")]
    pub fn observe_throttle_store(&self, s: &crate::policy::RedisCounterStats) {
        let t = &self.inner.throttle;
        t.outage.set(i64::from(s.in_outage));
        catch_up(&t.outages, s.outages);
        catch_up(&t.leases, s.leases);
        catch_up(&t.waits, s.waited);
        catch_up(&t.fallback, s.fallback_admitted);
    }

    /// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]), with the pool gauges
    /// read now.
    ///
    /// # Examples
    ///
    /// ```
    /// let text = stagegate::metrics::GatewayMetrics::new().render();
    /// assert!(text.contains("stagegate_unrouted_requests_total 0\n"));
    /// ```
    #[must_use]
    pub fn render(&self) -> String {
        let i = &self.inner;
        let (mut in_flight, mut idle, mut http2, mut backends) = (0, 0, 0, 0);
        for f in i.forwarders.lock().iter() {
            let s = f.pool_stats();
            in_flight += s.in_flight;
            idle += s.idle;
            http2 += s.http2;
            backends += s.backends;
        }
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        i.in_flight.set(n(in_flight));
        i.idle.set(n(idle));
        i.http2.set(n(http2));
        i.backends.set(n(backends));
        let mut out = String::with_capacity(4096);
        // Writing into a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &i.registry);
        out
    }

    /// Adds a forwarder whose pool the gauges report (by the layer; each pool counted once).
    pub(crate) fn watch_forwarder(&self, forwarder: &HttpForwarder) {
        let mut all = self.inner.forwarders.lock();
        if !all.iter().any(|f| f.same_pool(forwarder)) {
            all.push(forwarder.clone());
        }
    }

    /// Counts a request that no published API served.
    pub(crate) fn record_unrouted(&self) {
        self.inner.unrouted.inc();
    }

    /// Counts one served request. Allocation-free once the route, app and outcome were seen.
    pub(crate) fn record(&self, o: &Outcome<'_>) {
        let slot = o.app.map_or(SLOT_ANONYMOUS, |a| self.app_slot(a));
        let key = Arc::as_ptr(&o.route.deployment) as usize;
        {
            let routes = self.inner.routes.read();
            if let Some(h) = routes.get(&key) {
                self.record_on(h, slot, o);
                return;
            }
        }
        let h = self.resolve(key, o.route);
        self.record_on(&h, slot, o);
    }

    fn record_on(&self, h: &RouteHandles, slot: AppSlot, o: &Outcome<'_>) {
        let class = u8::try_from(o.status / 100).unwrap_or(5);
        let key = (slot, class, o.error);
        let counted = h.requests.read().get(&key).map(Counter::inc).is_some();
        if !counted {
            let app = Arc::clone(&self.inner.apps.read().labels[usize::from(slot)]);
            let counter = self.inner.requests.get_or_create_owned(&RequestLabels {
                group: Arc::clone(&h.labels.group),
                api: Arc::clone(&h.labels.api),
                stage: Arc::clone(&h.labels.stage),
                app,
                status_class: status_class(class),
                error_code: o.error.map_or("-", ErrorCode::as_str),
            });
            counter.inc();
            h.requests.write().insert(key, counter);
        }
        h.duration.observe(o.total.as_secs_f64());
        if let Some(u) = o.upstream {
            h.upstream.observe(u.as_secs_f64());
        }
        if let Some(p) = o.refused_by {
            h.refusals[p.index()]
                .get_or_init(|| {
                    self.inner.refusals.get_or_create_owned(&RefusalLabels {
                        group: Arc::clone(&h.labels.group),
                        api: Arc::clone(&h.labels.api),
                        stage: Arc::clone(&h.labels.stage),
                        policy: p.as_str(),
                    })
                })
                .inc();
        }
    }

    /// The route's handles, made on its deployment's first request.
    fn resolve(&self, key: usize, route: &LiveRoute) -> Arc<RouteHandles> {
        let labels = RouteLabels {
            group: Arc::from(route.group_id().as_str()),
            api: Arc::from(route.api().name.as_str()),
            stage: Arc::from(route.stage.as_str()),
        };
        let h = Arc::new(RouteHandles {
            deployment: Arc::downgrade(&route.deployment),
            duration: self.inner.duration.get_or_create_owned(&labels),
            upstream: self.inner.upstream.get_or_create_owned(&labels),
            labels,
            requests: RwLock::new(HashMap::default()),
            refusals: Default::default(),
        });
        let mut routes = self.inner.routes.write();
        // Deployments no longer live (replaced or unpublished) leave; their series stay.
        routes.retain(|_, h| h.deployment.strong_count() > 0);
        Arc::clone(routes.entry(key).or_insert(h))
    }

    /// The app's label slot: its own among the first N apps, else `other`.
    fn app_slot(&self, app: &str) -> AppSlot {
        if let Some(&s) = self.inner.apps.read().slots.get(app) {
            return s;
        }
        let mut apps = self.inner.apps.write();
        if let Some(&s) = apps.slots.get(app) {
            return s;
        }
        if apps.slots.len() >= self.inner.top_apps.load(Ordering::Relaxed) {
            return SLOT_OTHER;
        }
        let Ok(slot) = AppSlot::try_from(apps.labels.len()) else {
            return SLOT_OTHER;
        };
        apps.labels.push(Arc::from(app));
        apps.slots.insert(Box::from(app), slot);
        slot
    }
}

fn status_class(class: u8) -> &'static str {
    match class {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_beyond_the_top_n_fold_into_other() {
        let m = GatewayMetrics::new().with_top_apps(2);
        let a = m.app_slot("a");
        let b = m.app_slot("b");
        assert_ne!(a, b);
        assert_eq!(m.app_slot("c"), SLOT_OTHER);
        assert_eq!(m.app_slot("a"), a, "a named app keeps its slot");
        assert_eq!(m.app_slot("d"), SLOT_OTHER);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(2), "2xx");
        assert_eq!(status_class(5), "5xx");
        assert_eq!(status_class(9), "5xx");
    }
}
