//! A hardened HTTP server loop for the gateway, the admin API or any tower service (feature
//! `serve`).
//!
//! [`Server`] accepts on a tokio [`TcpListener`] and serves each connection with hyper (HTTP/1.1
//! and HTTP/2, chosen per connection), and adds what a server facing untrusted clients needs
//! and a bare accept loop lacks:
//!
//! - **timeouts**: a connection must send its first byte, and (HTTP/1) each complete request
//!   head, within [`header_read_timeout`](Server::with_header_read_timeout); a connection with no
//!   request in flight that moves no byte for [`idle_timeout`](Server::with_idle_timeout) is closed.
//!   A slow upstream does not count as idle: while a request is in flight, the connection stays.
//! - **a cap on open connections** ([`max_connections`](Server::with_max_connections), or one
//!   [`ConnectionLimit`] shared by several servers): a connection accepted beyond the cap is
//!   closed at once. It is accepted and closed rather than left unaccepted, so that the client
//!   learns at once that it was refused (instead of waiting in the kernel's backlog behind
//!   connections that may never leave), and so that one listener shared by several workers
//!   (each accepting with its own [`Server`]) does not leave connections queued for a worker
//!   that is full while another has room: give such workers one shared [`ConnectionLimit`].
//! - **an accept loop that backs off** (10 ms, doubling up to 1 s) when accepting fails for
//!   want of a resource (`EMFILE`, `ENFILE`, `ENOMEM`, `ENOBUFS`), instead of spinning on the
//!   error; see [`accept_backoff`].
//! - **graceful shutdown**: once the `shutdown` future resolves, the listener is closed,
//!   connections with no request in flight are closed at once, HTTP/2 connections get a
//!   `GOAWAY`, and requests in flight may finish within
//!   [`shutdown_grace`](Server::with_shutdown_grace); whatever is left then is dropped.
//!
//! The server runs on the runtime it is awaited on, a current-thread runtime included: every
//! connection is a task of that runtime.
//!
//! # HTTPS
//!
//! [`Server::serve_tls`] does the TLS handshake with a `rustls::ServerConfig` and tells the
//! gateway each request came over TLS (see [`ConnectionInfo`]). [`Certificates`] is the
//! config's certificate store: a default certificate and one per server name (SNI), replaced
//! while the listener serves, with [`Certificates::server_config`] offering HTTP/2 and
//! HTTP/1.1 by ALPN and resuming sessions. [`PlainHttp`] answers a plain-HTTP listener beside
//! it with a redirect to HTTPS, or a refusal.
//!
//! ```no_run
//! use std::sync::Arc;
//! use stagegate::serve::{Certificates, PlainHttp, Server};
//! use stagegate::store::MemoryStore;
//! use stagegate::tls::CertificatePair;
//! use stagegate::{ControlPlane, GatewayLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let control = ControlPlane::open(MemoryStore::new()).await?;
//! let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
//! // the default certificate, checked (parses, key matches, valid now)
//! let pair = CertificatePair::from_pem(
//!     &std::fs::read_to_string("cert.pem")?,
//!     &std::fs::read_to_string("key.pem")?,
//! )?;
//! let certs = Arc::new(Certificates::new());
//! certs.set_default(Some(pair.certified_key()));
//! // the group domains' certificates (admin API), by SNI; again whenever
//! // `control.watch_certificates()` changes
//! certs.replace_domains(control.domain_certificates().await)?;
//! let tls = Arc::new(Certificates::server_config(&certs)?);
//!
//! // port 80: a 308 to https for every request
//! let http = tokio::net::TcpListener::bind("0.0.0.0:80").await?;
//! tokio::spawn(Server::new().serve(http, |_peer| PlainHttp::redirect(443), std::future::pending()));
//! let https = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
//! Server::new()
//!     .serve_tls(https, tls, move |peer| gateway.clone().with_client_addr(peer), async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await;
//! # Ok(())
//! # }
//! ```
//!
//! # Examples
//!
//! ```no_run
//! use stagegate::serve::Server;
//! use stagegate::{ControlPlane, GatewayLayer};
//! use stagegate::store::MemoryStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let control = ControlPlane::open(MemoryStore::new()).await?;
//! let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! Server::new()
//!     .with_max_connections(10_000)
//!     // one service per connection: the gateway learns the client's address once
//!     .serve(listener, move |peer| gateway.clone().with_client_addr(peer), async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;
use tower::util::Oneshot;

