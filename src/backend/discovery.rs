//! Service discovery backends: a [`Discovery`] finds the instances of a definition's service;
//! the dispatcher balances round-robin over the healthy ones, ejects an instance after
//! consecutive connect failures and retries it after a cool-down. A request whose connection
//! fails is sent to another instance (at most three in all) when that is safe: an idempotent
//! method (GET, HEAD, OPTIONS, PUT, DELETE) and a body of at most 64 KiB, kept for the retry.
//! Other requests are never sent twice.
//!
//! Registry answers are cached for a TTL. After a registry fails, it is not asked again
//! before a backoff (0.5 s, doubling with each further failure up to 30 s). In the meantime
//! the last good answer is used, or the last error is returned when there is none.
//!
//! Built in: [`StaticDiscovery`] (the definition's addresses), [`DnsDiscovery`] (A/AAAA records
//! through the system resolver, re-resolved on a TTL) and [`NacosDiscovery`] (Nacos's open HTTP
//! API `GET /nacos/v1/ns/instance/list`, cached on a TTL). The Nacos client is tested against a
//! local stand-in serving Nacos's documented instance-list JSON, not against a real Nacos
//! server. [`Registries`] chooses by the definition's registry type; ZooKeeper and EDAS need a
//! provider the deployment plugs in ([`Registries::with_zookeeper`], [`Registries::with_edas`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Response};
use parking_lot::Mutex;
use serde::Deserialize;

use super::forward::{backend_method, forward_call};
use super::{BackendCall, http_exchange};
use crate::base::BoxFuture;
use crate::error::GatewayError;
use crate::error_code::{ErrorCode, WireError};
use crate::model::{DiscoveryDefinition, RegistryType};
use crate::proxy::{GatewayBody, HttpForwarder, ProxyError, UpstreamTarget};

/// One instance of a service.
///
/// # Examples
///
/// ```
/// use stagegate::backend::Instance;
/// let i = Instance::new("127.0.0.1", 8080);
/// assert_eq!(i.address(), "127.0.0.1:8080");
/// assert_eq!(Instance::new("::1", 80).address(), "[::1]:80");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Instance {
    /// Host name or IP.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Instance {
    /// An instance.
    #[must_use]
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// `host:port` (IPv6 in brackets).
    #[must_use]
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why instances could not be found or used.
///
/// | variant | code | status |
/// |---|---|---|
/// | [`NoHealthyInstance`](Self::NoHealthyInstance) | `D503NI` | 503 |
/// | [`Registry`](Self::Registry) | `D503RG` | 503 |
/// | [`Unsupported`](Self::Unsupported) | `X501NI` | 501 |
///
/// # Examples
///
/// ```
/// use stagegate::backend::DiscoveryError;
/// let e = DiscoveryError::NoHealthyInstance("users".into());
/// assert_eq!(e.to_string(), "no healthy instance of service `users`");
/// let g = stagegate::GatewayError::from(e);
/// assert_eq!(g.error_code(), stagegate::ErrorCode::D503NI);
/// assert_eq!(g.message(), "No healthy backend instance");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// Every instance is unhealthy, ejected, or there is none.
    #[error("no healthy instance of service `{0}`")]
    NoHealthyInstance(String),
    /// The registry could not be asked or answered nonsense.
    #[error("service registry failed: {0}")]
    Registry(String),
    /// No provider for this registry type.
    #[error("no {0:?} registry provider is configured")]
    Unsupported(RegistryType),
}

/// No detail: service names, registry answers and the registry type go to the log only.
impl WireError for DiscoveryError {
    fn wire_code(&self) -> ErrorCode {
        match self {
            Self::NoHealthyInstance(_) => ErrorCode::D503NI,
            Self::Registry(_) => ErrorCode::D503RG,
            Self::Unsupported(_) => ErrorCode::X501NI,
        }
    }
}

