//! [`HttpForwarder`]: the pooled HTTP/1.1 + HTTP/2 client that streams requests to backends.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection as _, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service as _;

use super::body::{DeadlineBody, GatewayBody};
use super::error::ProxyError;
use super::headers::{append_forwarded_headers, strip_hop_by_hop};
use super::pool::{Checkin, Conn, Pool, PoolKey, PooledBody};
use super::target::UpstreamTarget;

/// Default connect timeout of [`HttpForwarder::new`].
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default idle time of a pooled backend connection.
const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default number of idle connections kept per backend host.
const DEFAULT_MAX_IDLE_PER_HOST: usize = 32;
/// Default forwarding timeout (Alibaba's default backend timeout is 10 000 ms).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit of a backend response's header section (see
/// [`HttpForwarderBuilder::with_max_response_header_bytes`]).
///
/// # Examples
///
/// ```
/// assert_eq!(stagegate::proxy::DEFAULT_MAX_RESPONSE_HEADER_BYTES, 64 * 1024);
/// ```
pub const DEFAULT_MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;
/// The smallest limit hyper's HTTP/1.1 client takes (its minimum read buffer).
const MIN_RESPONSE_HEADER_BYTES: usize = 8 * 1024;

/// Per-request facts the forwarder needs besides the request itself.
///
/// # Examples
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use std::time::Duration;
/// use http::{HeaderValue, uri::Scheme};
/// use stagegate::proxy::ForwardContext;
///
/// let ctx = ForwardContext::new(Duration::from_secs(3))
///     .with_client_addr(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)))
///     .with_original_host(HeaderValue::from_static("api.example.com"))
///     .with_original_scheme(Scheme::HTTPS);
/// assert_eq!(ctx.timeout, Duration::from_secs(3));
/// assert_eq!(ForwardContext::default().timeout, Duration::from_secs(10));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ForwardContext {
    /// The client's address, appended to `X-Forwarded-For`.
    pub client_addr: Option<IpAddr>,
    /// The `Host` the client asked for, sent as `X-Forwarded-Host`. When `None`, the incoming
    /// request's `Host` header (or its URI authority) is used.
    pub original_host: Option<HeaderValue>,
    /// The scheme the client used, sent as `X-Forwarded-Proto`. When `None`, a client-sent
    /// `X-Forwarded-Proto` is left as is.
    pub original_scheme: Option<Scheme>,
    /// The backend timeout: a deadline from the start of [`HttpForwarder::forward`] for the
    /// response headers *and* the whole response body (as Alibaba's documented limits have
    /// it: the response must arrive within the API timeout). It includes connecting, so a connect that outlasts it is
    /// reported as `D504TO`, not `D504CO`; keep the forwarder's connect timeout shorter.
    pub timeout: Duration,
}

impl ForwardContext {
    /// A context with the given timeout and nothing else known.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = stagegate::proxy::ForwardContext::new(std::time::Duration::from_millis(500));
    /// assert!(ctx.client_addr.is_none());
    /// ```
    pub fn new(timeout: Duration) -> Self {
        Self {
            client_addr: None,
            original_host: None,
            original_scheme: None,
            timeout,
        }
    }

    /// Sets the client address.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = stagegate::proxy::ForwardContext::default().with_client_addr([127, 0, 0, 1].into());
    /// assert!(ctx.client_addr.is_some());
    /// ```
    #[must_use]
    pub fn with_client_addr(mut self, addr: IpAddr) -> Self {
        self.client_addr = Some(addr);
        self
    }

    /// Sets the original `Host`.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = stagegate::proxy::ForwardContext::default()
    ///     .with_original_host(http::HeaderValue::from_static("a.example.com"));
    /// assert!(ctx.original_host.is_some());
    /// ```
    #[must_use]
    pub fn with_original_host(mut self, host: HeaderValue) -> Self {
        self.original_host = Some(host);
        self
    }

    /// Sets the original scheme.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = stagegate::proxy::ForwardContext::default().with_original_scheme(http::uri::Scheme::HTTP);
    /// assert!(ctx.original_scheme.is_some());
    /// ```
    #[must_use]
    pub fn with_original_scheme(mut self, scheme: Scheme) -> Self {
        self.original_scheme = Some(scheme);
        self
    }
}

impl Default for ForwardContext {
    /// A 10 s timeout, nothing else known.
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT)
    }
}

