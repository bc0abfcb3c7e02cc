//! Throttling: limits per fixed window, and the [`RateCounter`] that counts them.
//!
//! A policy limits, per window of one [`ThrottleUnit`] (aligned to the Unix epoch, so a
//! `MINUTE` window starts at second 0 of a UTC minute and a `DAY` window at UTC midnight):
//!
//! - `api_default`: requests to the API in the stage, from every caller together (`T429PA`);
//! - `app_default`: requests of each app (`T429PR`); anonymous calls have no app and count
//!   only against `api_default`;
//! - `special_apps`: a named app's own limit instead of `app_default` (`T429SR`).
//!
//! A request is admitted when it is within every limit that applies; a refused request counts
//! against none (the app's slot it took before the API limit refused it is given back), so
//! one node admits exactly `limit` requests per window and scope.
//!
//! # Counting on one node, and in a cluster
//!
//! [`RateCounter`] is the seam: [`LocalCounter`] counts in this process with one atomic word
//! per (policy, API, stage, app) holding the window number and the count, updated by
//! compare-and-swap, in a map split into 64 shards each behind its own read-write lock that
//! is only written when a key is first seen. `RedisCounter` (feature `redis`) holds the limit
//! across a cluster by leasing batches of tokens per node from Redis: a counter answers
//! [`Acquire::Ready`] from what it holds, or [`Acquire::Pending`] with a future when it must
//! ask its store first; the pipeline awaits only the latter.
//!
//! # Examples
//!
//! ```
//! use stagegate::model::{ApiId, PolicyId, Stage};
//! use stagegate::policy::{CounterKey, LocalCounter, RateCounter, ThrottleUnit, Window};
//! let counter = LocalCounter::new();
//! let (policy, api) = (PolicyId::generate(), ApiId::generate());
//! let key = CounterKey { policy: &policy, api: &api, stage: &Stage::RELEASE, app: None };
//! let window = Window::at(ThrottleUnit::Minute, 1_700_000_000_000);
//! assert!(counter.acquire(&key, window, 2).now().unwrap().admitted);
//! assert!(counter.acquire(&key, window, 2).now().unwrap().admitted);
//! let third = counter.acquire(&key, window, 2).now().unwrap();
//! assert!(!third.admitted);
//! assert_eq!(third.remaining, 0);
//! ```

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{ApiId, AppId, PolicyId, Stage, ValidationError};

/// The largest limit a policy accepts.
pub const MAX_LIMIT: u32 = 1_000_000_000;

/// The length of a throttling window.
///
/// # Examples
///
/// ```
/// use stagegate::policy::ThrottleUnit;
/// assert_eq!(ThrottleUnit::parse("HOUR").unwrap().seconds(), 3600);
/// assert!(ThrottleUnit::parse("WEEK").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ThrottleUnit {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl ThrottleUnit {
    /// Parses `SECOND`, `MINUTE`, `HOUR` or `DAY`.
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidField`] naming `unit`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "SECOND" => Ok(Self::Second),
            "MINUTE" => Ok(Self::Minute),
            "HOUR" => Ok(Self::Hour),
            "DAY" => Ok(Self::Day),
            _ => Err(ValidationError::field(
                "unit",
                format!(
                    "unknown unit `{}`: expected SECOND, MINUTE, HOUR or DAY",
                    crate::model::id::truncate(s)
                ),
            )),
        }
    }

    /// The window's length in seconds.
    #[must_use]
    pub fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
        }
    }

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Second => "SECOND",
            Self::Minute => "MINUTE",
            Self::Hour => "HOUR",
            Self::Day => "DAY",
        }
    }
}

impl<'de> Deserialize<'de> for ThrottleUnit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::model::id::deserialize_parsed(d, "a throttling unit", Self::parse)
    }
}

/// An app's own limit, instead of the policy's `app_default`.
///
/// # Examples
///
/// ```
/// use stagegate::model::AppId;
/// use stagegate::policy::SpecialApp;
/// let s = SpecialApp { app_id: AppId::parse("110843374").unwrap(), limit: 50 };
/// assert_eq!(s.limit, 50);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialApp {
    /// The app.
    pub app_id: AppId,
    /// Its limit per window.
    pub limit: u32,
}