/// Finds the (healthy) instances of a definition's service.
///
/// # Examples
///
/// ```
/// use stagegate::model::DiscoveryDefinition;
/// use stagegate::backend::{Discovery, DiscoveryError, Instance};
/// use stagegate::store::BoxFuture;
///
/// struct Fixed;
/// impl Discovery for Fixed {
///     fn instances<'a>(&'a self, _def: &'a DiscoveryDefinition)
///         -> BoxFuture<'a, Result<Vec<Instance>, DiscoveryError>> {
///         Box::pin(async { Ok(vec![Instance::new("127.0.0.1", 8080)]) })
///     }
/// }
/// ```
pub trait Discovery: Send + Sync + 'static {
    /// The instances to balance over.
    fn instances<'a>(
        &'a self,
        def: &'a DiscoveryDefinition,
    ) -> BoxFuture<'a, Result<Vec<Instance>, DiscoveryError>>;
}

fn parse_host_port(s: &str, default_port: u16) -> Option<Instance> {
    let s = s.split_once("://").map_or(s, |(_, r)| r);
    let s = s.trim_end_matches('/');
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some(Instance::new(host, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some(Instance::new(h, p.parse().ok()?)),
        Some(_) => Some(Instance::new(s, default_port)),
        None if s.is_empty() => None,
        None => Some(Instance::new(s, default_port)),
    }
}

/// The definition's `addresses` are the instances (`host:port`).
///
/// # Examples
///
/// ```
/// use stagegate::model::{DiscoveryDefinition, RegistryType};
/// use stagegate::backend::{Discovery, StaticDiscovery};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let d = DiscoveryDefinition { registry: RegistryType::Static, service_name: "users".into(),
///     namespace: None, group: None, addresses: vec!["127.0.0.1:8081".into()], https: false };
/// assert_eq!(StaticDiscovery.instances(&d).await.unwrap()[0].port, 8081);
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticDiscovery;

impl Discovery for StaticDiscovery {
    fn instances<'a>(
        &'a self,
        def: &'a DiscoveryDefinition,
    ) -> BoxFuture<'a, Result<Vec<Instance>, DiscoveryError>> {
        let port = if def.https { 443 } else { 80 };
        let v = def
            .addresses
            .iter()
            .filter_map(|a| parse_host_port(a, port))
            .collect();
        Box::pin(async move { Ok(v) })
    }
}

/// The first wait after a registry failure; each further failure doubles it.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The longest wait between two attempts at a failing registry.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One service's entry: the last good answer, and the registry's failures since.
#[derive(Debug, Default)]
struct CacheEntry {
    /// The last good answer and when it came.
    answer: Option<(Instant, Vec<Instance>)>,
    /// Consecutive failures of the registry.
    failures: u32,
    /// No new attempt before this.
    retry_at: Option<Instant>,
    /// What the last attempt failed with.
    last_error: Option<DiscoveryError>,
}

/// A cache of instance lists with a TTL, and a backoff for failing registries: after a failure
/// the registry is not asked again before a wait that doubles with each further failure (0.5 s
/// up to 30 s); meanwhile the last good answer is served, if there is one, else the last error.
#[derive(Debug, Default)]
struct TtlCache {
    entries: Mutex<HashMap<String, CacheEntry>>,
}

