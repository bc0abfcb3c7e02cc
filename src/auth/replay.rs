//! Nonce stores: replay protection for `X-Ca-Nonce`.

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::time::Duration;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use parking_lot::Mutex;

use super::error::ReplayError;

/// The future returned by [`ReplayGuard::check_and_remember`].
pub type ReplayFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, ReplayError>> + Send + 'a>>;

/// How long a nonce is remembered at least: the 15-minute replay window. A nonce whose
/// request carries a time is remembered for as long as that time is acceptable
/// ([`ReplayGuard::check_and_remember_until`]), which may be longer.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(stagegate::auth::DEFAULT_NONCE_TTL, Duration::from_secs(15 * 60));
/// ```
pub const DEFAULT_NONCE_TTL: Duration = Duration::from_secs(15 * 60);

/// A nonce store: remembers `(AppKey, X-Ca-Nonce)` pairs for the replay window.
///
/// Implementations must be atomic: of concurrent calls with the same pair, exactly one
/// returns `Ok(true)` ("fresh"). The call is asynchronous so that a store shared between
/// gateway processes (e.g. over the network) can implement it.
///
/// # Examples
///
/// ```
/// use stagegate::auth::{MemoryReplayGuard, ReplayGuard};
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

    /// [`check_and_remember`](Self::check_and_remember), remembering the nonce at least until
    /// `until_ms` (epoch milliseconds) as well as for the store's own TTL: the gateway passes
    /// the last moment at which the request's signed time is still accepted
    /// (`X-Ca-Timestamp` + allowed skew), so that the nonce cannot be replayed while the
    /// request itself would pass.
    ///
    /// The provided implementation ignores `until_ms`; a store whose TTL does not already
    /// cover twice the allowed skew should override it. [`MemoryReplayGuard`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::auth::{MemoryReplayGuard, ReplayGuard};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// const MIN: u64 = 60_000;
    /// let guard: &dyn ReplayGuard = &MemoryReplayGuard::new();
    /// // a timestamp 14 minutes ahead stays acceptable for 29 minutes: so does its nonce
    /// assert_eq!(block_on(guard.check_and_remember_until("key", "n", 0, 29 * MIN)), Ok(true));
    /// assert_eq!(block_on(guard.check_and_remember("key", "n", 20 * MIN)), Ok(false));
    /// ```
    fn check_and_remember_until<'a>(
        &'a self,
        app_key: &'a str,
        nonce: &'a str,
        now_ms: u64,
        until_ms: u64,
    ) -> ReplayFuture<'a> {
        let _ = until_ms;
        self.check_and_remember(app_key, nonce, now_ms)
    }
}

/// An in-process, bounded [`ReplayGuard`].
///
/// Nonces are scoped per AppKey and remembered for at least the TTL (default 15 minutes),
/// and, through [`check_and_remember_until`](ReplayGuard::check_and_remember_until), for as
/// long as the request's signed time stays acceptable; then they are forgotten in one-minute
/// buckets as later calls arrive: no background task.
///
/// # Bounds
///
/// When the store holds `max_entries` unexpired nonces it **refuses** new ones with
/// [`ReplayError::Full`] rather than forgetting an unexpired nonce (which would re-open a
/// replay); the gateway then answers `X503BZ`.
///
/// **Per-app share:** one AppKey may hold at most
/// [`max_entries_per_app`](Self::with_max_entries_per_app) unexpired nonces, by default a
/// quarter of `max_entries` (at least one). An app over its share gets
/// [`ReplayError::AppShareExceeded`] (also `X503BZ`) for its new nonces while every other
/// app keeps working, so at least four busy (or hostile) apps are needed to fill the store.
/// The gateway records a nonce only after the signature, the app and its grant are checked,
/// so only authorized apps use the store at all.
///
/// A nonce is remembered as a 128-bit keyed fingerprint of `(AppKey, nonce)`, a keyed hash
/// of the AppKey (for its share) and an expiry, never as text: 48 bytes each (32 in the
/// table, 16 in its expiry list) plus the table's spare capacity, with no allocation per
/// nonce, however long the nonces are.
///
/// # Examples
///
/// ```
/// use stagegate::auth::{MemoryReplayGuard, ReplayError};
/// let guard = MemoryReplayGuard::new().with_max_entries(4).with_max_entries_per_app(2);
/// assert_eq!(guard.remember("app", "a", 0), Ok(true));
/// assert_eq!(guard.remember("other-app", "a", 0), Ok(true)); // scoped per AppKey
/// assert_eq!(guard.remember("app", "b", 0), Ok(true));
/// // `app` holds its share: it is refused, another app is not
/// assert_eq!(guard.remember("app", "c", 0), Err(ReplayError::AppShareExceeded { share: 2 }));
/// assert_eq!(guard.remember("third-app", "a", 0), Ok(true));
/// assert!(guard.remember("fourth-app", "a", 0).is_err()); // full: refuse, do not forget
/// assert_eq!(guard.remember("app", "c", 17 * 60 * 1000), Ok(true)); // old ones expired
/// ```
pub struct MemoryReplayGuard {
    inner: Mutex<Inner>,
    /// Nonces are chosen by clients: two randomly keyed SipHash instances
    /// (std's `RandomState`) give each `(AppKey, nonce)` pair a 128-bit fingerprint that
    /// clients can neither predict nor steer.
    hashers: [RandomState; 2],
    max_entries: usize,
    /// The per-app share; `None`: a quarter of `max_entries`.
    max_per_app: Option<usize>,
    ttl_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// The remembered nonces, by fingerprint.
    seen: HashTable<Seen>,
    /// Expiry buckets: bucket number (expiry / one minute) → fingerprints expiring in it.
    buckets: Buckets,
    /// Unexpired-or-unpurged nonces per app (by the app key's hash); no zero counts.
    per_app: HashTable<(u64, usize)>,
}