/// Settings for an [`HttpForwarder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let forwarder = stagegate::proxy::HttpForwarder::builder()
///     .with_connect_timeout(Duration::from_millis(500))
///     .with_pool_idle_timeout(Duration::from_secs(30))
///     .with_pool_max_idle_per_host(8)
///     .build();
/// # let _ = forwarder;
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct HttpForwarderBuilder {
    connect_timeout: Option<Duration>,
    pool_idle_timeout: Option<Duration>,
    pool_max_idle_per_host: usize,
    tls_config: Option<rustls::ClientConfig>,
    max_response_header_bytes: usize,
}

impl HttpForwarderBuilder {
    /// The largest backend response header section accepted (default
    /// [`DEFAULT_MAX_RESPONSE_HEADER_BYTES`], 64 KiB; at least 8 KiB). A larger one fails the
    /// request with [`ProxyError::ResponseHeaderTooLarge`] (`D502FC`), over HTTP/1.1 (where the
    /// status line and headers must fit) and HTTP/2 (the header list size, which is also
    /// advertised to the backend). HTTP/1.1 responses are limited to 100 header fields.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = stagegate::proxy::HttpForwarder::builder().with_max_response_header_bytes(16 * 1024);
    /// # let _ = b;
    /// ```
    #[must_use]
    pub fn with_max_response_header_bytes(mut self, bytes: usize) -> Self {
        self.max_response_header_bytes = bytes.max(MIN_RESPONSE_HEADER_BYTES);
        self
    }

    /// How long a TCP connect may take (default 3 s); `Timeout connecting to ..` after that.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = stagegate::proxy::HttpForwarder::builder().with_connect_timeout(std::time::Duration::from_secs(1));
    /// # let _ = b;
    /// ```
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long an idle pooled connection is kept (default 90 s).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = stagegate::proxy::HttpForwarder::builder().with_pool_idle_timeout(std::time::Duration::from_secs(5));
    /// # let _ = b;
    /// ```
    #[must_use]
    pub fn with_pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = Some(timeout);
        self
    }

    /// How many idle connections are kept per backend host (default 32; 0 disables reuse).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = stagegate::proxy::HttpForwarder::builder().with_pool_max_idle_per_host(4);
    /// # let _ = b;
    /// ```
    #[must_use]
    pub fn with_pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// Uses `config` for `https` backends instead of the default (ring provider, Mozilla roots),
    /// e.g. to trust a private CA.
    ///
    /// Its `alpn_protocols` are replaced by `h2, http/1.1`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let roots = rustls::RootCertStore::empty(); // add your CA here
    /// let config = rustls::ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()
    ///     .unwrap()
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let b = stagegate::proxy::HttpForwarder::builder().with_tls_config(config);
    /// # let _ = b;
    /// ```
    #[must_use]
    pub fn with_tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Builds the forwarder. Needs no runtime; requests need a Tokio runtime with time enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// let forwarder = stagegate::proxy::HttpForwarder::builder().build();
    /// # let _ = forwarder;
    /// ```
    pub fn build(self) -> HttpForwarder {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(self.connect_timeout);

        let mut tls = self.tls_config.unwrap_or_else(default_tls_config);
        // hyper-rustls sets ALPN itself and refuses a config that already has it.
        tls.alpn_protocols.clear();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);

        let mut h1 = http1::Builder::new();
        h1.max_buf_size(self.max_response_header_bytes);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new());
        h2.max_header_list_size(u32::try_from(self.max_response_header_bytes).unwrap_or(u32::MAX));
        HttpForwarder {
            inner: Arc::new(Inner {
                connector,
                pool: Arc::new(Pool::new(
                    self.pool_idle_timeout,
                    self.pool_max_idle_per_host,
                )),
                in_flight: std::sync::atomic::AtomicUsize::new(0),
                h1,
                max_response_header_bytes: self.max_response_header_bytes,
                h2,
            }),
        }
    }
}

impl Default for HttpForwarderBuilder {
    fn default() -> Self {
        Self {
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            pool_idle_timeout: Some(DEFAULT_POOL_IDLE_TIMEOUT),
            pool_max_idle_per_host: DEFAULT_MAX_IDLE_PER_HOST,
            tls_config: None,
            max_response_header_bytes: DEFAULT_MAX_RESPONSE_HEADER_BYTES,
        }
    }
}

