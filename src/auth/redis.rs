//! [`RedisReplayGuard`]: one nonce store for every gateway node, in Redis.
//!
//! The only part of [`auth`](super) that does I/O: a nonce accepted by any node is refused by
//! every other node for its window, because each node records it with one atomic
//! `SET key 1 NX PX window` on the same Redis. Whatever goes wrong on the way (Redis down, a
//! cut connection, an error reply, no answer within the timeout) refuses the request with
//! `X503NS`: a nonce is never accepted unchecked.

use std::time::Duration;

use crate::redis_link::RedisLink;

use super::error::ReplayError;
use super::replay::{DEFAULT_NONCE_TTL, ReplayFuture, ReplayGuard};
use super::verifier::MAX_NONCE_LEN;

/// The longest AppKey the guard stores (the model allows 64 characters).
const MAX_APP_KEY_LEN: usize = 128;
/// The longest key prefix.
const MAX_PREFIX_LEN: usize = 128;
/// The longest timeout the guard accepts: a request waits at most this for its nonce.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a [`RedisReplayGuard`] cannot be built: the setting named is not acceptable. The
/// message never repeats a URL (it may hold a password).
///
/// # Examples
///
/// ```
/// use stagegate::auth::RedisReplayGuard;
/// let e = RedisReplayGuard::builder("http://127.0.0.1:6379").build().unwrap_err();
/// assert_eq!(e.field, "url");
/// assert!(e.to_string().starts_with("invalid Redis replay guard url: "), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Redis replay guard {field}: {reason}")]
#[non_exhaustive]
pub struct RedisConfigError {
    /// The setting: `url`, `key_prefix`, `timeout` or `ttl`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl RedisConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A [`ReplayGuard`] in Redis, shared by every gateway node that points at the same Redis and
/// key prefix (feature `redis`).
///
/// Each fresh nonce is stored as `<prefix><len(AppKey)>:<AppKey><nonce>` with
/// `SET … NX PX <window>`, where the window is the guard's TTL (default 15 minutes) or, when
/// longer, as long as the request's signed time stays acceptable
/// ([`check_and_remember_until`](ReplayGuard::check_and_remember_until)). Redis expires the
/// key after the window; the guard keeps no state of its own and runs no background task
/// (redis-rs's connection manager reconnects by itself).
///
/// **Fail closed, in bounded time.** The connection is made on first use, not at
/// construction, so a node starts while Redis is away. Every check is bounded by the
/// [timeout](RedisReplayGuardBuilder::with_timeout) (default 500 ms): if Redis cannot be
/// reached, answers with an error or does not answer in time, the check fails with
/// [`ReplayError::Unavailable`] and the gateway answers `X503NS`, never accepting the nonce
/// unchecked. Requests without a nonce never ask Redis.
///
/// **Hostile input never reaches Redis.** An empty nonce, one longer than
/// 256 bytes (the verifier's nonce limit), or one with a byte outside printable
/// ASCII (likewise an AppKey over 128 bytes) is refused with [`ReplayError::InvalidInput`]
/// (`I400HD`) before any command is sent.
///
/// `Debug` shows the host, port and database, never a password from the URL.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use stagegate::auth::RedisReplayGuard;
/// use stagegate::{layer::AppAuthenticator, GatewayLayer, routing::SnapshotHandle};
///
/// # fn run(snapshot: SnapshotHandle) -> Result<(), Box<dyn std::error::Error>> {
/// let guard = RedisReplayGuard::builder("redis://127.0.0.1:6379/0")
///     .with_key_prefix("shop:nonce:")
///     .with_timeout(Duration::from_millis(250))
///     .build()?;
/// let layer = GatewayLayer::new(snapshot).with_authenticator(AppAuthenticator::new(guard));
/// # Ok(()) }
/// ```
pub struct RedisReplayGuard {
    /// The connection, made on first use; replaced after a timeout.
    link: RedisLink,
    prefix: String,
    ttl_ms: u64,
    timeout: Duration,
    /// `host:port/db` for `Debug` and logs; never the password.
    target: String,
}

impl std::fmt::Debug for RedisReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayGuard")
            .field("target", &self.target)
            .field("key_prefix", &self.prefix)
            .field("ttl_ms", &self.ttl_ms)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`RedisReplayGuard`]; [`build`](Self::build) checks them all.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use stagegate::auth::RedisReplayGuard;