/// A throttling policy's settings.
///
/// # Examples
///
/// ```
/// use stagegate::policy::{Throttling, ThrottleUnit};
/// let mut t = Throttling::new(ThrottleUnit::Second, 100);
/// t.app_default = Some(10);
/// assert!(t.validate().is_ok());
/// t.api_default = 0;
/// assert!(t.validate().unwrap_err().to_string().contains("api_default"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttling {
    /// The window.
    pub unit: ThrottleUnit,
    /// Requests per window to the API in the stage, all callers together.
    pub api_default: u32,
    /// Requests per window of each app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_default: Option<u32>,
    /// Named apps' own limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub special_apps: Vec<SpecialApp>,
}

impl Throttling {
    /// A policy with only an API limit.
    #[must_use]
    pub fn new(unit: ThrottleUnit, api_default: u32) -> Self {
        Self {
            unit,
            api_default,
            app_default: None,
            special_apps: Vec::new(),
        }
    }

    /// Checks every limit is from 1 to [`MAX_LIMIT`] and no app has two special values.
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidField`] naming the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_limit("api_default", i64::from(self.api_default))?;
        if let Some(a) = self.app_default {
            check_limit("app_default", i64::from(a))?;
        }
        if self.special_apps.len() > 1000 {
            return Err(ValidationError::field(
                "special_apps",
                "at most 1000 special values",
            ));
        }
        for (i, s) in self.special_apps.iter().enumerate() {
            check_limit(&format!("special_apps[{i}].limit"), i64::from(s.limit))?;
            if self.special_apps[..i].iter().any(|o| o.app_id == s.app_id) {
                return Err(ValidationError::field(
                    format!("special_apps[{i}].app_id"),
                    format!("app `{}` has two special values", s.app_id),
                ));
            }
        }
        Ok(())
    }

    /// The limit that applies to `app`, and the code that refuses it.
    pub(crate) fn app_limit(&self, app: &AppId) -> Option<(u32, crate::ErrorCode)> {
        if let Some(s) = self.special_apps.iter().find(|s| &s.app_id == app) {
            return Some((s.limit, crate::ErrorCode::T429SR));
        }
        self.app_default.map(|l| (l, crate::ErrorCode::T429PR))
    }
}

/// Checks a limit given as any integer: from 1 to [`MAX_LIMIT`].
pub(crate) fn check_limit(field: &str, v: i64) -> Result<(), ValidationError> {
    if v < 1 || v > i64::from(MAX_LIMIT) {
        return Err(ValidationError::field(
            field,
            format!("must be a whole number from 1 to {MAX_LIMIT}, got {v}"),
        ));
    }
    Ok(())
}

/// One window of one unit: its number since the epoch and how long until it ends.
///
/// # Examples
///
/// ```
/// use stagegate::policy::{ThrottleUnit, Window};
/// let w = Window::at(ThrottleUnit::Minute, 90_500); // 90.5 s after the epoch
/// assert_eq!(w.index, 1);
/// assert_eq!(w.reset_after_ms, 29_500);
/// assert_eq!(w.reset_after_secs(), 30);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The unit.
    pub unit: ThrottleUnit,
    /// The window's number: milliseconds since the epoch over the unit's length.
    pub index: u64,
    /// Milliseconds until the next window starts (at least 1).
    pub reset_after_ms: u64,
}

impl Window {
    /// The window of `unit` holding `now_ms` (milliseconds since the Unix epoch).
    #[must_use]
    pub fn at(unit: ThrottleUnit, now_ms: u64) -> Self {
        let len = unit.seconds() * 1000;
        let index = now_ms / len;
        Self {
            unit,
            index,
            reset_after_ms: (index + 1) * len - now_ms,
        }
    }

    /// Whole seconds until the next window, rounded up (what `Retry-After` and
    /// `RateLimit-Reset` carry).
    #[must_use]
    pub fn reset_after_secs(&self) -> u64 {
        self.reset_after_ms.div_ceil(1000)
    }
}

