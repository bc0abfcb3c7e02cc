//! [`RedisCounter`]: throttling limits held across every gateway node, through Redis, with
//! tokens leased in batches so a request well under its limit never waits for Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::lease::{Lease, LeaseBackend, LeaseFuture, LeaseRequest, Leasing, Settings};
use super::{Acquire, CounterKey, RateCounter, Window};
use crate::redis_link::RedisLink;

/// The largest batch a node leases at once.
const MAX_BATCH: u32 = 100_000;
/// The most nodes a counter can be told about.
const MAX_NODES: u32 = 10_000;
/// The longest timeout accepted: a request out of tokens waits at most this for Redis.
const MAX_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest key prefix.
const MAX_PREFIX_LEN: usize = 128;

/// The one atomic step: grant `min(want, left, ceil(left / nodes))` tokens of the window's
/// count, never past the limit; the key expires with the window. Answers `{granted, used}`.
const LEASE_SCRIPT: &str = r"
local limit = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local nodes = tonumber(ARGV[3])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = limit - used
if left <= 0 or want <= 0 then return {0, used} end
local grant = math.min(want, left, math.ceil(left / nodes))
used = redis.call('INCRBY', KEYS[1], grant)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return {grant, used}
";

/// Why a [`RedisCounter`] cannot be built: the setting named is not acceptable. The message
/// never repeats a URL (it may hold a password).
///
/// # Examples
///
/// ```
/// use stagegate::policy::RedisCounter;
/// let e = RedisCounter::builder("redis://127.0.0.1").with_batch(0).build().unwrap_err();
/// assert_eq!(e.field, "batch");
/// assert!(e.to_string().starts_with("invalid Redis throttling counter batch: "), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Redis throttling counter {field}: {reason}")]
#[non_exhaustive]
pub struct RedisCounterError {
    /// The setting: `url`, `key_prefix`, `batch`, `nodes` or `timeout`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl RedisCounterError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A [`RateCounter`] shared by every gateway node pointed at the same Redis and key prefix
/// (feature `redis`): a throttling limit holds across the cluster, and a request well under
/// its limit is decided from memory, without a Redis round trip.
///
/// **Leasing.** Per (policy, API, stage, app) and window each node holds a lease of tokens
/// granted by Redis, and spends one per admitted request (one compare-and-swap, no
/// allocation). Tokens come from one Lua script, atomic in Redis, that raises the window's
/// count `<prefix><policy>:<api>:<stage>:<app or ->:<S|M|H|D><window number>` by
/// `min(want, left, ceil(left / nodes))` and never past the limit, the key expiring with the
/// window. A node asks for a [batch](RedisCounterBuilder::with_batch) when it holds none (that
/// request waits for the answer) and tops its lease up to `batch - 1` in the background when a
/// request leaves it at half a batch or less; in the last tenth of a window (at most its last
/// 2 s) it leases the next window's first `batch - 1` tokens ahead. Once Redis answers that the
/// window is used up, the node refuses from memory until the window ends. A node never waits
/// for Redis while it spends fewer than half a batch per Redis round trip, except for a key's
/// first request in a window it did not see coming (a quiet key).
///
/// **Bounds.** Overshoot is 0: Redis never grants past the limit, so the cluster admits at
/// most the limit per window. Tokens leased but unspent when the window ends are lost: with N
/// nodes, at most `(N - 1) * (batch - 1)` fewer requests than the limit are admitted (a node
/// holds at most `batch - 1` between requests; the one refusing holds none). Telling the
/// counter the number of nodes ([`with_nodes`](RedisCounterBuilder::with_nodes)) makes grants
/// shrink as the window fills, so the real shortfall is smaller when traffic is spread. Nodes
/// take the window from their own clocks: keep them in sync (NTP) or windows overlap at the
/// edges.
///
/// **Redis unreachable: fail open, in bounded time.** The connection is made on first use, so
/// a node starts while Redis is away. A lease that fails or gets no answer within the
/// [timeout](RedisCounterBuilder::with_timeout) (default 100 ms) starts an outage: one `warn`
/// event (target `stagegate::throttle`) and [`RedisCounterStats::outages`] counts it. During
/// it no request waits for Redis: each node spends what it holds, then counts alone up to
/// `ceil(limit / nodes)` per window (the store's grants to it in that window included;
/// [`RedisCounterStats::fallback_admitted`] counts these). A background lease once a second
/// probes Redis; the first answer ends the outage (an `info` event).
///
/// `Debug` shows the host, port and database, never a password from the URL.
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use stagegate::{GatewayLayer, policy::RedisCounter, routing::SnapshotHandle};
///
/// # fn run(snapshot: SnapshotHandle) -> Result<(), Box<dyn std::error::Error>> {
/// let counter = Arc::new(
///     RedisCounter::builder("redis://127.0.0.1:6379/0")
///         .with_key_prefix("shop:rate:")
///         .with_nodes(3)
///         .build()?,
/// );
/// let layer = GatewayLayer::new(snapshot).with_rate_counter(Arc::clone(&counter));
/// # Ok(()) }
/// ```
pub struct RedisCounter {
    inner: Arc<Leasing>,
    target: String,
}

impl std::fmt::Debug for RedisCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.settings();
        f.debug_struct("RedisCounter")
            .field("target", &self.target)
            .field("key_prefix", &self.inner.prefix())
            .field("batch", &s.batch)
            .field("nodes", &s.nodes)
            .field("timeout", &s.timeout)
            .field("keys", &self.inner.keys())
            .finish_non_exhaustive()
    }
}