use crate::layer::{ClientAddr, ConnectionInfo};

mod certificates;
mod plain_http;

pub use certificates::{ALPN_PROTOCOLS, Certificates, InvalidServerName, SESSION_CACHE_SIZE};
pub use plain_http::PlainHttp;

/// The default [`Server::with_header_read_timeout`]: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default [`Server::with_idle_timeout`]: 60 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The default [`Server::with_max_connections`]: 4096 open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// The default [`Server::with_shutdown_grace`]: 30 s.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The default [`Server::http2_max_concurrent_streams`]: 200 streams per connection.
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 200;

/// The shortest wait after a failed accept (doubled on each further failure).
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait after a failed accept.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// During shutdown, a connection with no request in flight that moved no byte for this long is
/// closed (a response that just finished gets this long to be flushed).
const SHUTDOWN_QUIET: Duration = Duration::from_millis(20);

/// A cap on open connections, shared by every [`Server`] given a clone of it.
///
/// # Examples
///
/// ```
/// use stagegate::serve::{ConnectionLimit, Server};
/// let limit = ConnectionLimit::new(1000);
/// // two workers accepting on one listener share one cap
/// let (a, b) = (Server::new().with_connection_limit(limit.clone()), Server::new().with_connection_limit(limit.clone()));
/// assert_eq!(limit.max(), 1000);
/// assert_eq!(limit.open(), 0);
/// # let _ = (a, b);
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionLimit {
    inner: Arc<LimitInner>,
}

#[derive(Debug)]
struct LimitInner {
    max: usize,
    open: AtomicUsize,
}

impl ConnectionLimit {
    /// At most `max` connections open at once (`0` refuses every connection).
    ///
    /// # Examples
    ///
    /// ```
    /// let limit = stagegate::serve::ConnectionLimit::new(2);
    /// assert_eq!(limit.max(), 2);
    /// ```
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(LimitInner {
                max,
                open: AtomicUsize::new(0),
            }),
        }
    }

    /// The cap.
    #[must_use]
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// The connections open now.
    #[must_use]
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    fn try_acquire(&self) -> Option<Permit> {
        let max = self.inner.max;
        self.inner
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(self.clone()))
    }
}

/// One open connection's place under a [`ConnectionLimit`]; given back on drop.
struct Permit(ConnectionLimit);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.inner.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What to do after `accept` failed with `error`, given the wait after the previous failure
/// (`None`: the previous accept succeeded).
///
/// `None`: accept again at once. The error was about the one connection being accepted (it was
/// reset or aborted by the client before it could be accepted, or the call was interrupted).
///
/// `Some(wait)`: sleep `wait` before accepting again. Every other error means the process or
/// the system is short of something (`EMFILE`, `ENFILE`: descriptors; `ENOMEM`, `ENOBUFS`:
/// memory), which accepting again at once would not cure; the wait starts at 10 ms and doubles
/// up to 1 s while the failures go on.
///
/// # Examples
///
/// ```
/// use std::io::{Error, ErrorKind};
/// use std::time::Duration;
/// use stagegate::serve::accept_backoff;
/// // the client went away: try the next one at once
/// assert_eq!(accept_backoff(&Error::from(ErrorKind::ConnectionAborted), None), None);
/// // out of descriptors (EMFILE on Linux): back off, longer each time
/// # #[cfg(target_os = "linux")] {
/// let emfile = Error::from_raw_os_error(24);
/// assert_eq!(accept_backoff(&emfile, None), Some(Duration::from_millis(10)));
/// assert_eq!(accept_backoff(&emfile, Some(Duration::from_millis(10))), Some(Duration::from_millis(20)));
/// assert_eq!(accept_backoff(&emfile, Some(Duration::from_secs(1))), Some(Duration::from_secs(1)));
/// # }
/// ```
#[must_use]
pub fn accept_backoff(error: &io::Error, previous: Option<Duration>) -> Option<Duration> {
    use io::ErrorKind as K;
    match error.kind() {
        K::ConnectionAborted
        | K::ConnectionReset
        | K::ConnectionRefused
        | K::Interrupted
        | K::WouldBlock => None,
        _ => Some(previous.map_or(BACKOFF_MIN, |p| (p * 2).clamp(BACKOFF_MIN, BACKOFF_MAX))),
    }
}