/// What a counter is counting: one scope of one binding.
#[derive(Clone, Copy, Debug, Hash)]
pub struct CounterKey<'a> {
    /// The policy.
    pub policy: &'a PolicyId,
    /// The API.
    pub api: &'a ApiId,
    /// The stage.
    pub stage: &'a Stage,
    /// The app for an app scope, `None` for the API scope.
    pub app: Option<&'a AppId>,
}

/// The answer of [`RateCounter::acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquired {
    /// Whether the request is within the limit (and was counted).
    pub admitted: bool,
    /// How many more requests the window admits after this one.
    pub remaining: u32,
}

/// The future of an [`Acquire::Pending`] answer: owns what it needs (no borrow of the key).
pub type AcquireFuture = Pin<Box<dyn Future<Output = Acquired> + Send + 'static>>;

/// What [`RateCounter::acquire`] answers: the decision now, or a future that makes it.
///
/// # Examples
///
/// ```
/// use stagegate::policy::{Acquire, Acquired};
/// # async fn f() {
/// let now = Acquire::from(Acquired { admitted: true, remaining: 4 });
/// assert_eq!(now.now().map(|a| a.remaining), Some(4));
/// let later = Acquire::Pending(Box::pin(async { Acquired { admitted: false, remaining: 0 } }));
/// assert!(!later.resolve().await.admitted);
/// # }
/// ```
#[must_use = "a request is counted only when the answer is read"]
pub enum Acquire {
    /// Decided from what the counter holds: the request's path does not wait.
    Ready(Acquired),
    /// The counter must ask its store first (a cluster-wide counter out of tokens): await it.
    Pending(AcquireFuture),
}

impl Acquire {
    /// The decision if it is ready, `None` if it is pending.
    #[must_use]
    pub fn now(&self) -> Option<Acquired> {
        match self {
            Self::Ready(a) => Some(*a),
            Self::Pending(_) => None,
        }
    }

    /// The decision, awaiting it if it is pending.
    pub async fn resolve(self) -> Acquired {
        match self {
            Self::Ready(a) => a,
            Self::Pending(f) => f.await,
        }
    }
}

impl From<Acquired> for Acquire {
    fn from(a: Acquired) -> Self {
        Self::Ready(a)
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(a) => f.debug_tuple("Ready").field(a).finish(),
            Self::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// Counts requests per key and window.
///
/// [`acquire`](Self::acquire) is called on the request's path. It answers
/// [`Acquire::Ready`] whenever it can decide from what it holds in memory, without waiting and
/// without allocating; an implementation shared by several nodes answers from its lease of
/// tokens, refills it in the background, and answers [`Acquire::Pending`] only when it holds
/// nothing for the key and must ask its store (bound that wait: the request waits for it).
///
/// # Examples
///
/// ```
/// use stagegate::policy::{Acquire, Acquired, CounterKey, RateCounter, Window};
/// /// Admits everything (a counter for tests).
/// #[derive(Debug)]
/// struct Unlimited;
/// impl RateCounter for Unlimited {
///     fn acquire(&self, _: &CounterKey<'_>, _: Window, limit: u32) -> Acquire {
///         Acquire::Ready(Acquired { admitted: true, remaining: limit })
///     }
///     fn release(&self, _: &CounterKey<'_>, _: Window) {}
/// }
/// let layer = stagegate::GatewayLayer::new(Default::default()).with_rate_counter(Unlimited);
/// # let _ = layer;
/// ```
pub trait RateCounter: fmt::Debug + Send + Sync + 'static {
    /// Counts one request against `limit` in `window`; a request over the limit is not counted.
    fn acquire(&self, key: &CounterKey<'_>, window: Window, limit: u32) -> Acquire;

    /// Gives back one request counted by `acquire` in `window` (a request a later scope
    /// refused). Nothing happens once the window is over.
    fn release(&self, key: &CounterKey<'_>, window: Window);
}

impl<C: RateCounter + ?Sized> RateCounter for std::sync::Arc<C> {
    fn acquire(&self, key: &CounterKey<'_>, window: Window, limit: u32) -> Acquire {
        (**self).acquire(key, window, limit)
    }
    fn release(&self, key: &CounterKey<'_>, window: Window) {
        (**self).release(key, window);
    }
}

type OwnedKey = (PolicyId, ApiId, Stage, Option<AppId>);

impl hashbrown::Equivalent<OwnedKey> for CounterKey<'_> {
    fn equivalent(&self, k: &OwnedKey) -> bool {
        *self.policy == k.0 && *self.api == k.1 && *self.stage == k.2 && self.app == k.3.as_ref()
    }
}

const SHARDS: usize = 64;

type Shard<V> = RwLock<hashbrown::HashMap<OwnedKey, V, rustc_hash::FxBuildHasher>>;

/// One value per counter key, in a map split into 64 shards by hash, each behind a
/// `parking_lot` read-write lock that requests only read (a write happens once per new key).
pub(crate) struct Slots<V> {
    shards: Box<[Shard<V>]>,
    hasher: rustc_hash::FxBuildHasher,
}

impl<V> Slots<V> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: rustc_hash::FxBuildHasher,
        }
    }

    /// How many keys are held.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    fn shard(&self, key: &CounterKey<'_>) -> &Shard<V> {
        let h = self.hasher.hash_one(key);
        // the top bits: the map itself uses the low ones
        #[allow(clippy::cast_possible_truncation)]
        &self.shards[(h >> 58) as usize % SHARDS]
    }

    /// Runs `f` on the key's value, made with `make` the first time the key is seen.
    pub(crate) fn with<T>(
        &self,
        key: &CounterKey<'_>,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&V) -> T,
    ) -> T {
        let shard = self.shard(key);
        {
            let map = shard.read();
            if let Some(slot) = map.get(key) {
                return f(slot);
            }
        }
        let mut map = shard.write();
        let owned: OwnedKey = (
            key.policy.clone(),
            key.api.clone(),
            key.stage.clone(),
            key.app.cloned(),
        );
        let slot = map.entry(owned).or_insert_with(make);
        f(slot)
    }
}