/// let guard = RedisReplayGuard::builder("redis://127.0.0.1:6379")
///     .with_ttl(Duration::from_secs(600))
///     .build()
///     .unwrap();
/// assert_eq!(guard.key_prefix(), RedisReplayGuard::DEFAULT_KEY_PREFIX);
/// let bad = RedisReplayGuard::builder("redis://127.0.0.1:6379").with_key_prefix("").build();
/// assert_eq!(bad.unwrap_err().field, "key_prefix");
/// ```
#[derive(Clone)]
pub struct RedisReplayGuardBuilder {
    url: String,
    prefix: String,
    ttl: Duration,
    timeout: Duration,
}

/// The URL may hold a password: shown as `<redacted>`.
impl std::fmt::Debug for RedisReplayGuardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayGuardBuilder")
            .field("url", &"<redacted>")
            .field("key_prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisReplayGuardBuilder {
    /// Sets the prefix of every key the guard writes (default
    /// [`DEFAULT_KEY_PREFIX`](RedisReplayGuard::DEFAULT_KEY_PREFIX)): nodes that share nonces
    /// share a prefix; separate deployments on one Redis use separate ones. 1 to 128 printable
    /// ASCII characters, no space.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets how long a nonce is remembered at least (default 15 minutes; at least 1 ms).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the longest a nonce check may take, connecting included (default 500 ms; more
    /// than zero, at most 60 s). Past it the request is refused with `X503NS`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the guard. Nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`RedisConfigError`] naming the setting: `url` (not a `redis://` or `redis+unix://`
    /// URL), `key_prefix`, `timeout` or `ttl`.
    pub fn build(self) -> Result<RedisReplayGuard, RedisConfigError> {
        let link = RedisLink::open(&self.url, self.timeout)
            .map_err(|e| RedisConfigError::new("url", e))?;
        if self.prefix.is_empty()
            || self.prefix.len() > MAX_PREFIX_LEN
            || !self.prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(RedisConfigError::new(
                "key_prefix",
                "must be 1 to 128 printable ASCII characters without spaces",
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(RedisConfigError::new(
                "timeout",
                "must be more than zero and at most 60 s",
            ));
        }
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            return Err(RedisConfigError::new("ttl", "must be at least 1 ms"));
        }
        let target = link.target().to_owned();
        Ok(RedisReplayGuard {
            link,
            prefix: self.prefix,
            ttl_ms,
            timeout: self.timeout,
            target,
        })
    }
}

impl RedisReplayGuard {
    /// The key prefix used unless [`with_key_prefix`](RedisReplayGuardBuilder::with_key_prefix)
    /// sets another.
    pub const DEFAULT_KEY_PREFIX: &'static str = "stagegate:nonce:";

    /// The timeout used unless [`with_timeout`](RedisReplayGuardBuilder::with_timeout) sets
    /// another.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