/// The ring provider with Mozilla's roots, independent of any process-wide default provider.
pub(crate) fn default_tls_config() -> rustls::ClientConfig {
    use hyper_rustls::ConfigBuilderExt as _;
    rustls::ClientConfig::builder_with_provider(Arc::new(ring_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_webpki_roots()
        .with_no_client_auth()
}

/// rustls's ring provider, named in this one place.
///
/// Newer rustls 0.23 releases mark `crypto::ring::default_provider` deprecated (0.24 moves the
/// provider to its own crate); in 0.23 it is still the way to choose ring without installing a
/// process-wide default, so the warning is silenced here rather than in every caller.
#[allow(
    deprecated,
    reason = "the only way to name ring explicitly in rustls 0.23; see above"
)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A view of an [`HttpForwarder`]'s connection pool (see [`HttpForwarder::pool_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Requests sent to a backend whose response head has not arrived yet.
    pub in_flight: usize,
    /// Idle HTTP/1.1 connections kept for reuse.
    pub idle: usize,
    /// Shared HTTP/2 connections (each carries many requests at once).
    pub http2: usize,
    /// Backends (`scheme://authority`) with an entry in the pool.
    pub backends: usize,
}

/// Counts one request in flight until dropped (answered, failed or cancelled).
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What the clones of one [`HttpForwarder`] share: the connector, the pool, the handshake
/// settings.
struct Inner {
    connector: HttpsConnector<HttpConnector>,
    pool: Arc<Pool>,
    /// Requests sent and not yet answered (response head), for [`PoolStats::in_flight`].
    in_flight: std::sync::atomic::AtomicUsize,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    max_response_header_bytes: usize,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpForwarder")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// Forwards requests to HTTP(S) backends over pooled keep-alive connections, streaming bodies
/// both ways.
///
/// `http` backends are spoken to in HTTP/1.1; `https` backends in HTTP/2 or HTTP/1.1 as
/// negotiated by ALPN. Cloning is cheap and clones share the connection pool.
///
/// What [`forward`](Self::forward) does to the request:
/// * the URI becomes the target's scheme and authority plus the request's own path and query
///   (the caller has already rewritten them to the backend path);
/// * `Host` becomes the target's host override, else the target authority;
/// * hop-by-hop headers are removed (both directions), `X-Forwarded-For/Proto/Host` added;
/// * upgrades (WebSocket) are not supported.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use stagegate::proxy::{ForwardContext, GatewayBody, HttpForwarder, UpstreamTarget};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let forwarder = HttpForwarder::new();
/// let target = UpstreamTarget::parse("http://127.0.0.1:8080")?;
/// let ctx = ForwardContext::new(Duration::from_secs(5)).with_client_addr([127, 0, 0, 1].into());
/// let request = http::Request::get("/v1/users?id=7").body(GatewayBody::empty())?;
/// match forwarder.forward(request, &target, &ctx).await {
///     Ok(response) => println!("backend said {}", response.status()),
///     Err(err) => println!("{} {} {}", err.status(), err.code(), err.wire_message()),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HttpForwarder {
    inner: Arc<Inner>,
}

impl HttpForwarder {
    /// A forwarder with default settings (see [`HttpForwarderBuilder`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let forwarder = stagegate::proxy::HttpForwarder::new();
    /// let shared_pool = forwarder.clone();
    /// # let _ = shared_pool;
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts configuring a forwarder.
    ///
    /// # Examples
    ///
    /// ```
    /// let forwarder = stagegate::proxy::HttpForwarder::builder().with_pool_max_idle_per_host(1).build();
    /// # let _ = forwarder;
    /// ```
    pub fn builder() -> HttpForwarderBuilder {
        HttpForwarderBuilder::default()
    }

