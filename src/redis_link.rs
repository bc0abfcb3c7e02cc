//! One Redis connection as the crate's Redis users keep it (feature `redis`):
//! `auth::RedisReplayGuard` and `policy::RedisCounter`.
//!
//! The URL is checked when the user is built; the connection is made on first use (it needs a
//! tokio runtime, and a node must start while Redis is away), by redis-rs's connection
//! manager, which reconnects by itself after a connection drops. A connection that stops
//! answering without dropping (a frozen server, a black-holed network) is not noticed by the
//! manager, so after a timeout the user [forgets](RedisLink::forget) it and the next call
//! starts a new manager (the generation tells which one timed out).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A checked Redis URL and its connection, made on first use.
pub(crate) struct RedisLink {
    client: redis::Client,
    manager: Mutex<Option<(u64, ConnectionManager)>>,
    /// The next manager's generation.
    generations: AtomicU64,
    timeout: Duration,
    /// `host:port/db` for `Debug` and logs; never the password.
    target: String,
}

impl RedisLink {
    /// Checks `url` (`redis://`, `redis+unix://` or `unix://`). Nothing connects yet.
    ///
    /// The error is the reason the URL is refused, never repeating it (it may hold a password).
    pub(crate) fn open(url: &str, timeout: Duration) -> Result<Self, String> {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("redis" | "redis+unix" | "unix")) {
            return Err(
                "expected redis://[:password@]host[:port][/db] (or redis+unix://); \
                 TLS (rediss://) is not built in"
                    .into(),
            );
        }
        let client = redis::Client::open(url).map_err(|e| {
            format!(
                "cannot be parsed ({:?}): expected redis://[:password@]host[:port][/db]",
                e.kind()
            )
        })?;
        let info = client.get_connection_info();
        let target = format!("{}/{}", info.addr(), info.redis_settings().db());
        Ok(Self {
            client,
            manager: Mutex::new(None),
            generations: AtomicU64::new(0),
            timeout,
            target,
        })
    }

    /// `host:port/db`, never a password.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// The shared connection manager and its generation, made on first use (inside the
    /// caller's runtime): connecting and each answer bounded by the timeout.
    pub(crate) fn connection(&self) -> Result<(u64, ConnectionManager), redis::RedisError> {
        let mut slot = self.manager.lock();
        if let Some((generation, m)) = &*slot {
            return Ok((*generation, m.clone()));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            // One quick retry per reconnect; the caller's own timeout bounds the wait.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(self.timeout);
        let made = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        *slot = Some((generation, made.clone()));
        Ok((generation, made))
    }

    /// Drops the manager of `generation` (one that timed out): the next call connects anew.
    pub(crate) fn forget(&self, generation: u64) {
        let mut slot = self.manager.lock();
        if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
            *slot = None;
        }
    }

    /// Drops whatever manager there is (a call abandoned without knowing its generation).
    pub(crate) fn forget_current(&self) {
        *self.manager.lock() = None;
    }
}