/// The single-node [`RateCounter`]: exact, lock-free on the counting itself.
///
/// Each key's count lives in one `AtomicU64` (the window number in the high 32 bits, the
/// count in the low 32) changed by compare-and-swap: a new window resets it in the same
/// step. The map of keys is split into 64 shards by hash, each behind a `parking_lot`
/// read-write lock that requests only read (a write happens once per new key), so requests
/// for different keys share no lock and no cache line beyond their shard.
///
/// Memory: one entry per (binding, scope, app) ever counted, kept until the counter is
/// dropped (an app's entry is reused window after window).
///
/// # Examples
///
/// ```
/// use stagegate::policy::LocalCounter;
/// let layer = stagegate::GatewayLayer::new(Default::default()).with_rate_counter(LocalCounter::new());
/// # let _ = layer;
/// ```
pub struct LocalCounter {
    slots: Slots<AtomicU64>,
}

impl fmt::Debug for LocalCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCounter")
            .field("keys", &self.slots.len())
            .finish()
    }
}

impl Default for LocalCounter {
    fn default() -> Self {
        Self::new()
    }
}

/// One atomic word of a window number (its low 32 bits: a second-long window wraps after
/// 136 years) and a count.
pub(crate) fn pack(window: u64, count: u32) -> u64 {
    ((window & 0xffff_ffff) << 32) | u64::from(count)
}

/// The count packed with `window`, or `None` if the word holds another window.
pub(crate) fn count_in(word: u64, window: u64) -> Option<u32> {
    // the low 32 bits
    #[allow(clippy::cast_possible_truncation)]
    (word >> 32 == window & 0xffff_ffff).then_some(word as u32)
}

impl LocalCounter {
    /// An empty counter.
    #[must_use]
    pub fn new() -> Self {
        Self {
            slots: Slots::new(),
        }
    }

    fn with_slot<T>(&self, key: &CounterKey<'_>, f: impl FnOnce(&AtomicU64) -> T) -> T {
        self.slots.with(key, || AtomicU64::new(0), f)
    }