/// A 128-bit keyed fingerprint of a scoped `(AppKey, nonce)` key. Its first half is also
/// the table hash.
///
/// Storing the fingerprint instead of the key keeps every entry at a fixed size with no
/// allocation of its own. Two different pairs share a fingerprint with probability 2^-128
/// (the keys are secret, so no client can search for a collision); the only effect of one
/// would be a fresh nonce refused as used.
type Fingerprint = (u64, u64);

/// Expiry buckets: (bucket number, fingerprints of the nonces expiring in it), in order.
type Buckets = BTreeMap<u64, Vec<Fingerprint>>;

/// A remembered nonce.
#[derive(Debug)]
struct Seen {
    fingerprint: Fingerprint,
    /// The keyed hash of its AppKey (for the per-app share).
    app: u64,
    /// When it may be forgotten (epoch milliseconds): it is a replay before then.
    expires: u64,
}

const BUCKET_MS: u64 = 60 * 1000;

/// Counts only: a million remembered nonces make no useful `Debug` output.
impl std::fmt::Debug for MemoryReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remembered = self.inner.lock().seen.len();
        f.debug_struct("MemoryReplayGuard")
            .field("remembered", &remembered)
            .field("max_entries", &self.max_entries)
            .field("max_entries_per_app", &self.max_entries_per_app())
            .field("ttl_ms", &self.ttl_ms)
            .finish()
    }
}

impl MemoryReplayGuard {
    /// The default maximum number of remembered nonces.
    pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