/// Settings for a [`RedisCounter`]; [`build`](Self::build) checks them all.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use stagegate::policy::RedisCounter;
/// let c = RedisCounter::builder("redis://127.0.0.1:6379")
///     .with_batch(32)
///     .with_nodes(3)
///     .with_timeout(Duration::from_millis(50))
///     .build()
///     .unwrap();
/// assert_eq!(c.key_prefix(), RedisCounter::DEFAULT_KEY_PREFIX);
/// let bad = RedisCounter::builder("redis://127.0.0.1:6379").with_nodes(0).build();
/// assert_eq!(bad.unwrap_err().field, "nodes");
/// ```
#[derive(Clone)]
pub struct RedisCounterBuilder {
    url: String,
    prefix: String,
    batch: u32,
    nodes: u32,
    timeout: Duration,
}

/// The URL may hold a password: shown as `<redacted>`.
impl std::fmt::Debug for RedisCounterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounterBuilder")
            .field("url", &"<redacted>")
            .field("key_prefix", &self.prefix)
            .field("batch", &self.batch)
            .field("nodes", &self.nodes)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisCounterBuilder {
    /// Sets the prefix of every key the counter writes (default
    /// [`DEFAULT_KEY_PREFIX`](RedisCounter::DEFAULT_KEY_PREFIX)): nodes that count together
    /// share a prefix; separate deployments on one Redis use separate ones. 1 to 128
    /// printable ASCII characters, no space.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the most tokens a node leases at once (default
    /// [`DEFAULT_BATCH`](RedisCounter::DEFAULT_BATCH); 1 to 100 000). Larger batches mean
    /// fewer Redis calls and a larger worst-case shortfall, `(nodes - 1) * (batch - 1)`; a
    /// batch of 1 asks Redis for every request.
    #[must_use]
    pub fn with_batch(mut self, batch: u32) -> Self {
        self.batch = batch;
        self
    }

    /// Sets how many nodes share the limits (default 1; 1 to 10 000). Grants shrink to
    /// `ceil(left / nodes)` as a window fills, and during an outage each node admits up to
    /// `ceil(limit / nodes)` per window on its own. With the default of 1, a node alone in an
    /// outage admits up to the full limit.
    #[must_use]
    pub fn with_nodes(mut self, nodes: u32) -> Self {
        self.nodes = nodes;
        self
    }

    /// Sets the longest a request waits for a lease, connecting included (default 100 ms;
    /// more than zero, at most 5 s). Past it an outage starts and the node counts alone.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the counter. Nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`RedisCounterError`] naming the setting: `url` (not a `redis://` or `redis+unix://`
    /// URL), `key_prefix`, `batch`, `nodes` or `timeout`.
    pub fn build(self) -> Result<RedisCounter, RedisCounterError> {
        let link = RedisLink::open(&self.url, self.timeout)
            .map_err(|e| RedisCounterError::new("url", e))?;
        if self.prefix.is_empty()
            || self.prefix.len() > MAX_PREFIX_LEN
            || !self.prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(RedisCounterError::new(
                "key_prefix",
                "must be 1 to 128 printable ASCII characters without spaces",
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(RedisCounterError::new(
                "batch",
                format!("must be from 1 to {MAX_BATCH}, got {}", self.batch),
            ));
        }
        if !(1..=MAX_NODES).contains(&self.nodes) {
            return Err(RedisCounterError::new(
                "nodes",
                format!("must be from 1 to {MAX_NODES}, got {}", self.nodes),
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(RedisCounterError::new(
                "timeout",
                "must be more than zero and at most 5 s",
            ));
        }
        let target = link.target().to_owned();
        let backend = RedisLeases {
            link: Arc::new(link),
            timeout: self.timeout,
        };
        let settings = Settings {
            batch: self.batch,
            nodes: self.nodes,
            timeout: self.timeout,
        };
        Ok(RedisCounter {
            inner: Arc::new(Leasing::new(
                Box::new(backend),
                self.prefix,
                settings,
                target.clone(),
            )),
            target,
        })
    }
}

/// What a [`RedisCounter`] has done since it was built, for metrics and health checks.
///
/// # Examples
///
/// ```
/// let c = stagegate::policy::RedisCounter::new("redis://127.0.0.1").unwrap();
/// let s = c.stats();
/// assert_eq!((s.leases, s.outages, s.fallback_admitted), (0, 0, 0));
/// assert!(!s.in_outage);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisCounterStats {
    /// Leases Redis answered.
    pub leases: u64,
    /// Tokens those leases granted.
    pub tokens_granted: u64,
    /// Lease calls that failed or timed out.
    pub failures: u64,
    /// Outages begun (each logged once).
    pub outages: u64,
    /// Requests admitted by counting alone during an outage.
    pub fallback_admitted: u64,
    /// Requests that waited for a lease (found no token for their key).
    pub waited: u64,
    /// Whether an outage is on now.
    pub in_outage: bool,
}

impl RedisCounter {
    /// The key prefix used unless [`with_key_prefix`](RedisCounterBuilder::with_key_prefix)
    /// sets another.
    pub const DEFAULT_KEY_PREFIX: &'static str = "stagegate:rate:";

    /// The batch used unless [`with_batch`](RedisCounterBuilder::with_batch) sets another.
    pub const DEFAULT_BATCH: u32 = 16;

    /// The timeout used unless [`with_timeout`](RedisCounterBuilder::with_timeout) sets
    /// another.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

    /// Settings for a counter on the Redis at `url` (`redis://[:password@]host[:port][/db]`).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = stagegate::policy::RedisCounter::builder("redis://:pw@127.0.0.1/2")
    ///     .build()
    ///     .unwrap();
    /// let shown = format!("{c:?}");
    /// assert!(shown.contains("127.0.0.1:6379/2") && !shown.contains("pw"), "{shown}");
    /// ```
    #[must_use]
    pub fn builder(url: impl Into<String>) -> RedisCounterBuilder {
        RedisCounterBuilder {
            url: url.into(),
            prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            batch: Self::DEFAULT_BATCH,
            nodes: 1,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// A counter on the Redis at `url` with the default settings.
    ///
    /// # Errors
    ///
    /// As [`RedisCounterBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::policy::RedisCounter;
    /// assert!(RedisCounter::new("redis://127.0.0.1:6379").is_ok());
    /// assert_eq!(RedisCounter::new("127.0.0.1:6379").unwrap_err().field, "url");
    /// ```
    pub fn new(url: &str) -> Result<Self, RedisCounterError> {
        Self::builder(url).build()
    }

    /// The key prefix in force.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        self.inner.prefix()
    }

    /// The Redis key holding `key`'s count in `window` (for operators and tests).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::{ApiId, PolicyId, Stage};
    /// use stagegate::policy::{CounterKey, RedisCounter, ThrottleUnit, Window};
    /// let c = RedisCounter::new("redis://127.0.0.1").unwrap();
    /// let (p, a) = (PolicyId::parse("p1").unwrap(), ApiId::parse("a1").unwrap());
    /// let key = CounterKey { policy: &p, api: &a, stage: &Stage::RELEASE, app: None };
    /// let w = Window::at(ThrottleUnit::Minute, 120_000);
    /// assert_eq!(c.key_for(&key, w), "stagegate:rate:p1:a1:RELEASE:-:M2");
    /// ```
    #[must_use]
    pub fn key_for(&self, key: &CounterKey<'_>, window: Window) -> String {
        self.inner.store_key(key, window)
    }

    /// What the counter has done so far.
    #[must_use]
    pub fn stats(&self) -> RedisCounterStats {
        let s = &self.inner.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RedisCounterStats {
            leases: get(&s.leases),
            tokens_granted: get(&s.tokens_granted),
            failures: get(&s.failures),
            outages: get(&s.outages),
            fallback_admitted: get(&s.fallback_admitted),
            waited: get(&s.waited),
            in_outage: self.inner.in_outage(),
        }
    }
}

impl RateCounter for RedisCounter {
    fn acquire(&self, key: &CounterKey<'_>, window: Window, limit: u32) -> Acquire {
        self.inner.acquire(key, window, limit)
    }

    fn release(&self, key: &CounterKey<'_>, window: Window) {
        self.inner.release(key, window);
    }
}

/// Leases from Redis: the script, sent with `EVAL` (a few hundred bytes once per batch;
/// Redis caches the compiled script, and no `SCRIPT LOAD` state can be lost on a restart).
struct RedisLeases {
    link: Arc<RedisLink>,
    timeout: Duration,
}

impl LeaseBackend for RedisLeases {
    fn lease(&self, req: LeaseRequest) -> LeaseFuture {
        let (link, timeout) = (Arc::clone(&self.link), self.timeout);
        Box::pin(async move {
            let (generation, mut conn) = link.connection().map_err(|e| e.to_string())?;
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(LEASE_SCRIPT)
                .arg(1)
                .arg(&req.key)
                .arg(req.limit)
                .arg(req.want)
                .arg(req.nodes)
                .arg(req.ttl_ms.max(1));
            let reply =
                tokio::time::timeout(timeout, cmd.query_async::<(i64, i64)>(&mut conn)).await;
            match reply {
                Ok(Ok((granted, used))) => Ok(Lease {
                    granted: u32::try_from(granted.max(0)).unwrap_or(0),
                    used: u64::try_from(used.max(0)).unwrap_or(0),
                }),
                Ok(Err(e)) => {
                    if e.is_timeout() || e.is_connection_dropped() || e.is_io_error() {
                        link.forget(generation);
                    }
                    Err(e.to_string())
                }
                Err(_) => {
                    link.forget(generation);
                    Err(format!("no answer within {timeout:?}"))
                }
            }
        })
    }

    fn timed_out(&self) {
        self.link.forget_current();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_named() {
        let b = || RedisCounter::builder("redis://127.0.0.1:6379");
        for (builder, field) in [
            (RedisCounter::builder("rediss://h"), "url"),
            (RedisCounter::builder("redis://h:notaport"), "url"),
            (b().with_key_prefix("with space"), "key_prefix"),
            (b().with_key_prefix(""), "key_prefix"),
            (b().with_batch(0), "batch"),
            (b().with_batch(MAX_BATCH + 1), "batch"),
            (b().with_nodes(0), "nodes"),
            (b().with_timeout(Duration::ZERO), "timeout"),
            (b().with_timeout(Duration::from_secs(6)), "timeout"),
        ] {
            assert_eq!(builder.build().unwrap_err().field, field);
        }
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        let e = RedisCounter::new("redis://:hunter2@h:bad").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let b = RedisCounter::builder("redis://:hunter2@127.0.0.1:6379");
        assert!(!format!("{b:?}").contains("hunter2"));
        let c = b.build().unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