/// The hardened server loop; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use stagegate::serve::Server;
/// let server = Server::new()
///     .with_header_read_timeout(Duration::from_secs(5))
///     .with_idle_timeout(Duration::from_secs(30))
///     .with_max_connections(512)
///     .with_shutdown_grace(Duration::from_secs(10));
/// assert_eq!(server.limit().max(), 512);
/// ```
#[derive(Clone, Debug)]
pub struct Server {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    shutdown_grace: Duration,
    h2_streams: u32,
    limit: ConnectionLimit,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A server with the defaults: [`DEFAULT_HEADER_READ_TIMEOUT`], [`DEFAULT_IDLE_TIMEOUT`],
    /// [`DEFAULT_MAX_CONNECTIONS`], [`DEFAULT_SHUTDOWN_GRACE`] and
    /// [`DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS`].
    ///
    /// # Examples
    ///
    /// ```
    /// let server = stagegate::serve::Server::new();
    /// assert_eq!(server.limit().max(), stagegate::serve::DEFAULT_MAX_CONNECTIONS);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            h2_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            limit: ConnectionLimit::new(DEFAULT_MAX_CONNECTIONS),
        }
    }

    /// How long a new connection may take to send its first byte, and an HTTP/1 connection to
    /// send a complete request head once it waits for one: on a kept-alive HTTP/1 connection
    /// that wait starts when the previous response is written, so it also bounds how long such
    /// a connection may sit idle between requests (hyper's HTTP/1 header-read timeout, which a
    /// head trickled a byte at a time does not reset). Zero is taken as 1 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = stagegate::serve::Server::new().with_header_read_timeout(std::time::Duration::from_secs(5));
    /// # let _ = server;
    /// ```
    #[must_use]
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a connection with no request in flight may go without a byte read or written
    /// before it is closed (HTTP/1 kept-alive and HTTP/2 connections alike). Zero is taken as
    /// 1 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = stagegate::serve::Server::new().with_idle_timeout(std::time::Duration::from_secs(30));
    /// # let _ = server;
    /// ```
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// At most `max` connections of this server open at once; one accepted beyond that is
    /// closed at once. Replaces any [`connection_limit`](Self::with_connection_limit) set before.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = stagegate::serve::Server::new().with_max_connections(100);
    /// assert_eq!(server.limit().max(), 100);
    /// ```
    #[must_use]
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.limit = ConnectionLimit::new(max);
        self
    }

    /// Counts this server's connections against `limit`, which other servers may share (e.g.
    /// several workers accepting on one listener).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::serve::{ConnectionLimit, Server};
    /// let limit = ConnectionLimit::new(64);
    /// let server = Server::new().with_connection_limit(limit.clone());
    /// assert_eq!(server.limit().max(), 64);
    /// ```
    #[must_use]
    pub fn with_connection_limit(mut self, limit: ConnectionLimit) -> Self {
        self.limit = limit;
        self
    }

    /// The connection limit this server counts against.
    #[must_use]
    pub fn limit(&self) -> &ConnectionLimit {
        &self.limit
    }

    /// How long requests in flight at shutdown may take to finish.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = stagegate::serve::Server::new().with_shutdown_grace(std::time::Duration::from_secs(5));
    /// # let _ = server;
    /// ```
    #[must_use]
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// At most `streams` requests at once on one HTTP/2 connection.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = stagegate::serve::Server::new().http2_max_concurrent_streams(100);
    /// # let _ = server;
    /// ```
    #[must_use]
    pub fn http2_max_concurrent_streams(mut self, streams: u32) -> Self {
        self.h2_streams = streams;
        self
    }

    fn http(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.h2_streams);
        builder
    }

    /// Serves connections accepted on `listener` until `shutdown` resolves, then shuts down
    /// gracefully (see the [module docs](self)) and returns once every connection is closed or
    /// the [grace period](Self::with_shutdown_grace) is over.
    ///
    /// `make_service` is called once per accepted connection with the peer's address, and its
    /// service serves every request of that connection. For the gateway, pass
    /// `|peer| gateway.clone().with_client_addr(peer)`; for any other service,
    /// [`WithClientAddr`] inserts the address as a [`ClientAddr`] extension into each request.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::serve::{Server, WithClientAddr};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let hello = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from("hi"))))
    /// });
    /// // shuts down at once here; a real server waits for a signal
    /// Server::new()
    ///     .serve(listener, move |peer| WithClientAddr::new(hello.clone(), peer), async {})
    ///     .await;
    /// # });
    /// ```
    pub async fn serve<M, S, B, F>(self, listener: TcpListener, make_service: M, shutdown: F)
    where
        M: FnMut(SocketAddr) -> S,
        F: Future<Output = ()>,
        S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.run(listener, None, make_service, shutdown).await;
    }

    /// As [`serve`](Self::serve), over TLS: each accepted connection does the TLS handshake
    /// with `tls` (within the header-read timeout, [`with_header_read_timeout`](Self::with_header_read_timeout)) before HTTP.
    ///
    /// Every request gets a [`ConnectionInfo`] saying TLS, with the client's server name
    /// (SNI) and the negotiated ALPN protocol, so APIs limited to HTTPS accept it and APIs
    /// limited to HTTP refuse it (`I403PT`). Put `h2` and `http/1.1` in the config's
    /// `alpn_protocols` to offer HTTP/2. Requests on [`serve`](Self::serve) get a plain
    /// `ConnectionInfo`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use stagegate::GatewayLayer;
    /// use stagegate::routing::SnapshotHandle;
    /// use stagegate::serve::Server;
    /// # async fn run(config: rustls::ServerConfig) -> std::io::Result<()> {
    /// let gateway = GatewayLayer::new(SnapshotHandle::default()).standalone();
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
    /// Server::new()
    ///     .serve_tls(listener, Arc::new(config), move |peer| gateway.clone().with_client_addr(peer), async {
    ///         let _ = tokio::signal::ctrl_c().await;
    ///     })
    ///     .await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve_tls<M, S, B, F>(
        self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        make_service: M,
        shutdown: F,
    ) where
        M: FnMut(SocketAddr) -> S,
        F: Future<Output = ()>,
        S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        self.run(listener, Some(acceptor), make_service, shutdown)
            .await;
    }

    async fn run<M, S, B, F>(
        self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        mut make_service: M,
        shutdown: F,
    ) where
        M: FnMut(SocketAddr) -> S,
        F: Future<Output = ()>,
        S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let http = self.http();
        let timeouts = Timeouts {
            header: self.header_read_timeout,
            idle: self.idle_timeout,
        };
        let (stop_tx, stop_rx) = watch::channel(Stop::Serving);
        // Every connection task holds a sender; all of them gone = every connection closed.
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut backoff: Option<Duration> = None;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        backoff = None;
                        let Some(permit) = self.limit.try_acquire() else {
                            tracing::debug!(%peer, max = self.limit.max(), "connection refused: too many open connections");
                            drop(stream);
                            continue;
                        };
                        // Like nginx's `tcp_nodelay on`: a response written in pieces must not
                        // wait for the client's delayed ACK.
                        let _ = stream.set_nodelay(true);
                        let state = Arc::new(ConnState::new());
                        let io = Tracked { io: stream, state: Arc::clone(&state) };
                        let svc = make_service(peer);
                        let stop = stop_rx.clone();
                        let alive = alive_tx.clone();
                        let http = http.clone();
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            match tls {
                                None => {
                                    let svc = Tracking { svc, state: Arc::clone(&state), info: ConnectionInfo::plain() };
                                    let conn = http.serve_connection(TokioIo::new(io), svc).into_owned();
                                    drive(conn, &state, stop, timeouts).await;
                                }
                                Some(acceptor) => {
                                    let handshake = tokio::time::timeout(timeouts.header, acceptor.accept(io)).await;
                                    let stream = match handshake {
                                        Ok(Ok(s)) => s,
                                        Ok(Err(e)) => {
                                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                            drop((permit, alive));
                                            return;
                                        }
                                        Err(_) => {
                                            tracing::debug!(%peer, "TLS handshake timed out");
                                            drop((permit, alive));
                                            return;
                                        }
                                    };
                                    let (_, session) = stream.get_ref();
                                    let mut info = ConnectionInfo::tls();
                                    if let Some(name) = session.server_name() {
                                        info = info.with_server_name(name);
                                    }
                                    if let Some(alpn) = session.alpn_protocol() {
                                        info = info.with_alpn(alpn);
                                    }
                                    let svc = Tracking { svc, state: Arc::clone(&state), info };
                                    let conn = http.serve_connection(TokioIo::new(stream), svc).into_owned();
                                    drive(conn, &state, stop, timeouts).await;
                                }
                            }
                            drop((permit, alive));
                        });
                    }
                    Err(e) => {
                        let Some(wait) = accept_backoff(&e, backoff) else { continue };
                        backoff = Some(wait);
                        tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "accept failed; backing off");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            }
        }
        drop(listener);
        let _ = stop_tx.send(Stop::Draining);
        drop(alive_tx);
        tokio::select! {
            _ = alive_rx.recv() => tracing::debug!("all connections closed"),
            () = tokio::time::sleep(self.shutdown_grace) => {
                tracing::warn!(grace_s = self.shutdown_grace.as_secs_f64(), "requests in flight did not finish within the shutdown grace period; closing them");
                let _ = stop_tx.send(Stop::Abort);
                let _ = alive_rx.recv().await;
            }
        }
    }
}