    /// Whether `other` is a clone of this forwarder (shares its pool).
    #[cfg(feature = "metrics")]
    pub(crate) fn same_pool(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// What the connection pool holds now, and how many requests wait for a backend's answer
    /// (for the `metrics` feature's gauges, or any monitoring). One short lock of the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = stagegate::proxy::HttpForwarder::new().pool_stats();
    /// assert_eq!((stats.in_flight, stats.idle, stats.backends), (0, 0, 0));
    /// ```
    #[must_use]
    pub fn pool_stats(&self) -> PoolStats {
        let (backends, idle, http2) = self.inner.pool.stats();
        PoolStats {
            in_flight: self
                .inner
                .in_flight
                .load(std::sync::atomic::Ordering::Relaxed),
            idle,
            http2,
            backends,
        }
    }

    /// Sends `req` to `target` and returns the backend's response with its body streaming.
    ///
    /// `ctx.timeout` is one deadline for the whole exchange: when the response headers have not
    /// arrived by then the result is [`ProxyError::Timeout`]; when the response body has not
    /// finished by then, the body stream ends with a [`BodyError::Timeout`](crate::proxy::BodyError)
    /// error (the connection to the client is then cut, as headers were already sent).
    ///
    /// # Errors
    ///
    /// A [`ProxyError`], whose [`code`](ProxyError::code) and [`status`](ProxyError::status)
    /// give the gateway error response.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use stagegate::proxy::{ForwardContext, GatewayBody, HttpForwarder, UpstreamTarget};
    /// # async fn run(forwarder: HttpForwarder) -> Result<(), Box<dyn std::error::Error>> {
    /// let target = UpstreamTarget::parse("https://backend.internal")?;
    /// let req = http::Request::post("/orders").body(GatewayBody::full("{}"))?;
    /// let res = forwarder.forward(req, &target, &ForwardContext::default()).await?;
    /// # let _ = res;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn forward(
        &self,
        req: Request<GatewayBody>,
        target: &UpstreamTarget,
        ctx: &ForwardContext,
    ) -> Result<Response<GatewayBody>, ProxyError> {
        let _in_flight = InFlight::enter(&self.inner.in_flight);
        let deadline = tokio::time::Instant::now() + ctx.timeout;
        let (mut parts, body) = req.into_parts();

        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let original_host = ctx
            .original_host
            .clone()
            .or_else(|| parts.headers.get(header::HOST).cloned())
            .or_else(|| {
                parts
                    .uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            });

        // The backend connection has its own version (ALPN decides for https).
        parts.version = Version::HTTP_11;
        // Extensions belong to the incoming connection / host app, not to the backend request.
        parts.extensions = http::Extensions::new();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        if let Some(host) = target.host_override() {
            parts.headers.insert(header::HOST, host.clone());
        }
        // Without an override, `Host` (HTTP/1.1) or `:authority` (HTTP/2) comes from the target.
        append_forwarded_headers(
            &mut parts.headers,
            ctx.client_addr,
            ctx.original_scheme.as_ref(),
            original_host.as_ref(),
        );

        let request = Request::from_parts(parts, body);
        let exchange = self.exchange(request, path_and_query, target);
        let (response, checkin) = match tokio::time::timeout_at(deadline, exchange).await {
            Err(_elapsed) => {
                tracing::debug!(%target, timeout = ?ctx.timeout, "backend request timed out");
                return Err(ProxyError::Timeout {
                    timeout: ctx.timeout,
                });
            }
            Ok(Err(err)) => {
                tracing::debug!(%target, error = %err, code = err.code(), "backend request failed");
                return Err(err);
            }
            Ok(Ok(exchanged)) => exchanged,
        };

        let (mut parts, body) = response.into_parts();
        // hyper's own bounds are loose (HTTP/1.1 parses whatever one read brought in): the
        // limit is checked on what arrived, as the gateway checks a request's headers
        let header_bytes: usize = parts
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        let limit = self.inner.max_response_header_bytes;
        if header_bytes > limit {
            tracing::debug!(%target, header_bytes, limit, "backend response header too large");
            return Err(ProxyError::ResponseHeaderTooLarge {
                source: format!("{header_bytes} bytes of response headers, over {limit}").into(),
            });
        }
        strip_hop_by_hop(&mut parts.headers);
        parts.version = Version::HTTP_11;
        Ok(Response::from_parts(
            parts,
            GatewayBody::new(DeadlineBody::new(PooledBody::new(body, checkin), deadline)),
        ))
    }

