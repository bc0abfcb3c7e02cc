//! The connection pool behind [`HttpForwarder`](super::HttpForwarder), on hyper's connection API.
//!
//! One entry per backend `scheme://authority`: a stack of idle HTTP/1.1 senders (each owns one
//! keep-alive connection, driven by its own task) and at most one shared HTTP/2 sender (a
//! multiplexed connection, cloned for every request). A request takes an idle sender under a
//! short lock, or connects; an HTTP/1.1 sender goes back when its connection is ready for the
//! next request (right after the response when the body is already complete, else when the
//! response body ends). Idle connections expire after the idle timeout, at checkout and in a
//! background sweep, and at most `max_idle_per_host` are kept per backend.
//!
//! Compared with hyper-util's legacy client, which this replaces, a request costs no boxed
//! futures, no client clone, no `Host` formatting (the target precomputes it) and no spawned
//! task to return the connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use parking_lot::Mutex;
use rustc_hash::FxBuildHasher;
use tokio::time::Instant;

use super::body::GatewayBody;
use super::target::UpstreamTarget;

/// The shortest interval of the idle sweep (a shorter idle timeout is still honoured at
/// checkout).
const MIN_SWEEP: Duration = Duration::from_millis(100);

/// Which backend a connection belongs to: `scheme://authority`, lowercased.
///
/// Built once per target ([`UpstreamTarget`] keeps it), so a request's checkout and check-in
/// hash a short string and compare pointers first, where hashing and comparing an `Authority`
/// folds case byte by byte (two map operations per request, about 2 % of a passthrough
/// request's instructions before).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey(Arc<str>);

impl PoolKey {
    /// The key of `scheme` and `authority` (which compare without regard to case).
    pub(crate) fn new(scheme: &Scheme, authority: &Authority) -> Self {
        let (scheme, authority) = (scheme.as_str(), authority.as_str());
        let mut key = String::with_capacity(scheme.len() + 3 + authority.len());
        key.push_str(scheme);
        key.push_str("://");
        key.push_str(authority);
        key.make_ascii_lowercase();
        Self(key.into())
    }

    pub(crate) fn of(target: &UpstreamTarget) -> Self {
        target.pool_key().clone()
    }
}

impl std::fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A connection ready for one request.
pub(crate) enum Conn {
    /// An HTTP/1.1 connection, owned by this request until it is checked in again.
    H1(http1::SendRequest<GatewayBody>),
    /// A handle on a shared HTTP/2 connection.
    H2(http2::SendRequest<GatewayBody>),
}

struct Idle {
    tx: http1::SendRequest<GatewayBody>,
    since: Instant,
}

struct Shared {
    tx: http2::SendRequest<GatewayBody>,
    /// Last handed out: an unused HTTP/2 connection expires like an idle HTTP/1.1 one.
    since: Instant,
}

#[derive(Default)]
struct Host {
    idle: Vec<Idle>,
    h2: Option<Shared>,
}

impl Host {
    fn is_empty(&self) -> bool {
        self.idle.is_empty() && self.h2.is_none()
    }
}

/// The idle connections of every backend.
pub(crate) struct Pool {
    hosts: Mutex<HashMap<PoolKey, Host, FxBuildHasher>>,
    idle_timeout: Option<Duration>,
    max_idle_per_host: usize,
    sweeping: AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle_timeout", &self.idle_timeout)
            .field("max_idle_per_host", &self.max_idle_per_host)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(idle_timeout: Option<Duration>, max_idle_per_host: usize) -> Self {
        Self {
            hosts: Mutex::new(HashMap::default()),
            idle_timeout,
            max_idle_per_host,
            sweeping: AtomicBool::new(false),
        }
    }

    fn expired(&self, since: Instant, now: Instant) -> bool {
        self.idle_timeout
            .is_some_and(|t| now.saturating_duration_since(since) >= t)
    }

    /// A pooled connection to `key` ready for a request, if there is one. Expired and closed
    /// connections met on the way are dropped (which closes them).
    pub(crate) fn checkout(&self, key: &PoolKey) -> Option<Conn> {
        let now = Instant::now();
        let mut hosts = self.hosts.lock();
        let host = hosts.get_mut(key)?;
        if let Some(shared) = &mut host.h2 {
            if !shared.tx.is_closed() && !self.expired(shared.since, now) {
                shared.since = now;
                return Some(Conn::H2(shared.tx.clone()));
            }
            host.h2 = None;
        }
        // Most recently used first: its connection is the least likely to have been closed.
        while let Some(idle) = host.idle.pop() {
            if idle.tx.is_ready() && !self.expired(idle.since, now) {
                return Some(Conn::H1(idle.tx));
            }
        }
        None
    }