/// A service that inserts the connection's peer address as a [`ClientAddr`] extension into
/// each request, for services other than the gateway (which takes it once per connection with
/// [`GatewayService::with_client_addr`](crate::GatewayService::with_client_addr)).
///
/// # Examples
///
/// ```
/// use stagegate::ClientAddr;
/// use stagegate::serve::WithClientAddr;
/// use tower::ServiceExt as _;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let echo = tower::service_fn(|req: http::Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(req.extensions().get::<ClientAddr>().copied())
/// });
/// let peer = ([192, 0, 2, 1], 4000).into();
/// let got = WithClientAddr::new(echo, peer).oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(got, Some(ClientAddr(peer)));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct WithClientAddr<S> {
    inner: S,
    peer: SocketAddr,
}

impl<S> WithClientAddr<S> {
    /// `inner`, told that its requests come from `peer`.
    #[must_use]
    pub fn new(inner: S, peer: SocketAddr) -> Self {
        Self { inner, peer }
    }
}

impl<S, B> tower_service::Service<http::Request<B>> for WithClientAddr<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(ClientAddr(self.peer));
        self.inner.call(req)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Serving,
    Draining,
    Abort,
}

#[derive(Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// What one connection's watchdog knows about it.
struct ConnState {
    opened: Instant,
    /// When a byte was last read or written, in ms since `opened`.
    last_active_ms: AtomicU64,
    read_any: AtomicBool,
    in_flight: AtomicUsize,
}