impl TtlCache {
    /// The cached answer for `key` while it is fresh, else `fetch`'s (at most one attempt per
    /// backoff period).
    async fn get_or_fetch<F>(
        &self,
        key: String,
        ttl: Duration,
        fetch: F,
    ) -> Result<Vec<Instance>, DiscoveryError>
    where
        F: Future<Output = Result<Vec<Instance>, DiscoveryError>>,
    {
        let now = Instant::now();
        {
            let entries = self.entries.lock();
            if let Some(e) = entries.get(&key) {
                if let Some((at, v)) = &e.answer
                    && now.duration_since(*at) < ttl
                {
                    return Ok(v.clone());
                }
                if e.retry_at.is_some_and(|t| now < t) {
                    return match (&e.answer, &e.last_error) {
                        (Some((_, v)), _) => Ok(v.clone()),
                        (None, Some(err)) => Err(err.clone()),
                        (None, None) => Err(DiscoveryError::Registry("backing off".to_owned())),
                    };
                }
            }
        }
        let got = fetch.await;
        let mut entries = self.entries.lock();
        if entries.len() > 4096 && !entries.contains_key(&key) {
            entries.clear();
        }
        let e = entries.entry(key).or_default();
        match got {
            Ok(v) => {
                *e = CacheEntry {
                    answer: Some((Instant::now(), v.clone())),
                    ..CacheEntry::default()
                };
                Ok(v)
            }
            Err(err) => {
                e.failures = e.failures.saturating_add(1);
                let wait = BACKOFF_BASE
                    .saturating_mul(1 << e.failures.saturating_sub(1).min(16))
                    .min(BACKOFF_MAX);
                e.retry_at = Some(Instant::now() + wait);
                e.last_error = Some(err.clone());
                match &e.answer {
                    Some((_, v)) => Ok(v.clone()),
                    None => Err(err),
                }
            }
        }
    }
}

/// A and AAAA records of the service name (`host` or `host:port`; port 80, or 443 with
/// `https`), through the system resolver, re-resolved after a TTL (default 30 s). When a
/// re-resolution fails, the last answer is used, and the resolver is not asked again before a
/// backoff (0.5 s, doubling up to 30 s).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use stagegate::model::{DiscoveryDefinition, RegistryType};
/// use stagegate::backend::{Discovery, DnsDiscovery};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dns = DnsDiscovery::new(Duration::from_secs(5));
/// let d = DiscoveryDefinition { registry: RegistryType::Dns, service_name: "localhost:8080".into(),
///     namespace: None, group: None, addresses: vec![], https: false };
/// let found = dns.instances(&d).await.unwrap();
/// assert!(found.iter().all(|i| i.port == 8080));
/// # });
/// ```
#[derive(Debug)]
pub struct DnsDiscovery {
    ttl: Duration,
    cache: TtlCache,
}

impl Default for DnsDiscovery {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl DnsDiscovery {
    /// Re-resolves after `ttl`.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cache: TtlCache::default(),
        }
    }
}

impl Discovery for DnsDiscovery {
    fn instances<'a>(
        &'a self,
        def: &'a DiscoveryDefinition,
    ) -> BoxFuture<'a, Result<Vec<Instance>, DiscoveryError>> {
        Box::pin(async move {
            let port = if def.https { 443 } else { 80 };
            let target = parse_host_port(&def.service_name, port).ok_or_else(|| {
                DiscoveryError::Registry(format!("`{}` is not a host name", def.service_name))
            })?;
            let key = target.address();
            let resolve = async {
                match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                    Ok(addrs) => {
                        let mut v: Vec<Instance> = addrs
                            .map(|a| Instance::new(a.ip().to_string(), a.port()))
                            .collect();
                        v.dedup();
                        Ok(v)
                    }
                    Err(e) => Err(DiscoveryError::Registry(format!(
                        "`{}` did not resolve: {e}",
                        target.host
                    ))),
                }
            };
            self.cache.get_or_fetch(key, self.ttl, resolve).await
        })
    }
}

/// A Nacos client for instance lists: `GET {server}/nacos/v1/ns/instance/list?serviceName=..&namespaceId=..&groupName=..&healthyOnly=true`
/// on the definition's addresses (the first that answers), keeping the hosts that are healthy,
/// enabled and weighted above zero. Lists are cached for a TTL (default 5 s); when a refresh
/// fails, the last list is used, and the registry is not asked again before a backoff (0.5 s,
/// doubling with each failure up to 30 s; the last error is answered meanwhile when there is no
/// list yet).
///
/// Tested against a local stand-in serving Nacos's documented instance-list JSON.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use stagegate::backend::{Backends, NacosDiscovery, Registries};
/// let registries = Registries::default().with_nacos(NacosDiscovery::new().with_ttl(Duration::from_secs(2)));
/// let backends = Backends::new().with_discovery(registries);
/// # let _ = backends;
/// ```
#[derive(Debug)]
pub struct NacosDiscovery {
    ttl: Duration,
    timeout: Duration,
    forwarder: HttpForwarder,
    cache: TtlCache,
}

