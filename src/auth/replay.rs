//! Nonce stores: replay protection for `X-Ca-Nonce`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;

use parking_lot::Mutex;

use super::error::ReplayError;

/// The future returned by [`ReplayGuard::check_and_remember`].
pub type ReplayFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, ReplayError>> + Send + 'a>>;

/// How long a nonce is remembered by default: the 15-minute replay window.
pub const DEFAULT_NONCE_TTL_MS: u64 = 15 * 60 * 1000;

/// A nonce store: remembers `(AppKey, X-Ca-Nonce)` pairs for the replay window.
///
/// Implementations must be atomic: of concurrent calls with the same pair, exactly one
/// returns `Ok(true)` ("fresh"). The call is asynchronous so that a store shared between
/// gateway processes (e.g. over the network) can implement it.
///
/// # Examples
///
/// ```
/// use stagegate::{MemoryReplayGuard, ReplayGuard};
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let guard = MemoryReplayGuard::new();
/// let dyn_guard: &dyn ReplayGuard = &guard;
/// assert_eq!(block_on(dyn_guard.check_and_remember("key", "n-1", 1_000)), Ok(true));
/// assert_eq!(block_on(dyn_guard.check_and_remember("key", "n-1", 2_000)), Ok(false));
/// ```
pub trait ReplayGuard: Send + Sync + 'static {
    /// Records the nonce for the app key at `now_ms` (epoch milliseconds) and tells
    /// whether it was fresh (`true`) or already seen within the window (`false`).
    fn check_and_remember<'a>(
        &'a self,
        app_key: &'a str,
        nonce: &'a str,
        now_ms: u64,
    ) -> ReplayFuture<'a>;
}

/// An in-process, bounded [`ReplayGuard`].
///
/// Nonces are scoped per AppKey and remembered for at least the TTL (default 15 minutes),
/// then forgotten in one-minute buckets as later calls arrive: no background task.
/// When the store holds `max_entries` unexpired nonces it **refuses** new ones with
/// [`ReplayError::Full`] rather than forgetting an unexpired nonce (which would re-open a
/// replay); the gateway then answers `X503BZ`.
///
/// A request whose `X-Ca-Timestamp` lies ahead of the gateway clock stays valid until
/// `timestamp + skew`; to refuse its replay for that whole time, set the TTL to twice the
/// allowed skew with [`with_ttl_ms`](Self::with_ttl_ms).
///
/// # Examples
///
/// ```
/// use stagegate::MemoryReplayGuard;
/// let guard = MemoryReplayGuard::new().with_max_entries(2);
/// assert_eq!(guard.remember("app", "a", 0), Ok(true));
/// assert_eq!(guard.remember("other-app", "a", 0), Ok(true)); // scoped per AppKey
/// assert!(guard.remember("app", "b", 0).is_err()); // full: refuse, do not forget
/// assert_eq!(guard.remember("app", "b", 17 * 60 * 1000), Ok(true)); // old ones expired
/// ```
#[derive(Debug)]
pub struct MemoryReplayGuard {
    inner: Mutex<Inner>,
    max_entries: usize,
    ttl_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<Box<str>, u64>,
    /// (bucket number, keys first seen in it), oldest first; bucket numbers never decrease.
    buckets: VecDeque<(u64, Vec<Box<str>>)>,
}

const BUCKET_MS: u64 = 60 * 1000;

impl MemoryReplayGuard {
    /// The default maximum number of remembered nonces.
    pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

    /// A guard with the defaults: 1,000,000 entries, 15-minute TTL.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            ttl_ms: DEFAULT_NONCE_TTL_MS,
        }
    }

    /// Sets the maximum number of unexpired nonces held.
    #[must_use]
    pub fn with_max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Sets how long a nonce is remembered, in milliseconds.
    #[must_use]
    pub fn with_ttl_ms(mut self, ttl_ms: u64) -> Self {
        self.ttl_ms = ttl_ms;
        self
    }

    /// The number of nonces currently remembered (expired ones may linger until the next
    /// call purges their bucket).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.lock().seen.len()
    }

    /// Whether no nonce is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The synchronous form of [`ReplayGuard::check_and_remember`].
    ///
    /// # Errors
    ///
    /// [`ReplayError::Full`] when the nonce is new and the store is full.
    pub fn remember(&self, app_key: &str, nonce: &str, now_ms: u64) -> Result<bool, ReplayError> {
        let key = scoped_key(app_key, nonce);
        let mut inner = self.inner.lock();
        inner.purge(now_ms, self.ttl_ms);
        if let Some(&seen_at) = inner.seen.get(&key) {
            if now_ms.saturating_sub(seen_at) < self.ttl_ms {
                return Ok(false);
            }
            // Expired but not yet purged (its bucket is still partly live): renew it.
            inner.seen.insert(key.clone(), now_ms);
            inner.push_bucket(now_ms, key);
            return Ok(true);
        }
        if inner.seen.len() >= self.max_entries {
            return Err(ReplayError::Full {
                capacity: self.max_entries,
            });
        }
        inner.seen.insert(key.clone(), now_ms);
        inner.push_bucket(now_ms, key);
        Ok(true)
    }
}