    /// Sends `req` on a pooled or new connection and returns the response with, for an HTTP/1.1
    /// connection whose response body is still to come, what checks the connection back in.
    ///
    /// A request refused by a pooled connection before any of it was written (the backend closed
    /// the idle connection meanwhile) is retried on another connection.
    async fn exchange(
        &self,
        mut req: Request<GatewayBody>,
        path_and_query: PathAndQuery,
        target: &UpstreamTarget,
    ) -> Result<(Response<Incoming>, Option<Checkin>), ProxyError> {
        let key = PoolKey::of(target);
        let has_host = req.headers().contains_key(header::HOST);
        loop {
            let (conn, reused) = match self.inner.pool.checkout(&key) {
                Some(conn) => (conn, true),
                // Boxed: connecting (TLS, handshakes) is a large future that most requests,
                // served from the pool, should not carry inline.
                None => (Box::pin(self.connect(target, &key)).await?, false),
            };
            let mut refused = match conn {
                Conn::H1(mut tx) => {
                    // Origin-form, as HTTP/1.1 wants it, and a `Host`.
                    *req.uri_mut() = Uri::from(path_and_query.clone());
                    if !has_host {
                        req.headers_mut()
                            .insert(header::HOST, target.default_host().clone());
                    }
                    match tx.try_send_request(req).await {
                        Ok(res) => {
                            let checkin = Checkin {
                                pool: Arc::clone(&self.inner.pool),
                                key,
                                tx,
                            };
                            // A response whose body is already complete leaves the connection
                            // ready: back to the pool now, not when the body is dropped.
                            if checkin.tx.is_ready() {
                                checkin.pool.checkin(checkin.key, checkin.tx);
                                return Ok((res, None));
                            }
                            return Ok((res, Some(checkin)));
                        }
                        Err(err) => err,
                    }
                }
                Conn::H2(mut tx) => {
                    // Absolute-form: hyper sends `:scheme` and `:authority` from it.
                    *req.uri_mut() = target
                        .uri_for(path_and_query.clone())
                        .map_err(ProxyError::InvalidRequest)?;
                    if !has_host {
                        req.headers_mut().remove(header::HOST);
                    }
                    match tx.try_send_request(req).await {
                        Ok(res) => return Ok((res, None)),
                        Err(err) => err,
                    }
                }
            };
            // Either protocol: a reused connection that refused the request unsent gives it
            // back for another try; anything else is the exchange's error.
            match refused.take_message() {
                Some(unsent) if reused => {
                    tracing::trace!(%target, error = %refused.error(), "pooled connection refused the request, retrying");
                    req = unsent;
                }
                _ => {
                    return Err(ProxyError::from_exchange_error(Box::new(
                        refused.into_error(),
                    )));
                }
            }
        }
    }

    /// Opens a connection to `target` (TCP, then TLS for https with ALPN), runs its HTTP/1.1 or
    /// HTTP/2 handshake and spawns the task that drives it. An HTTP/2 connection is shared in
    /// the pool at once; an HTTP/1.1 one belongs to the request until checked in.
    async fn connect(&self, target: &UpstreamTarget, key: &PoolKey) -> Result<Conn, ProxyError> {
        let dst = Uri::builder()
            .scheme(target.scheme().clone())
            .authority(target.authority().clone())
            .path_and_query("/")
            .build()
            .map_err(ProxyError::InvalidRequest)?;
        let mut connector = self.inner.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| ProxyError::from_connect_error(e, target))?;
        let io = connector
            .call(dst)
            .await
            .map_err(|e| ProxyError::from_connect_error(e, target))?;
        let exchange_err = |e: hyper::Error| ProxyError::from_exchange_error(Box::new(e));

        if io.connected().is_negotiated_h2() {
            let (mut tx, conn) = self.inner.h2.handshake(io).await.map_err(exchange_err)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "backend connection ended with an error");
                }
            });
            tx.ready().await.map_err(exchange_err)?;
            self.inner.pool.share_h2(key.clone(), &tx);
            return Ok(Conn::H2(tx));
        }

        let (mut tx, conn) = self.inner.h1.handshake(io).await.map_err(exchange_err)?;
        // The connection's own error, if it ends before it is ever ready, says more than the
        // sender's `closed`.
        let (err_tx, err_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "backend connection ended with an error");
                let _ = err_tx.send(e);
            }
        });
        match tx.ready().await {
            Ok(()) => Ok(Conn::H1(tx)),
            Err(e) if e.is_closed() => Err(exchange_err(err_rx.await.unwrap_or(e))),
            Err(e) => Err(exchange_err(e)),
        }
    }
}

impl Default for HttpForwarder {
    fn default() -> Self {
        Self::new()
    }
}