    /// Counts exactly: one compare-and-swap on the key's word.
    fn count(&self, key: &CounterKey<'_>, window: Window, limit: u32) -> Acquired {
        self.with_slot(key, |slot| {
            let mut cur = slot.load(Ordering::Relaxed);
            loop {
                let count = count_in(cur, window.index).unwrap_or(0);
                if count >= limit {
                    return Acquired {
                        admitted: false,
                        remaining: 0,
                    };
                }
                match slot.compare_exchange_weak(
                    cur,
                    pack(window.index, count + 1),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        return Acquired {
                            admitted: true,
                            remaining: limit - count - 1,
                        };
                    }
                    Err(now) => cur = now,
                }
            }
        })
    }
}

impl RateCounter for LocalCounter {
    fn acquire(&self, key: &CounterKey<'_>, window: Window, limit: u32) -> Acquire {
        Acquire::Ready(self.count(key, window, limit))
    }

    fn release(&self, key: &CounterKey<'_>, window: Window) {
        self.with_slot(key, |slot| {
            let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |cur| {
                let count = count_in(cur, window.index)?;
                (count > 0).then(|| pack(window.index, count - 1))
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    impl LocalCounter {
        fn take(&self, key: &CounterKey<'_>, window: Window, limit: u32) -> Acquired {
            self.acquire(key, window, limit).now().unwrap()
        }
    }

    #[test]
    fn a_new_window_starts_from_zero() {
        let c = LocalCounter::new();
        let (p, a) = (PolicyId::generate(), ApiId::generate());
        let key = CounterKey {
            policy: &p,
            api: &a,
            stage: &Stage::TEST,
            app: None,
        };
        let w1 = Window::at(ThrottleUnit::Second, 5_000);
        assert!(c.take(&key, w1, 1).admitted);
        assert!(!c.take(&key, w1, 1).admitted);
        let w2 = Window::at(ThrottleUnit::Second, 6_000);
        assert!(c.take(&key, w2, 1).admitted);
        // a release for a window that is over changes nothing
        c.release(&key, w1);
        assert!(!c.take(&key, w2, 1).admitted);
        c.release(&key, w2);
        assert!(c.take(&key, w2, 1).admitted);
    }

    #[test]
    fn apps_and_the_api_scope_count_apart() {
        let c = LocalCounter::new();
        let (p, a) = (PolicyId::generate(), ApiId::generate());
        let app = AppId::parse("1001").unwrap();
        let api_key = CounterKey {
            policy: &p,
            api: &a,
            stage: &Stage::TEST,
            app: None,
        };
        let app_key = CounterKey {
            app: Some(&app),
            ..api_key
        };
        let w = Window::at(ThrottleUnit::Day, 0);
        assert_eq!(c.take(&api_key, w, 3).remaining, 2);
        assert_eq!(c.take(&app_key, w, 3).remaining, 2);
        assert_eq!(c.take(&app_key, w, 3).remaining, 1);
        assert_eq!(c.take(&api_key, w, 3).remaining, 1);
    }

    #[test]
    fn threads_together_admit_exactly_the_limit() {
        let c = Arc::new(LocalCounter::new());
        let (p, a) = (PolicyId::generate(), ApiId::generate());
        let w = Window::at(ThrottleUnit::Hour, 0);
        let admitted: u32 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let c = Arc::clone(&c);
                    let (p, a) = (&p, &a);
                    s.spawn(move || {
                        let key = CounterKey {
                            policy: p,
                            api: a,
                            stage: &Stage::RELEASE,
                            app: None,
                        };
                        (0..5000)
                            .filter(|_| c.take(&key, w, 7_777).admitted)
                            .count() as u32
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 7_777);
    }

    #[test]
    fn limits_are_checked_with_the_field_named() {
        let mut t = Throttling::new(ThrottleUnit::Minute, 10);
        t.special_apps.push(SpecialApp {
            app_id: AppId::parse("7").unwrap(),
            limit: 0,
        });
        let e = t.validate().unwrap_err().to_string();
        assert!(e.contains("special_apps[0].limit"), "{e}");
        assert!(
            ThrottleUnit::parse("WEEK")
                .unwrap_err()
                .to_string()
                .contains("unit")
        );
    }
}