impl Default for MemoryReplayGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// An unambiguous `(app key, nonce)` key: the key's length, `:`, key, nonce.
///
/// Built with its exact capacity (no temporary for the length, no shrinking copy).
fn scoped_key(app_key: &str, nonce: &str) -> Box<str> {
    let len = app_key.len();
    let digits = len.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut s = String::with_capacity(digits + 1 + len + nonce.len());
    // Writing to a String cannot fail.
    let _ = write!(s, "{len}:");
    s.push_str(app_key);
    s.push_str(nonce);
    s.into_boxed_str()
}

impl Inner {
    fn push_bucket(&mut self, now_ms: u64, key: Box<str>) {
        let bucket = now_ms / BUCKET_MS;
        match self.buckets.back_mut() {
            // Clock went backwards or same minute: keep bucket numbers monotonic.
            Some((last, keys)) if *last >= bucket => keys.push(key),
            _ => self.buckets.push_back((bucket, vec![key])),
        }
    }

    /// Drops every bucket whose newest possible entry is older than the TTL.
    fn purge(&mut self, now_ms: u64, ttl_ms: u64) {
        while let Some((bucket, _)) = self.buckets.front() {
            let newest = bucket.saturating_add(1).saturating_mul(BUCKET_MS);
            if newest.saturating_add(ttl_ms) > now_ms {
                break;
            }
            if let Some((_, keys)) = self.buckets.pop_front() {
                for key in keys {
                    // A renewed key lives on in a later bucket: keep it.
                    if self
                        .seen
                        .get(&key)
                        .is_some_and(|&t| t.saturating_add(ttl_ms) <= now_ms)
                    {
                        self.seen.remove(&key);
                    }
                }
            }
        }
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn check_and_remember<'a>(
        &'a self,
        app_key: &'a str,
        nonce: &'a str,
        now_ms: u64,
    ) -> ReplayFuture<'a> {
        Box::pin(std::future::ready(self.remember(app_key, nonce, now_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MIN: u64 = 60 * 1000;

    #[test]
    fn scoped_key_is_length_prefixed() {
        assert_eq!(&*scoped_key("abc", "n-1"), "3:abcn-1");
        assert_eq!(&*scoped_key("", "n"), "0:n");
        assert_eq!(&*scoped_key("0123456789", ""), "10:0123456789");
    }

    #[test]
    fn remembered_for_the_window_then_forgotten() {
        let g = MemoryReplayGuard::new();
        let t0 = 1_525_872_629_832;
        assert_eq!(g.remember("k", "n", t0), Ok(true));
        assert_eq!(g.remember("k", "n", t0 + 14 * MIN), Ok(false));
        assert_eq!(g.remember("k", "n", t0 + 15 * MIN - 1), Ok(false));
        assert_eq!(g.remember("k", "n", t0 + 15 * MIN), Ok(true));
        assert_eq!(g.remember("k", "n", t0 + 16 * MIN), Ok(false));
    }

    #[test]
    fn purge_bounds_memory() {
        let g = MemoryReplayGuard::new();
        for i in 0..100 {
            assert_eq!(g.remember("k", &i.to_string(), i * 1000), Ok(true));
        }
        assert_eq!(g.len(), 100);
        assert_eq!(g.remember("k", "late", 60 * MIN), Ok(true));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn key_scoping_is_unambiguous() {
        let g = MemoryReplayGuard::new();
        assert_eq!(g.remember("ab", "c", 0), Ok(true));
        assert_eq!(g.remember("a", "bc", 0), Ok(true));
    }

    #[test]
    fn concurrent_same_nonce_exactly_one_fresh() {
        let g = Arc::new(MemoryReplayGuard::new());
        for round in 0..50 {
            let nonce = format!("n{round}");
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let g = Arc::clone(&g);
                    let nonce = nonce.clone();
                    std::thread::spawn(move || g.remember("k", &nonce, 0))
                })
                .collect();
            let fresh = handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .filter(|f| *f)
                .count();
            assert_eq!(fresh, 1);
        }
    }
}