impl ConnState {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            read_any: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_active_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// When the connection is next to be looked at, and whether it is to be closed now.
    fn check(&self, t: Timeouts, stopping: bool) -> Result<Instant, ()> {
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            let again = if stopping { SHUTDOWN_QUIET } else { t.idle };
            return Ok(Instant::now() + again);
        }
        let quiet = now.saturating_sub(self.last_active_ms.load(Ordering::Relaxed));
        let (limit, since) = if stopping {
            (ms(SHUTDOWN_QUIET), quiet)
        } else if !self.read_any.load(Ordering::Relaxed) {
            (ms(t.header), now)
        } else {
            (ms(t.idle), quiet)
        };
        if since >= limit {
            return Err(());
        }
        // A first byte moves the deadline to the idle timeout's, which may come sooner.
        let wait = Duration::from_millis(limit - since).min(t.idle);
        Ok(Instant::now() + wait)
    }
}

/// Runs one connection until it ends, its watchdog closes it (timeouts, shutdown) or the server
/// aborts it. Dropping the connection closes the socket.
async fn drive<I, S, B>(
    conn: auto::Connection<'static, TokioIo<I>, Tracking<S>, TokioExecutor>,
    state: &ConnState,
    mut stop: watch::Receiver<Stop>,
    t: Timeouts,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    let Ok(mut next) = state.check(t, false) else {
        return;
    };
    loop {
        tokio::select! {
            // Polled in order, the connection first: this runs on every wake-up of the
            // connection's task (twice per request), and a random start costs a thread-local
            // RNG draw each time. No branch can starve another: the connection ends the loop
            // when it is ready, and the other two are polled whenever it is pending.
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(next) => match state.check(t, stopping) {
                Ok(at) => next = at,
                Err(()) => {
                    tracing::debug!(stopping, "closing an idle connection");
                    return;
                }
            },
            changed = stop.changed() => {
                let now = changed.map_or(Stop::Abort, |()| *stop.borrow_and_update());
                match now {
                    Stop::Serving => {}
                    Stop::Draining if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                        next = Instant::now();
                    }
                    Stop::Draining => {}
                    Stop::Abort => return,
                }
            }
        }
    }
}