    /// A guard with the defaults: 1,000,000 entries, a quarter of them per app at most,
    /// 15-minute TTL.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            hashers: [RandomState::new(), RandomState::new()],
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_per_app: None,
            ttl_ms: duration_ms(DEFAULT_NONCE_TTL),
        }
    }

    /// Sets the maximum number of unexpired nonces held.
    #[must_use]
    pub fn with_max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Sets the most unexpired nonces one AppKey may hold (its share of the store; default
    /// a quarter of [`with_max_entries`](Self::with_max_entries), at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = stagegate::auth::MemoryReplayGuard::new().with_max_entries(100);
    /// assert_eq!(guard.max_entries_per_app(), 25);
    /// assert_eq!(guard.with_max_entries_per_app(60).max_entries_per_app(), 60);
    /// ```
    #[must_use]
    pub fn with_max_entries_per_app(mut self, share: usize) -> Self {
        self.max_per_app = Some(share);
        self
    }

    /// The per-app share in force (see [`with_max_entries_per_app`](Self::with_max_entries_per_app)).
    #[must_use]
    pub fn max_entries_per_app(&self) -> usize {
        self.max_per_app
            .unwrap_or_else(|| (self.max_entries / 4).max(1))
    }

    /// Sets how long a nonce is remembered at least (counted in whole milliseconds).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let guard = stagegate::auth::MemoryReplayGuard::new().with_ttl(Duration::from_secs(60));
    /// assert_eq!(guard.remember("key", "n1", 0), Ok(true));
    /// assert_eq!(guard.remember("key", "n1", 59_999), Ok(false)); // still remembered
    /// assert_eq!(guard.remember("key", "n1", 60_001), Ok(true)); // forgotten after the TTL
    /// ```
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl_ms = duration_ms(ttl);
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
    /// [`ReplayError::Full`] when the nonce is new and the store is full;
    /// [`ReplayError::AppShareExceeded`] when it is new and the app holds its share.
    pub fn remember(&self, app_key: &str, nonce: &str, now_ms: u64) -> Result<bool, ReplayError> {
        self.remember_until(app_key, nonce, now_ms, 0)
    }

    /// The synchronous form of [`ReplayGuard::check_and_remember_until`]: the nonce is
    /// remembered until the later of `now_ms` + TTL and `until_ms`.
    ///
    /// # Errors
    ///
    /// As [`remember`](Self::remember).
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = stagegate::auth::MemoryReplayGuard::new();
    /// let min = 60_000;
    /// assert_eq!(guard.remember_until("k", "n", 0, 29 * min), Ok(true));
    /// assert_eq!(guard.remember("k", "n", 28 * min), Ok(false));
    /// assert_eq!(guard.remember("k", "n", 30 * min), Ok(true));
    /// ```
    pub fn remember_until(
        &self,
        app_key: &str,
        nonce: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool, ReplayError> {
        // Built on the stack and hashed outside the lock; never stored.
        let mut key = smallvec::SmallVec::<[u8; 128]>::new();
        scoped_key_into(&mut key, app_key, nonce);
        let fingerprint = (
            self.hashers[0].hash_one(&key[..]),
            self.hashers[1].hash_one(&key[..]),
        );
        let app = self.hashers[1].hash_one(app_key.as_bytes());
        let expires = now_ms.saturating_add(self.ttl_ms).max(until_ms);
        let share = self.max_entries_per_app();
        let mut inner = self.inner.lock();
        inner.purge(now_ms);
        let Inner {
            seen,
            buckets,
            per_app,
        } = &mut *inner;
        let full = seen.len() >= self.max_entries;
        match seen.entry(
            fingerprint.0,
            |s| s.fingerprint == fingerprint,
            |s| s.fingerprint.0,
        ) {
            Entry::Occupied(mut e) => {
                let s = e.get_mut();
                if now_ms < s.expires {
                    return Ok(false);
                }
                // Expired but not yet purged (its bucket is still partly live): renew it.
                s.expires = expires;
            }
            Entry::Vacant(e) => {
                if full {
                    return Err(ReplayError::Full {
                        capacity: self.max_entries,
                    });
                }
                match per_app.entry(app, |(a, _)| *a == app, |(a, _)| *a) {
                    Entry::Occupied(mut c) => {
                        if c.get().1 >= share {
                            return Err(ReplayError::AppShareExceeded { share });
                        }
                        c.get_mut().1 += 1;
                    }
                    Entry::Vacant(c) => {
                        if share == 0 {
                            return Err(ReplayError::AppShareExceeded { share });
                        }
                        c.insert((app, 1));
                    }
                }
                e.insert(Seen {
                    fingerprint,
                    app,
                    expires,
                });
            }
        }
        buckets
            .entry(expires / BUCKET_MS)
            .or_default()
            .push(fingerprint);
        Ok(true)
    }
}

impl Default for MemoryReplayGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes the unambiguous `(app key, nonce)` key into `out`: the key's length, `:`, key,
/// nonce.
fn scoped_key_into(out: &mut smallvec::SmallVec<[u8; 128]>, app_key: &str, nonce: &str) {
    let len = app_key.len();
    let digits = len.checked_ilog10().unwrap_or(0) as usize + 1;
    out.reserve(digits + 1 + len + nonce.len());
    let mut rest = len;
    let mut digit_bytes = [0u8; 20];
    for d in digit_bytes[..digits].iter_mut().rev() {
        // A decimal digit: always fits in a u8.
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digit_bytes[..digits]);
    out.push(b':');
    out.extend_from_slice(app_key.as_bytes());
    out.extend_from_slice(nonce.as_bytes());
}

/// The scoped key as text (for tests).
/// A duration in whole milliseconds, saturating (nonce times are milliseconds since the epoch).
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
fn scoped_key(app_key: &str, nonce: &str) -> Box<str> {
    let mut key = smallvec::SmallVec::new();
    scoped_key_into(&mut key, app_key, nonce);
    String::from_utf8_lossy(&key).into()
}

impl Inner {
    /// Drops every bucket whose entries have all expired, forgetting those of its nonces
    /// that were not renewed into a later bucket.
    fn purge(&mut self, now_ms: u64) {
        while let Some(entry) = self.buckets.first_entry() {
            let end = entry.key().saturating_add(1).saturating_mul(BUCKET_MS);
            if end > now_ms {
                break;
            }
            for key in entry.remove() {
                // A renewed key lives on in a later bucket: keep it.
                if let Ok(e) = self.seen.find_entry(key.0, |s| s.fingerprint == key)
                    && e.get().expires <= now_ms
                {
                    let (seen, _) = e.remove();
                    let app = seen.app;
                    if let Ok(mut c) = self.per_app.find_entry(app, |(a, _)| *a == app) {
                        if c.get().1 <= 1 {
                            c.remove();
                        } else {
                            c.get_mut().1 -= 1;
                        }
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

    fn check_and_remember_until<'a>(
        &'a self,
        app_key: &'a str,
        nonce: &'a str,
        now_ms: u64,
        until_ms: u64,
    ) -> ReplayFuture<'a> {
        Box::pin(std::future::ready(
            self.remember_until(app_key, nonce, now_ms, until_ms),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn debug_output_shows_counts_not_nonces() {
        let guard = MemoryReplayGuard::new();
        guard.remember("key-1", "nonce-1f2e", 0).unwrap();
        let out = format!("{guard:?}");
        assert!(out.contains("remembered: 1"), "{out}");
        assert!(
            !out.contains("nonce-1f2e") && !out.contains("key-1"),
            "{out}"
        );
    }

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
    fn an_app_over_its_share_is_refused_alone_until_its_nonces_expire() {
        let g = MemoryReplayGuard::new().with_max_entries(100);
        assert_eq!(g.max_entries_per_app(), 25);
        for i in 0..25 {
            assert_eq!(g.remember("greedy", &i.to_string(), 0), Ok(true));
        }
        assert_eq!(
            g.remember("greedy", "one-more", 0),
            Err(ReplayError::AppShareExceeded { share: 25 })
        );
        // a replay is still recognised as one
        assert_eq!(g.remember("greedy", "3", 0), Ok(false));
        assert_eq!(g.remember("modest", "a", 0), Ok(true));
        // expired nonces give the share back
        assert_eq!(g.remember("greedy", "one-more", 16 * MIN), Ok(true));
        assert_eq!(g.len(), 1);
        let inner = g.inner.lock();
        assert_eq!(inner.per_app.len(), 1, "no zero counts are kept");
    }

    #[test]
    fn a_nonce_lives_as_long_as_its_request_is_acceptable() {
        let g = MemoryReplayGuard::new();
        // until before now + TTL: the TTL wins
        assert_eq!(g.remember_until("k", "a", 0, 5 * MIN), Ok(true));
        assert_eq!(g.remember("k", "a", 14 * MIN), Ok(false));
        // until after now + TTL: kept until then
        assert_eq!(g.remember_until("k", "b", 0, 29 * MIN + 30_000), Ok(true));
        assert_eq!(g.remember("k", "b", 16 * MIN), Ok(false));
        assert_eq!(g.remember("k", "b", 29 * MIN), Ok(false));
        assert_eq!(g.remember("k", "b", 29 * MIN + 30_000), Ok(true));
        // entries expiring out of order are purged in order of expiry
        let g = MemoryReplayGuard::new();
        g.remember_until("k", "late", 0, 40 * MIN).unwrap();
        g.remember("k", "early", 0).unwrap();
        assert_eq!(g.remember("k", "x", 20 * MIN), Ok(true));
        assert_eq!(g.len(), 2, "`early` is forgotten, `late` is not");
        assert_eq!(g.remember("k", "late", 20 * MIN), Ok(false));
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