impl Default for NacosDiscovery {
    fn default() -> Self {
        Self::new()
    }
}

impl NacosDiscovery {
    /// A client with a 5 s TTL and 3 s request timeout.
    #[must_use]
    pub fn new() -> Self {
        Self {
            ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
            forwarder: HttpForwarder::new(),
            cache: TtlCache::default(),
        }
    }

    /// How long a list is used before it is asked again.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long one request to a server may take.
    #[must_use]
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The HTTP client.
    #[must_use]
    pub fn with_forwarder(mut self, f: HttpForwarder) -> Self {
        self.forwarder = f;
        self
    }

    async fn ask(&self, def: &DiscoveryDefinition) -> Result<Vec<Instance>, DiscoveryError> {
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("serviceName", &def.service_name);
            if let Some(ns) = &def.namespace {
                query.append_pair("namespaceId", ns);
            }
            if let Some(g) = &def.group {
                query.append_pair("groupName", g);
            }
            query.append_pair("healthyOnly", "true");
            query.finish()
        };
        let mut last = String::from("no registry address");
        for server in &def.addresses {
            let base = if server.contains("://") {
                server.trim_end_matches('/').to_owned()
            } else {
                format!("http://{server}")
            };
            let url = format!("{base}/nacos/v1/ns/instance/list?{query}");
            match http_exchange(
                &self.forwarder,
                Method::GET,
                &url,
                None,
                Bytes::new(),
                self.timeout,
                4 * 1024 * 1024,
            )
            .await
            {
                Ok((status, _, body)) if status.is_success() => return parse_nacos(&body),
                Ok((status, _, _)) => last = format!("{server} answered {status}"),
                Err(e) => last = format!("{server}: {e}"),
            }
        }
        Err(DiscoveryError::Registry(last))
    }
}

#[derive(Deserialize)]
struct NacosList {
    #[serde(default)]
    hosts: Vec<NacosHost>,
}

#[derive(Deserialize)]
struct NacosHost {
    ip: String,
    port: u16,
    #[serde(default = "yes")]
    healthy: bool,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "one")]
    weight: f64,
}

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}

fn parse_nacos(body: &[u8]) -> Result<Vec<Instance>, DiscoveryError> {
    let list: NacosList = serde_json::from_slice(body)
        .map_err(|e| DiscoveryError::Registry(format!("invalid Nacos instance list: {e}")))?;
    Ok(list
        .hosts
        .into_iter()
        .filter(|h| h.healthy && h.enabled && h.weight > 0.0)
        .map(|h| Instance::new(h.ip, h.port))
        .collect())
}

impl Discovery for NacosDiscovery {
    fn instances<'a>(
        &'a self,
        def: &'a DiscoveryDefinition,
    ) -> BoxFuture<'a, Result<Vec<Instance>, DiscoveryError>> {
        Box::pin(async move {
            let key = format!(
                "{}|{}|{}|{}",
                def.addresses.join(","),
                def.namespace.as_deref().unwrap_or(""),
                def.group.as_deref().unwrap_or(""),
                def.service_name
            );
            let ask = async {
                self.ask(def).await.inspect_err(|e| {
                    tracing::warn!(error = %e, service = %def.service_name, "nacos refresh failed");
                })
            };
            self.cache.get_or_fetch(key, self.ttl, ask).await
        })
    }
}

/// The default [`Discovery`]: by the definition's registry type, [`StaticDiscovery`],
/// [`DnsDiscovery`], [`NacosDiscovery`], and for ZooKeeper and EDAS the providers configured
/// (none by default: `X501NI`).
///
/// # Examples
///
/// ```
/// use stagegate::backend::{Registries, StaticDiscovery};
/// // a deployment whose ZooKeeper lookups go through its own provider
/// let r = Registries::default().with_zookeeper(StaticDiscovery);
/// # let _ = r;
/// ```
#[derive(Default)]
pub struct Registries {
    dns: DnsDiscovery,
    nacos: NacosDiscovery,
    zookeeper: Option<Cached>,
    edas: Option<Cached>,
}