/// The socket, noting when bytes move.
struct Tracked {
    io: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.read_any.store(true, Ordering::Relaxed);
            self.state.touch();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The connection's service, counting the requests in flight (until their response body is
/// done or dropped).
#[derive(Clone)]
struct Tracking<S> {
    svc: S,
    state: Arc<ConnState>,
    /// Inserted into every request of the connection.
    info: ConnectionInfo,
}

/// One request in flight.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn new(state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        // The request is done: idle time counts from now.
        self.0.touch();
    }
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for Tracking<S>
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>> + Clone,
{
    type Response = http::Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackingFuture<S, B>;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.info.clone());
        TrackingFuture {
            inner: self.svc.clone().oneshot(req),
            guard: Some(InFlight::new(&self.state)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Tracking`].
    struct TrackingFuture<S, B>
    where
        S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>,
    {
        #[pin]
        inner: Oneshot<S, http::Request<Incoming>>,
        guard: Option<InFlight>,
    }
}

impl<S, B> Future for TrackingFuture<S, B>
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>,
{
    type Output = Result<http::Response<TrackedBody<B>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(res.map(|r| {
            r.map(|body| TrackedBody {
                body,
                _guard: guard,
            })
        }))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is dropped.
    struct TrackedBody<B> {
        #[pin]
        body: B,
        _guard: Option<InFlight>,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_connection_accept_errors_are_retried_at_once() {
        for kind in [
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::Interrupted,
            io::ErrorKind::WouldBlock,
        ] {
            assert_eq!(
                accept_backoff(&io::Error::from(kind), None),
                None,
                "{kind:?}"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn resource_exhaustion_backs_off_from_10ms_doubling_to_1s() {
        // EMFILE, ENFILE, ENOMEM, ENOBUFS on Linux
        for errno in [24, 23, 12, 105] {
            let e = io::Error::from_raw_os_error(errno);
            let mut wait = None;
            let mut seen = Vec::new();
            for _ in 0..10 {
                wait = accept_backoff(&e, wait);
                seen.push(wait.expect("backs off").as_millis());
            }
            assert_eq!(
                seen,
                [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000],
                "errno {errno}"
            );
        }
    }

    #[test]
    fn the_limit_counts_permits_and_gives_them_back() {
        let limit = ConnectionLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        assert_eq!(limit.open(), 2);
        drop(a);
        let c = limit.try_acquire().unwrap();
        drop((b, c));
        assert_eq!(limit.open(), 0);
        assert!(ConnectionLimit::new(0).try_acquire().is_none());
    }
}
