//! Nonce stores: replay protection for `X-Ca-Nonce`.

use std::collections::VecDeque;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
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
/// A nonce is remembered as a 128-bit keyed fingerprint of `(AppKey, nonce)` plus a time,
/// never as text: 40 bytes each (24 in the table, 16 in its expiry list) plus the table's
/// spare capacity, with no allocation per nonce, however long the nonces are.
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
pub struct MemoryReplayGuard {
    inner: Mutex<Inner>,
    /// Nonces are chosen by clients: two randomly keyed SipHash instances
    /// (std's `RandomState`) give each `(AppKey, nonce)` pair a 128-bit fingerprint that
    /// clients can neither predict nor steer.
    hashers: [RandomState; 2],
    max_entries: usize,
    ttl_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// The remembered nonces, by fingerprint.
    seen: HashTable<Seen>,
    /// (bucket number, fingerprints of the nonces first seen in it), oldest first; bucket
    /// numbers never decrease.
    buckets: Buckets,
}

/// A 128-bit keyed fingerprint of a scoped `(AppKey, nonce)` key. Its first half is also
/// the table hash.
///
/// Storing the fingerprint instead of the key keeps every entry at a fixed 24 bytes with no
/// allocation of its own. Two different pairs share a fingerprint with probability 2^-128
/// (the keys are secret, so no client can search for a collision); the only effect of one
/// would be a fresh nonce refused as used.
type Fingerprint = (u64, u64);

/// Expiry buckets: (bucket number, fingerprints of the nonces first seen in it).
type Buckets = VecDeque<(u64, Vec<Fingerprint>)>;

/// A remembered nonce.
#[derive(Debug)]
struct Seen {
    fingerprint: Fingerprint,
    /// When it was last seen (epoch milliseconds).
    at: u64,
}

const BUCKET_MS: u64 = 60 * 1000;

/// Counts only: a million remembered nonces make no useful `Debug` output.
impl std::fmt::Debug for MemoryReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remembered = self.inner.lock().seen.len();
        f.debug_struct("MemoryReplayGuard")
            .field("remembered", &remembered)
            .field("max_entries", &self.max_entries)
            .field("ttl_ms", &self.ttl_ms)
            .finish()
    }
}

impl MemoryReplayGuard {
    /// The default maximum number of remembered nonces.
    pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

    /// A guard with the defaults: 1,000,000 entries, 15-minute TTL.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            hashers: [RandomState::new(), RandomState::new()],
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
        // Built on the stack and hashed outside the lock; never stored.
        let mut key = smallvec::SmallVec::<[u8; 128]>::new();
        scoped_key_into(&mut key, app_key, nonce);
        let fingerprint = (
            self.hashers[0].hash_one(&key[..]),
            self.hashers[1].hash_one(&key[..]),
        );
        let mut inner = self.inner.lock();
        inner.purge(now_ms, self.ttl_ms);
        let Inner { seen, buckets } = &mut *inner;
        let full = seen.len() >= self.max_entries;
        match seen.entry(
            fingerprint.0,
            |s| s.fingerprint == fingerprint,
            |s| s.fingerprint.0,
        ) {
            Entry::Occupied(mut e) => {
                let s = e.get_mut();
                if now_ms.saturating_sub(s.at) < self.ttl_ms {
                    return Ok(false);
                }
                // Expired but not yet purged (its bucket is still partly live): renew it.
                s.at = now_ms;
            }
            Entry::Vacant(e) => {
                if full {
                    return Err(ReplayError::Full {
                        capacity: self.max_entries,
                    });
                }
                e.insert(Seen {
                    fingerprint,
                    at: now_ms,
                });
            }
        }
        push_bucket(buckets, now_ms, fingerprint);
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
#[cfg(test)]
fn scoped_key(app_key: &str, nonce: &str) -> Box<str> {
    let mut key = smallvec::SmallVec::new();
    scoped_key_into(&mut key, app_key, nonce);
    String::from_utf8_lossy(&key).into()
}

fn push_bucket(buckets: &mut Buckets, now_ms: u64, key: Fingerprint) {
    let bucket = now_ms / BUCKET_MS;
    match buckets.back_mut() {
        // Clock went backwards or same minute: keep bucket numbers monotonic.
        Some((last, keys)) if *last >= bucket => keys.push(key),
        _ => buckets.push_back((bucket, vec![key])),
    }
}

impl Inner {
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
                    if let Ok(e) = self.seen.find_entry(key.0, |s| s.fingerprint == key)
                        && e.get().at.saturating_add(ttl_ms) <= now_ms
                    {
                        e.remove();
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