    /// Returns an HTTP/1.1 connection after its exchange. It is pooled once ready for the next
    /// request: now if it is, else from a small task when it becomes ready. A closed connection,
    /// or one beyond `max_idle_per_host`, is dropped.
    pub(crate) fn checkin(self: &Arc<Self>, key: PoolKey, mut tx: http1::SendRequest<GatewayBody>) {
        if self.max_idle_per_host == 0 || tx.is_closed() {
            return;
        }
        if tx.is_ready() {
            self.put(key, tx);
            return;
        }
        // Still finishing the exchange (e.g. writing the rest of the request body).
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = Arc::downgrade(self);
        runtime.spawn(async move {
            if tx.ready().await.is_ok()
                && let Some(pool) = pool.upgrade()
            {
                pool.put(key, tx);
            }
        });
    }

    fn put(self: &Arc<Self>, key: PoolKey, tx: http1::SendRequest<GatewayBody>) {
        {
            let mut hosts = self.hosts.lock();
            let host = hosts.entry(key).or_default();
            if host.idle.len() >= self.max_idle_per_host {
                return;
            }
            host.idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
        self.start_sweep();
    }

    /// Shares a new HTTP/2 connection for later requests to `key`. When another one is
    /// already shared (two requests connected at once), the older one stays and this one serves
    /// only the request that opened it.
    pub(crate) fn share_h2(self: &Arc<Self>, key: PoolKey, tx: &http2::SendRequest<GatewayBody>) {
        if self.max_idle_per_host == 0 {
            return;
        }
        {
            let mut hosts = self.hosts.lock();
            let host = hosts.entry(key).or_default();
            if host.h2.as_ref().is_some_and(|s| !s.tx.is_closed()) {
                return;
            }
            host.h2 = Some(Shared {
                tx: tx.clone(),
                since: Instant::now(),
            });
        }
        self.start_sweep();
    }

    /// Drops expired and closed connections; forgets backends with none left.
    fn sweep(&self) {
        let now = Instant::now();
        let mut hosts = self.hosts.lock();
        hosts.retain(|_, host| {
            host.idle
                .retain(|idle| !idle.tx.is_closed() && !self.expired(idle.since, now));
            if host
                .h2
                .as_ref()
                .is_some_and(|s| s.tx.is_closed() || self.expired(s.since, now))
            {
                host.h2 = None;
            }
            !host.is_empty()
        });
    }

    /// Starts the background sweep once, when the first connection is pooled with an idle
    /// timeout. It holds the pool weakly and ends with it.
    fn start_sweep(self: &Arc<Self>) {
        let Some(timeout) = self.idle_timeout else {
            return;
        };
        if self.sweeping.load(Ordering::Relaxed) || self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Release);
            return;
        };
        let pool: Weak<Self> = Arc::downgrade(self);
        let every = timeout.max(MIN_SWEEP);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match pool.upgrade() {
                    Some(pool) => pool.sweep(),
                    None => break,
                }
            }
        });
    }

    /// How many backends have pooled connections, how many idle HTTP/1.1 connections there
    /// are and how many shared HTTP/2 connections (one lock, no allocation).
    pub(crate) fn stats(&self) -> (usize, usize, usize) {
        let hosts = self.hosts.lock();
        hosts
            .values()
            .fold((hosts.len(), 0, 0), |(n, idle, h2), h| {
                (n, idle + h.idle.len(), h2 + usize::from(h.h2.is_some()))
            })
    }

    #[cfg(test)]
    fn idle_count(&self, key: &PoolKey) -> (usize, bool) {
        self.hosts
            .lock()
            .get(key)
            .map_or((0, false), |h| (h.idle.len(), h.h2.is_some()))
    }
}

/// Gives an HTTP/1.1 connection back to its pool.
pub(crate) struct Checkin {
    pub(crate) pool: Arc<Pool>,
    pub(crate) key: PoolKey,
    pub(crate) tx: http1::SendRequest<GatewayBody>,
}

/// A backend response body that checks its HTTP/1.1 connection back in when it ends (its last
/// frame read, or dropped once complete). A body dropped before its end closes the connection:
/// it cannot carry another request.
pub(crate) struct PooledBody {
    inner: Incoming,
    checkin: Option<Checkin>,
}

impl PooledBody {
    pub(crate) fn new(inner: Incoming, checkin: Option<Checkin>) -> Self {
        Self { inner, checkin }
    }