/// A plugged provider's answers, cached with a TTL and a backoff like Nacos's.
struct Cached {
    inner: Box<dyn Discovery>,
    ttl: Duration,
    cache: TtlCache,
}

impl Cached {
    fn new(d: impl Discovery) -> Self {
        Self {
            inner: Box::new(d),
            ttl: Duration::from_secs(5),
            cache: TtlCache::default(),
        }
    }

    fn instances<'a>(
        &'a self,
        def: &'a DiscoveryDefinition,
    ) -> BoxFuture<'a, Result<Vec<Instance>, DiscoveryError>> {
        Box::pin(async move {
            let key = service_key(def);
            self.cache
                .get_or_fetch(key, self.ttl, self.inner.instances(def))
                .await
        })
    }
}

/// What identifies a definition's service: registry, addresses, namespace, group and name.
fn service_key(def: &DiscoveryDefinition) -> String {
    format!(
        "{:?}|{}|{}|{}|{}",
        def.registry,
        def.addresses.join(","),
        def.namespace.as_deref().unwrap_or(""),
        def.group.as_deref().unwrap_or(""),
        def.service_name
    )
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries")
            .field("dns", &self.dns)
            .field("nacos", &self.nacos)
            .field("zookeeper", &self.zookeeper.is_some())
            .field("edas", &self.edas.is_some())
            .finish()
    }
}

impl Registries {
    /// The DNS client.
    #[must_use]
    pub fn with_dns(mut self, d: DnsDiscovery) -> Self {
        self.dns = d;
        self
    }

    /// The Nacos client.
    #[must_use]
    pub fn with_nacos(mut self, n: NacosDiscovery) -> Self {
        self.nacos = n;
        self
    }

    /// The provider for `ZOOKEEPER` definitions. Its answers are cached for 5 s, and after a
    /// failure it is not asked again before a backoff (the last answer serves meanwhile).
    #[must_use]
    pub fn with_zookeeper(mut self, d: impl Discovery) -> Self {
        self.zookeeper = Some(Cached::new(d));
        self
    }

    /// The provider for `EDAS` definitions, cached as [`zookeeper`](Self::with_zookeeper)'s.
    #[must_use]
    pub fn with_edas(mut self, d: impl Discovery) -> Self {
        self.edas = Some(Cached::new(d));
        self
    }
}

impl Discovery for Registries {
    fn instances<'a>(
        &'a self,
        def: &'a DiscoveryDefinition,
    ) -> BoxFuture<'a, Result<Vec<Instance>, DiscoveryError>> {
        match def.registry {
            RegistryType::Static => StaticDiscovery.instances(def),
            RegistryType::Dns => self.dns.instances(def),
            RegistryType::Nacos => self.nacos.instances(def),
            RegistryType::Zookeeper => match &self.zookeeper {
                Some(z) => z.instances(def),
                None => {
                    Box::pin(async { Err(DiscoveryError::Unsupported(RegistryType::Zookeeper)) })
                }
            },
            RegistryType::Edas => match &self.edas {
                Some(z) => z.instances(def),
                None => Box::pin(async { Err(DiscoveryError::Unsupported(RegistryType::Edas)) }),
            },
        }
    }
}

/// When an instance is ejected and retried.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use stagegate::backend::EjectionPolicy;
/// let p = EjectionPolicy::default();
/// assert_eq!((p.failures, p.cool_down), (3, Duration::from_secs(10)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EjectionPolicy {
    /// Consecutive connect failures (`D504CO`) that eject an instance.
    pub failures: u32,
    /// How long an ejected instance is left out before it is tried again (one more failure
    /// ejects it again).
    pub cool_down: Duration,
}

impl EjectionPolicy {
    /// A policy.
    #[must_use]
    pub fn new(failures: u32, cool_down: Duration) -> Self {
        Self {
            failures: failures.max(1),
            cool_down,
        }
    }
}