    /// Settings for a guard on the Redis at `url` (`redis://[:password@]host[:port][/db]`).
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = stagegate::auth::RedisReplayGuard::builder("redis://:pw@127.0.0.1/2")
    ///     .build()
    ///     .unwrap();
    /// let shown = format!("{guard:?}");
    /// assert!(shown.contains("127.0.0.1:6379/2") && !shown.contains("pw"), "{shown}");
    /// ```
    #[must_use]
    pub fn builder(url: impl Into<String>) -> RedisReplayGuardBuilder {
        RedisReplayGuardBuilder {
            url: url.into(),
            prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            ttl: DEFAULT_NONCE_TTL,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// A guard on the Redis at `url` with the default settings.
    ///
    /// # Errors
    ///
    /// As [`RedisReplayGuardBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::auth::RedisReplayGuard;
    /// assert!(RedisReplayGuard::new("redis://127.0.0.1:6379").is_ok());
    /// assert_eq!(RedisReplayGuard::new("127.0.0.1:6379").unwrap_err().field, "url");
    /// ```
    pub fn new(url: &str) -> Result<Self, RedisConfigError> {
        Self::builder(url).build()
    }

    /// The key prefix in force.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key a nonce of `app_key` is stored under (for operators and tests).
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = stagegate::auth::RedisReplayGuard::new("redis://127.0.0.1").unwrap();
    /// assert_eq!(guard.key_for("203", "n-1"), "stagegate:nonce:3:203n-1");
    /// ```
    #[must_use]
    pub fn key_for(&self, app_key: &str, nonce: &str) -> String {
        format!("{}{}:{app_key}{nonce}", self.prefix, app_key.len())
    }

    /// Checks that Redis answers `PING` within the timeout (for start-up and health checks).
    ///
    /// # Errors
    ///
    /// [`ReplayError::Unavailable`] saying why, as a nonce check would fail.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() {
    /// let guard = stagegate::auth::RedisReplayGuard::new("redis://127.0.0.1:6379").unwrap();
    /// if let Err(e) = guard.ping().await {
    ///     eprintln!("nonce checks will be refused until Redis is back: {e}");
    /// }
    /// # }
    /// ```
    pub async fn ping(&self) -> Result<(), ReplayError> {
        let (generation, mut conn) = self.connection()?;
        let cmd = redis::cmd("PING");
        match tokio::time::timeout(self.timeout, cmd.query_async::<redis::Value>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ReplayError::Unavailable(format!(
                "Redis at {}: {e}",
                self.target
            ))),
            Err(_) => {
                self.forget(generation);
                Err(self.too_slow())
            }
        }
    }

    /// Asks Redis whether the scoped nonce is fresh, storing it for `px` milliseconds if so:
    /// the whole decision, (re)connecting included, within the timeout.
    async fn set_nx(&self, key: String, px: u64) -> Result<bool, ReplayError> {
        let (generation, mut conn) = self.connection()?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(1u8).arg("NX").arg("PX").arg(px);
        let reply =
            match tokio::time::timeout(self.timeout, cmd.query_async::<redis::Value>(&mut conn))
                .await
            {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => {
                    if e.is_timeout() {
                        self.forget(generation);
                    }
                    return Err(ReplayError::Unavailable(format!(
                        "Redis at {}: {e}",
                        self.target
                    )));
                }
                Err(_) => {
                    self.forget(generation);
                    return Err(self.too_slow());
                }
            };
        match reply {
            redis::Value::Okay => Ok(true),
            redis::Value::SimpleString(s) if s == "OK" => Ok(true),
            redis::Value::Nil => Ok(false),
            other => Err(ReplayError::Unavailable(format!(
                "Redis at {} answered SET NX with {other:?}",
                self.target
            ))),
        }
    }

    fn too_slow(&self) -> ReplayError {
        ReplayError::Unavailable(format!(
            "Redis at {} did not answer within {:?}",
            self.target, self.timeout
        ))
    }

    /// The shared connection manager and its generation, made on first use.
    fn connection(&self) -> Result<(u64, redis::aio::ConnectionManager), ReplayError> {
        self.link
            .connection()
            .map_err(|e| ReplayError::Unavailable(format!("Redis at {}: {e}", self.target)))
    }

    /// Drops the manager of `generation` (one that timed out): the next check connects anew.
    fn forget(&self, generation: u64) {
        self.link.forget(generation);
    }
}

/// Refuses what must never reach Redis: empty, oversized or non-printable input.
fn check_input(app_key: &str, nonce: &str) -> Result<(), ReplayError> {
    let printable = |s: &str| s.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let refuse = |name, reason| Err(ReplayError::InvalidInput { name, reason });
    if nonce.is_empty() {
        return refuse("X-Ca-Nonce", "is empty");
    }
    if nonce.len() > MAX_NONCE_LEN {
        return refuse("X-Ca-Nonce", "is too long");
    }
    if !printable(nonce) {
        return refuse("X-Ca-Nonce", "is not visible ASCII");
    }
    if app_key.len() > MAX_APP_KEY_LEN {
        return refuse("X-Ca-Key", "is too long");
    }
    if !printable(app_key) {
        return refuse("X-Ca-Key", "is not visible ASCII");
    }
    Ok(())
}

impl ReplayGuard for RedisReplayGuard {
    fn check_and_remember<'a>(
        &'a self,
        app_key: &'a str,
        nonce: &'a str,
        now_ms: u64,
    ) -> ReplayFuture<'a> {
        self.check_and_remember_until(app_key, nonce, now_ms, 0)
    }

    fn check_and_remember_until<'a>(
        &'a self,
        app_key: &'a str,
        nonce: &'a str,
        now_ms: u64,
        until_ms: u64,
    ) -> ReplayFuture<'a> {
        Box::pin(async move {
            check_input(app_key, nonce)?;
            let px = self.ttl_ms.max(until_ms.saturating_sub(now_ms));
            let key = self.key_for(app_key, nonce);
            self.set_nx(key, px).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_input_is_named_and_refused() {
        let long = "n".repeat(MAX_NONCE_LEN + 1);
        for (key, nonce, name, reason) in [
            ("k", "", "X-Ca-Nonce", "is empty"),
            ("k", long.as_str(), "X-Ca-Nonce", "is too long"),
            ("k", "a\u{0}b", "X-Ca-Nonce", "is not visible ASCII"),
            ("k", "a\r\nSET x y", "X-Ca-Nonce", "is not visible ASCII"),
            ("k", "caf\u{e9}", "X-Ca-Nonce", "is not visible ASCII"),
            ("k\n", "n", "X-Ca-Key", "is not visible ASCII"),
        ] {
            assert_eq!(
                check_input(key, nonce),
                Err(ReplayError::InvalidInput { name, reason }),
                "{nonce:?}"
            );
        }
        assert_eq!(check_input("203", &"n".repeat(MAX_NONCE_LEN)), Ok(()));
    }

    #[test]
    fn settings_are_checked_and_named() {
        let b = || RedisReplayGuard::builder("redis://127.0.0.1:6379");
        for (builder, field) in [
            (RedisReplayGuard::builder("rediss://h"), "url"),
            (RedisReplayGuard::builder("redis://h:notaport"), "url"),
            (RedisReplayGuard::builder(""), "url"),
            (b().with_key_prefix("with space"), "key_prefix"),
            (b().with_key_prefix("x".repeat(129)), "key_prefix"),
            (b().with_timeout(Duration::ZERO), "timeout"),
            (b().with_timeout(Duration::from_secs(61)), "timeout"),
            (b().with_ttl(Duration::from_micros(10)), "ttl"),
        ] {
            assert_eq!(builder.build().unwrap_err().field, field);
        }
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        let e = RedisReplayGuard::new("redis://:hunter2@h:bad").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let b = RedisReplayGuard::builder("redis://:hunter2@127.0.0.1:6379");
        assert!(!format!("{b:?}").contains("hunter2"));
        let g = b.build().unwrap();
        assert!(!format!("{g:?}").contains("hunter2"));
    }

    #[test]
    fn keys_are_scoped_unambiguously() {
        let g = RedisReplayGuard::new("redis://127.0.0.1").unwrap();
        assert_ne!(g.key_for("ab", "c"), g.key_for("a", "bc"));
    }
}