    fn done(&mut self) {
        if let Some(c) = self.checkin.take() {
            c.pool.checkin(c.key, c.tx);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.done(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.done(),
            Poll::Ready(Some(Err(_))) => this.checkin = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.done();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::BodyExt as _;
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A loopback HTTP/1.1 server answering `ok`; returns its address.
    async fn server() -> std::net::SocketAddr {
        server_with(|| GatewayBody::full("ok")).await
    }

    /// A loopback HTTP/1.1 server answering every request with `body()`.
    async fn server_with(body: fn() -> GatewayBody) -> std::net::SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| async move {
                        Ok::<_, Infallible>(http::Response::new(body()))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    }

    async fn connect(addr: std::net::SocketAddr) -> http1::SendRequest<GatewayBody> {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut tx, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        tx.ready().await.unwrap();
        tx
    }

    #[test]
    fn keys_ignore_case_and_tell_scheme_host_and_port_apart() {
        let key = |s: &str| PoolKey::of(&UpstreamTarget::parse(s).unwrap());
        assert_eq!(
            key("http://Backend.Internal:8080"),
            key("HTTP://backend.internal:8080")
        );
        assert_ne!(
            key("http://backend.internal:8080"),
            key("https://backend.internal:8080")
        );
        assert_ne!(
            key("http://backend.internal:8080"),
            key("http://backend.internal:8081")
        );
        assert_ne!(
            key("http://backend.internal:8080"),
            key("http://backend.interna1:8080")
        );
        assert_eq!(format!("{:?}", key("http://A.b:1")), "http://a.b:1");
    }

    fn key(addr: std::net::SocketAddr) -> PoolKey {
        PoolKey::of(&UpstreamTarget::parse(&format!("http://{addr}")).unwrap())
    }

    fn get() -> http::Request<GatewayBody> {
        http::Request::get("/")
            .header("host", "x")
            .body(GatewayBody::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn a_checked_in_connection_is_reused_and_the_max_is_kept() {
        let addr = server().await;
        let pool = Arc::new(Pool::new(Some(Duration::from_secs(90)), 1));
        let (a, b) = (connect(addr).await, connect(addr).await);
        pool.checkin(key(addr), a);
        pool.checkin(key(addr), b);
        assert_eq!(
            pool.idle_count(&key(addr)),
            (1, false),
            "max idle per host is 1"
        );
        let Some(Conn::H1(mut tx)) = pool.checkout(&key(addr)) else {
            panic!("pooled connection expected")
        };
        assert!(pool.checkout(&key(addr)).is_none());
        let res = tx.send_request(get()).await.unwrap();
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    }

    #[tokio::test]
    async fn no_reuse_when_max_idle_is_zero() {
        let addr = server().await;
        let pool = Arc::new(Pool::new(None, 0));
        pool.checkin(key(addr), connect(addr).await);
        assert!(pool.checkout(&key(addr)).is_none());
    }

    #[tokio::test]
    async fn idle_connections_expire_at_checkout_and_in_the_sweep() {
        let addr = server().await;
        let pool = Arc::new(Pool::new(Some(Duration::from_millis(150)), 8));
        pool.checkin(key(addr), connect(addr).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(pool.checkout(&key(addr)).is_none(), "expired at checkout");

        pool.checkin(key(addr), connect(addr).await);
        assert_eq!(pool.idle_count(&key(addr)), (1, false));
        // The sweep runs every idle timeout; give it time to see the connection expired.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(pool.idle_count(&key(addr)), (0, false), "swept");
    }

    #[tokio::test]
    async fn a_busy_connection_is_pooled_once_ready() {
        let addr = server().await;
        let pool = Arc::new(Pool::new(None, 4));
        let mut tx = connect(addr).await;
        let res = tx.send_request(get()).await.unwrap();
        // The response body is still unread: check in now, pool later.
        let mut body = PooledBody::new(
            res.into_body(),
            Some(Checkin {
                pool: Arc::clone(&pool),
                key: key(addr),
                tx,
            }),
        );
        let mut data = Vec::new();
        while let Some(frame) = body.frame().await {
            data.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(data, b"ok");
        drop(body);
        for _ in 0..100 {
            if pool.idle_count(&key(addr)).0 == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.idle_count(&key(addr)), (1, false));
        assert!(matches!(pool.checkout(&key(addr)), Some(Conn::H1(_))));
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_does_not_pool_the_connection() {
        // A body that never ends.
        let addr = server_with(|| {
            let frames = futures_util::stream::pending::<Result<Frame<Bytes>, Infallible>>();
            GatewayBody::new(http_body_util::StreamBody::new(frames))
        })
        .await;
        let pool = Arc::new(Pool::new(None, 4));
        let mut tx = connect(addr).await;
        let res = tx.send_request(get()).await.unwrap();
        let body = PooledBody::new(
            res.into_body(),
            Some(Checkin {
                pool: Arc::clone(&pool),
                key: key(addr),
                tx,
            }),
        );
        drop(body);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pool.idle_count(&key(addr)), (0, false));
    }
}