impl Default for EjectionPolicy {
    fn default() -> Self {
        Self {
            failures: 3,
            cool_down: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Health {
    failures: u32,
    ejected_until: Option<Instant>,
}

/// Round-robin counters per service and health per instance address.
#[derive(Debug)]
pub(crate) struct Balancer {
    policy: EjectionPolicy,
    counters: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    health: Mutex<HashMap<String, Health>>,
}

impl Balancer {
    pub(crate) fn new(policy: EjectionPolicy) -> Self {
        Self {
            policy,
            counters: Mutex::default(),
            health: Mutex::default(),
        }
    }

    /// The next instance round-robin among those neither ejected nor in `skip`.
    fn pick(&self, service: &str, instances: &[Instance], skip: &[Instance]) -> Option<Instance> {
        let now = Instant::now();
        let mut usable: Vec<&Instance> = {
            let health = self.health.lock();
            instances
                .iter()
                .filter(|i| {
                    !skip.contains(i)
                        && health
                            .get(&i.address())
                            .and_then(|h| h.ejected_until)
                            .is_none_or(|until| until <= now)
                })
                .collect()
        };
        if usable.is_empty() {
            return None;
        }
        let counter = {
            let mut c = self.counters.lock();
            if c.len() > 4096 {
                c.clear();
            }
            Arc::clone(c.entry(service.to_owned()).or_default())
        };
        let n = counter.fetch_add(1, Ordering::Relaxed) % usable.len();
        Some(usable.swap_remove(n).clone())
    }

    fn record(&self, instance: &Instance, connect_failed: bool) {
        let mut health = self.health.lock();
        let key = instance.address();
        if connect_failed {
            let h = health.entry(key).or_default();
            h.failures = h.failures.saturating_add(1);
            if h.failures >= self.policy.failures {
                h.ejected_until = Some(Instant::now() + self.policy.cool_down);
                tracing::warn!(instance = %instance.address(), failures = h.failures, "instance ejected");
            }
        } else {
            health.remove(&key);
        }
    }
}

/// Instances tried at most for one request whose connection is refused.
const MAX_ATTEMPTS: usize = 3;
/// The largest request body kept to retry a refused connection on another instance.
const RETRY_BODY_LIMIT: u64 = 64 * 1024;

/// Whether a request may be sent again after a failed connection: its method is idempotent
/// (RFC 9110 §9.2.2). The connection never opened, so the first instance saw nothing.
fn retryable(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

pub(super) async fn dispatch(
    discovery: &dyn Discovery,
    balancer: &Balancer,
    def: &DiscoveryDefinition,
    mut call: BackendCall<'_>,
) -> Result<Response<GatewayBody>, GatewayError> {
    let instances = discovery.instances(def).await?;
    let service = service_key(def);
    let no_instance = || DiscoveryError::NoHealthyInstance(def.service_name.clone());
    let scheme = if def.https { "https" } else { "http" };
    let method = backend_method(call.route.api(), &call.parts.method);
    // A refused connection is retried on another instance when the request can be sent again:
    // an idempotent method and a body that is empty or small enough to keep.
    let replay: Option<Bytes> = if instances.len() < 2 || !retryable(&method) {
        None
    } else if http_body::Body::is_end_stream(&call.body) {
        Some(Bytes::new())
    } else if http_body::Body::size_hint(&call.body)
        .exact()
        .is_some_and(|n| n <= RETRY_BODY_LIMIT)
    {
        let body = std::mem::take(&mut call.body);
        let bytes = http_body_util::BodyExt::collect(body)
            .await
            .map_err(|e| super::body_error(&crate::proxy::BodyError::Stream(e)))?
            .to_bytes();
        Some(bytes)
    } else {
        None
    };
    let mut tried: Vec<Instance> = Vec::new();
    let mut refused: Option<ProxyError> = None;
    if let Some(body) = &replay {
        // Every attempt but the last sends a copy; the last sends the call itself.
        for _ in 1..MAX_ATTEMPTS {
            let Some(instance) = balancer.pick(&service, &instances, &tried) else {
                break;
            };
            let upstream = upstream_of(scheme, &instance)?;
            match forward_call(copy_call(&call, body), &upstream).await {
                Err(e @ ProxyError::Connect { .. }) => {
                    balancer.record(&instance, true);
                    tracing::debug!(instance = %instance.address(), "connection failed; trying another instance");
                    tried.push(instance);
                    refused = Some(e);
                }
                res => {
                    balancer.record(&instance, false);
                    return res.map_err(GatewayError::from);
                }
            }
        }
    }
    let Some(instance) = balancer.pick(&service, &instances, &tried) else {
        return Err(refused.map_or_else(|| no_instance().into(), GatewayError::from));
    };
    let upstream = upstream_of(scheme, &instance)?;
    let call = match replay {
        Some(body) => BackendCall {
            body: GatewayBody::full(body),
            ..call
        },
        None => call,
    };
    let res = forward_call(call, &upstream).await;
    balancer.record(&instance, matches!(res, Err(ProxyError::Connect { .. })));
    res.map_err(GatewayError::from)
}

fn upstream_of(scheme: &str, instance: &Instance) -> Result<UpstreamTarget, GatewayError> {
    UpstreamTarget::parse(&format!("{scheme}://{}", instance.address()))
        .map_err(|e| DiscoveryError::Registry(format!("invalid instance address: {e}")).into())
}

/// A copy of `call` with `body`, for an attempt that may be repeated.
fn copy_call<'a>(call: &BackendCall<'a>, body: &Bytes) -> BackendCall<'a> {
    BackendCall {
        route: call.route,
        stage: call.stage,
        parts: call.parts,
        path_params: call.path_params,
        mapped: call.mapped.clone(),
        body: GatewayBody::full(body.clone()),
        request_id: call.request_id,
        caller: call.caller,
        client_addr: call.client_addr,
        peer_addr: call.peer_addr,
        https: call.https,
        timeout: call.timeout,
        forwarder: call.forwarder,
        host: call.host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(parse_host_port("h:81", 80), Some(Instance::new("h", 81)));
        assert_eq!(
            parse_host_port("http://h:81/", 80),
            Some(Instance::new("h", 81))
        );
        assert_eq!(parse_host_port("h", 443), Some(Instance::new("h", 443)));
        assert_eq!(
            parse_host_port("[::1]:9", 80),
            Some(Instance::new("::1", 9))
        );
        assert_eq!(parse_host_port("h:x", 80), None);
    }

    #[test]
    fn nacos_lists_keep_healthy_enabled_weighted_hosts() {
        let body = br#"{"hosts":[
            {"ip":"10.0.0.1","port":1,"healthy":true,"enabled":true,"weight":1.0},
            {"ip":"10.0.0.2","port":2,"healthy":false,"enabled":true,"weight":1.0},
            {"ip":"10.0.0.3","port":3,"healthy":true,"enabled":false,"weight":1.0},
            {"ip":"10.0.0.4","port":4,"healthy":true,"enabled":true,"weight":0.0}]}"#;
        assert_eq!(
            parse_nacos(body).unwrap(),
            vec![Instance::new("10.0.0.1", 1)]
        );
        assert!(parse_nacos(b"nope").is_err());
    }

    #[test]
    fn ejected_instances_are_skipped_until_the_cool_down_ends() {
        let b = Balancer::new(EjectionPolicy::new(2, Duration::from_millis(50)));
        let dead = Instance::new("127.0.0.1", 1);
        let list = [dead.clone()];
        b.record(&dead, true);
        assert!(b.pick("s", &list, &[]).is_some());
        b.record(&dead, true);
        assert!(b.pick("s", &list, &[]).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.pick("s", &list, &[]).is_some());
        assert!(b.pick("s", &list, &list).is_none(), "skipped");
        b.record(&dead, false);
        assert!(b.pick("s", &list, &[]).is_some());
    }
}
