//! Leasing tokens from a store shared by every node: the cluster-wide half of throttling.
//!
//! A node does not ask the store about every request. Per (policy, API, stage, app) and
//! window it holds a *lease*: tokens the store granted it, each the right to admit one
//! request. A request spends one token from memory (one compare-and-swap, no allocation).
//!
//! - **Leasing.** The store grants tokens with one atomic step (a Lua script in Redis):
//!   `grant = min(want, left, ceil(left / nodes))` where `left = limit - granted so far`, and
//!   the window's count is raised by `grant` (created with the window's expiry). The store
//!   never grants past the limit, so the cluster never admits more than the limit in a window
//!   (overshoot 0), whatever the number of nodes.
//! - **Refill.** A node asks for up to `batch` tokens when it has none (the request waits for
//!   that answer, bounded by the timeout), and tops its lease up to `batch - 1` in the
//!   background when a request leaves it at or below the low-water mark (`batch / 2`), so a
//!   busy node rarely waits. Requests that find the lease empty while a lease is being asked
//!   for wait for that one answer (one store call per node and key at a time).
//! - **The next window.** A request in the last tenth of a window (at most its last 2 s)
//!   leases `batch - 1` tokens of the next window in the background, so a busy key's first
//!   request in the new window spends from memory too.
//! - **Exhaustion.** When the store answers that the window has nothing left, the node
//!   remembers it and refuses without asking again until the window ends.
//! - **Under-admission.** Tokens leased but not spent when the window ends are lost: a node
//!   refused while others still hold tokens. A node holds at most `batch - 1` tokens between
//!   requests, so with N nodes at most `(N - 1) * (batch - 1)` requests fewer than the limit
//!   are admitted in a window (the refused node holds none). The share rule
//!   `ceil(left / nodes)` shrinks grants as the window fills, so the real figure is smaller
//!   when traffic is spread.
//! - **Store unreachable: fail open.** An error or no answer within the timeout starts an
//!   *outage*: one `warn` event (target `stagegate::throttle`), then every request is decided
//!   at once from memory: the node spends what it still holds, then counts alone up to
//!   `ceil(limit / nodes)` per window, less what the store had granted it in that window. No
//!   request waits for the store during an outage; one background lease attempt per retry
//!   interval (1 s) probes it, and the first that succeeds ends the outage (an `info` event).
//!   While it lasts, the cluster may admit up to `nodes * ceil(limit / nodes)` per window on
//!   top of what was counted before it began.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::throttle::{Slots, count_in, pack};
use super::{Acquire, Acquired, CounterKey, ThrottleUnit, Window};

/// Extra lifetime of a window's count in the store past the window's end (clock skew).
const EXPIRY_SLACK_MS: u64 = 5_000;
/// How long an outage lasts before a lease is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How many leases an on-demand fetch tries when other requests keep spending what it got.
const FETCH_ROUNDS: usize = 4;

/// What the store is asked for: up to `want` tokens of `key`'s window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaseRequest {
    /// The window's key in the store.
    pub(crate) key: String,
    pub(crate) limit: u32,
    pub(crate) want: u32,
    /// The share divisor: at most `ceil(left / nodes)` tokens are granted.
    pub(crate) nodes: u32,
    /// How long the key lives when created (the window's rest, plus slack).
    pub(crate) ttl_ms: u64,
}

/// What the store granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Tokens granted now (0: the window is exhausted).
    pub(crate) granted: u32,
    /// Tokens granted in the window to every node together, this grant included.
    pub(crate) used: u64,
}

/// The future of one store call.
pub(crate) type LeaseFuture = Pin<Box<dyn Future<Output = Result<Lease, String>> + Send>>;

/// The store's one operation: grant tokens atomically, never past the limit.
pub(crate) trait LeaseBackend: Send + Sync + 'static {
    /// Grants `min(want, left, ceil(left / nodes))` tokens of the window, `left` being the
    /// limit less what was granted so far; creates the key with `ttl_ms` to live.
    fn lease(&self, req: LeaseRequest) -> LeaseFuture;

    /// A lease got no answer within the timeout and was abandoned: a connection that stops
    /// answering without dropping should be replaced.
    fn timed_out(&self) {}
}

/// How a [`Leasing`] counter behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) batch: u32,
    pub(crate) nodes: u32,
    pub(crate) timeout: Duration,
}

/// Counts of what the counter did, for metrics and tests.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) leases: AtomicU64,
    pub(crate) tokens_granted: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) outages: AtomicU64,
    pub(crate) fallback_admitted: AtomicU64,
    pub(crate) waited: AtomicU64,
}

/// One key's lease.
struct Slot {
    /// The key's prefix in the store: `<prefix><policy>:<api>:<stage>:<app or ->:`.
    base: String,
    /// Tokens held, packed with their window.
    tokens: AtomicU64,
    /// Tokens the store granted this node in the window plus requests admitted alone in an
    /// outage, packed with the window.
    granted: AtomicU64,
    /// What the store had left of the window at its last answer, packed with the window.
    left: AtomicU64,
    /// The window (plus one) the store answered exhausted; 0 for none.
    exhausted: AtomicU64,
    /// A background top-up is on its way.
    refilling: AtomicBool,
    /// Tokens leased ahead for the next window, packed with it.
    next: AtomicU64,
    /// What the store had left of the next window when it leased them, packed with it.
    next_left: AtomicU64,
    /// A lease for the next window is on its way.
    prefetching: AtomicBool,
    /// Held while the store is asked: one call per key at a time.
    fetch: tokio::sync::Mutex<()>,
}

impl Slot {
    fn new(base: String) -> Self {
        Self {
            base,
            tokens: AtomicU64::new(0),
            granted: AtomicU64::new(0),
            left: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
            refilling: AtomicBool::new(false),
            next: AtomicU64::new(0),
            next_left: AtomicU64::new(0),
            prefetching: AtomicBool::new(false),
            fetch: tokio::sync::Mutex::new(()),
        }
    }

    /// Spends one token of `window`: the tokens left after it, or `None` if there was none.
    fn take(&self, window: u64) -> Option<u32> {
        let mut cur = self.tokens.load(Ordering::Acquire);
        loop {
            let held = count_in(cur, window).filter(|&n| n > 0)?;
            match self.tokens.compare_exchange_weak(
                cur,
                pack(window, held - 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(held - 1),
                Err(now) => cur = now,
            }
        }
    }

    fn held(&self, window: u64) -> u32 {
        count_in(self.tokens.load(Ordering::Acquire), window).unwrap_or(0)
    }

    /// Adds `n` tokens of `window`; tokens of an older window are dropped, and a grant for a
    /// window that is already over is dropped.
    fn add(&self, window: u64, n: u32) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                match count_in(cur, window) {
                    Some(held) => Some(pack(window, held.saturating_add(n))),
                    // the low 32 bits of the window number
                    #[allow(clippy::cast_possible_truncation)]
                    None if (cur >> 32) as u32 <= window as u32 => Some(pack(window, n)),
                    None => None,
                }
            });
    }

    /// Adds `n` to a packed per-window count, starting it at `n` in a new window.
    fn bump(word: &AtomicU64, window: u64, n: u32) {
        let _ = word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
            Some(pack(
                window,
                count_in(cur, window).unwrap_or(0).saturating_add(n),
            ))
        });
    }

    /// Moves tokens leased ahead for `window` into the lease; whether there were any.
    fn promote(&self, window: u64) -> bool {
        let word = self.next.load(Ordering::Acquire);
        let Some(n) = count_in(word, window).filter(|&n| n > 0) else {
            return false;
        };
        if self
            .next
            .compare_exchange(word, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.add(window, n);
        Self::bump(&self.granted, window, n);
        if let Some(left) = count_in(self.next_left.load(Ordering::Relaxed), window) {
            self.left.store(pack(window, left), Ordering::Relaxed);
        }
        true
    }

    fn is_exhausted(&self, window: u64) -> bool {
        self.exhausted.load(Ordering::Acquire) == window + 1
    }
}

/// A [`RateCounter`](super::RateCounter) core on any [`LeaseBackend`].
pub(crate) struct Leasing {
    backend: Box<dyn LeaseBackend>,
    slots: Slots<Arc<Slot>>,
    prefix: String,
    settings: Settings,
    /// Time zero for `down_until`.
    epoch: Instant,
    /// While set, an outage is on: requests are decided from memory alone.
    outage: AtomicBool,
    /// Milliseconds after `epoch` when the next lease may be tried during an outage.
    retry_at: AtomicU64,
    /// A background probe of the store is on its way.
    probing: AtomicBool,
    pub(crate) stats: Stats,
    /// Names the store in logs (never a password).
    target: String,
}

impl Leasing {
    pub(crate) fn new(
        backend: Box<dyn LeaseBackend>,
        prefix: String,
        settings: Settings,
        target: String,
    ) -> Self {
        Self {
            backend,
            slots: Slots::new(),
            prefix,
            settings,
            epoch: Instant::now(),
            outage: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            stats: Stats::default(),
            target,
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn settings(&self) -> Settings {
        self.settings
    }

    pub(crate) fn keys(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn in_outage(&self) -> bool {
        self.outage.load(Ordering::Acquire)
    }

    /// The store key of `key`'s `window`.
    pub(crate) fn store_key(&self, key: &CounterKey<'_>, window: Window) -> String {
        format!("{}{}", self.base(key), window_suffix(window))
    }

    fn base(&self, key: &CounterKey<'_>) -> String {
        format!(
            "{}{}:{}:{}:{}:",
            self.prefix,
            key.policy,
            key.api,
            key.stage,
            key.app.map_or("-", |a| a.as_str())
        )
    }

    fn low_water(&self) -> u32 {
        self.settings.batch / 2
    }

    /// The counter's answer for one request.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        key: &CounterKey<'_>,
        window: Window,
        limit: u32,
    ) -> Acquire {
        self.slots.with(
            key,
            || Arc::new(Slot::new(self.base(key))),
            |slot| {
                let w = window.index;
                if let Some(held) = slot.take(w) {
                    if held <= self.low_water() {
                        self.refill_in_background(slot, window, limit);
                    }
                    if window.reset_after_ms <= prefetch_ms(window.unit) {
                        self.prefetch_in_background(slot, window, limit);
                    }
                    return Acquire::Ready(self.admitted(slot, w, held, limit));
                }
                if slot.promote(w)
                    && let Some(held) = slot.take(w)
                {
                    return Acquire::Ready(self.admitted(slot, w, held, limit));
                }
                if slot.is_exhausted(w) {
                    return Acquire::Ready(REFUSED);
                }
                if self.in_outage() {
                    self.probe_in_background(slot, window, limit);
                    return Acquire::Ready(self.alone(slot, w, limit));
                }
                let (this, slot) = (Arc::clone(self), Arc::clone(slot));
                Acquire::Pending(Box::pin(async move {
                    this.fetch_and_take(&slot, window, limit).await
                }))
            },
        )
    }

    /// Gives a token back to the key's lease (or, if the node holds no lease for the window,
    /// to what it counted alone).
    pub(crate) fn release(&self, key: &CounterKey<'_>, window: Window) {
        self.slots.with(
            key,
            || Arc::new(Slot::new(self.base(key))),
            |slot| {
                let w = window.index;
                let back = slot
                    .tokens
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                        count_in(cur, w).map(|n| pack(w, n.saturating_add(1)))
                    });
                if back.is_err() {
                    let _ = slot
                        .granted
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                            let n = count_in(cur, w).filter(|&n| n > 0)?;
                            Some(pack(w, n - 1))
                        });
                }
            },
        );
    }

    /// An admission with `held` tokens left here; the remaining count adds what the store
    /// had left at its last answer (other nodes' unspent tokens are not known).
    fn admitted(&self, slot: &Slot, w: u64, held: u32, limit: u32) -> Acquired {
        let left = count_in(slot.left.load(Ordering::Relaxed), w).unwrap_or(0);
        Acquired {
            admitted: true,
            remaining: held.saturating_add(left).min(limit),
        }
    }

    /// Counting alone (an outage): up to `ceil(limit / nodes)` in the window, what the store
    /// granted this node in it included.
    fn alone(&self, slot: &Slot, w: u64, limit: u32) -> Acquired {
        let cap = limit.div_ceil(self.settings.nodes);
        let got = slot
            .granted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                let n = count_in(cur, w).unwrap_or(0);
                (n < cap).then(|| pack(w, n + 1))
            });
        // The trace of a decision made without the store (off unless `debug` is on for the
        // target; one per request during an outage).
        tracing::debug!(
            target: "stagegate::throttle",
            limit,
            node_share = cap,
            admitted = got.is_ok(),
            "decided on this node alone: the throttling store is unreachable"
        );
        match got {
            Ok(prev) => {
                self.stats.fallback_admitted.fetch_add(1, Ordering::Relaxed);
                Acquired {
                    admitted: true,
                    remaining: cap - count_in(prev, w).unwrap_or(0) - 1,
                }
            }
            Err(_) => REFUSED,
        }
    }

    /// The store is asked for a full batch (one request at a time per key), then a token is
    /// spent from it.
    async fn fetch_and_take(&self, slot: &Slot, window: Window, limit: u32) -> Acquired {
        let w = window.index;
        let _one_at_a_time = slot.fetch.lock().await;
        self.stats.waited.fetch_add(1, Ordering::Relaxed);
        for _ in 0..FETCH_ROUNDS {
            if let Some(held) = slot.take(w) {
                return self.admitted(slot, w, held, limit);
            }
            if slot.promote(w) {
                continue;
            }
            if slot.is_exhausted(w) {
                return REFUSED;
            }
            if self.in_outage()
                || self
                    .lease(slot, window, limit, self.settings.batch, Fill::Current)
                    .await
                    .is_err()
            {
                return self.alone(slot, w, limit);
            }
        }
        slot.take(w)
            .map_or(REFUSED, |held| self.admitted(slot, w, held, limit))
    }

    /// One store call for up to `want` tokens, bounded by the timeout; its answer is stored
    /// in the slot. An error starts an outage; success ends one.
    async fn lease(
        &self,
        slot: &Slot,
        window: Window,
        limit: u32,
        want: u32,
        fill: Fill,
    ) -> Result<(), ()> {
        let w = window.index;
        let req = LeaseRequest {
            key: format!("{}{}", slot.base, window_suffix(window)),
            limit,
            want,
            nodes: self.settings.nodes,
            ttl_ms: window.reset_after_ms + EXPIRY_SLACK_MS,
        };
        let answer =
            match tokio::time::timeout(self.settings.timeout, self.backend.lease(req)).await {
                Ok(a) => a,
                Err(_) => {
                    self.backend.timed_out();
                    Err(format!("no answer within {:?}", self.settings.timeout))
                }
            };
        match answer {
            Ok(lease) => {
                self.stats.leases.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .tokens_granted
                    .fetch_add(u64::from(lease.granted), Ordering::Relaxed);
                let left =
                    u32::try_from(u64::from(limit).saturating_sub(lease.used)).unwrap_or(limit);
                match fill {
                    Fill::Current => {
                        slot.left.store(pack(w, left), Ordering::Relaxed);
                        if lease.granted > 0 {
                            slot.add(w, lease.granted);
                            Slot::bump(&slot.granted, w, lease.granted);
                        }
                    }
                    Fill::Next => {
                        slot.next_left.store(pack(w, left), Ordering::Relaxed);
                        Slot::bump(&slot.next, w, lease.granted);
                    }
                }
                if left == 0 {
                    slot.exhausted.store(w + 1, Ordering::Release);
                }
                self.up();
                Ok(())
            }
            Err(why) => {
                self.down(&why);
                Err(())
            }
        }
    }

    /// Tops the lease up to `batch - 1` tokens without holding the request.
    fn refill_in_background(self: &Arc<Self>, slot: &Arc<Slot>, window: Window, limit: u32) {
        let w = window.index;
        if self.settings.batch <= 1
            || slot.is_exhausted(w)
            || self.in_outage()
            || slot.refilling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            slot.refilling.store(false, Ordering::Release);
            return;
        };
        let (this, slot) = (Arc::clone(self), Arc::clone(slot));
        rt.spawn(async move {
            // After an on-demand fetch that was on its way, the lease may be full already.
            let _one_at_a_time = slot.fetch.lock().await;
            let want = (this.settings.batch - 1).saturating_sub(slot.held(w));
            if want > this.low_water() / 2 && !slot.is_exhausted(w) && !this.in_outage() {
                let _ = this.lease(&slot, window, limit, want, Fill::Current).await;
            }
            slot.refilling.store(false, Ordering::Release);
        });
    }

    /// Near a window's end: leases `batch - 1` tokens of the next window in the background,
    /// once per key and window.
    fn prefetch_in_background(self: &Arc<Self>, slot: &Arc<Slot>, window: Window, limit: u32) {
        let next = Window {
            unit: window.unit,
            index: window.index + 1,
            reset_after_ms: window.reset_after_ms + window.unit.seconds() * 1000,
        };
        if self.settings.batch <= 1
            || self.in_outage()
            || count_in(slot.next.load(Ordering::Acquire), next.index).is_some()
            || slot.prefetching.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            slot.prefetching.store(false, Ordering::Release);
            return;
        };
        let (this, slot) = (Arc::clone(self), Arc::clone(slot));
        rt.spawn(async move {
            if count_in(slot.next.load(Ordering::Acquire), next.index).is_none() {
                let want = this.settings.batch - 1;
                let _ = this.lease(&slot, next, limit, want, Fill::Next).await;
            }
            slot.prefetching.store(false, Ordering::Release);
        });
    }

    /// During an outage, once per retry interval: one lease in the background; its success
    /// ends the outage.
    fn probe_in_background(self: &Arc<Self>, slot: &Arc<Slot>, window: Window, limit: u32) {
        if self.now_ms() < self.retry_at.load(Ordering::Acquire)
            || self.probing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.probing.store(false, Ordering::Release);
            return;
        };
        // The next probe waits a full interval whatever this one finds.
        self.retry_at
            .store(self.now_ms() + millis(RETRY_AFTER), Ordering::Release);
        let (this, slot) = (Arc::clone(self), Arc::clone(slot));
        rt.spawn(async move {
            if let Ok(_one_at_a_time) = slot.fetch.try_lock() {
                let want = (this.settings.batch - 1).max(1);
                let _ = this.lease(&slot, window, limit, want, Fill::Current).await;
            }
            this.probing.store(false, Ordering::Release);
        });
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    fn down(&self, why: &str) {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        self.retry_at
            .store(self.now_ms() + millis(RETRY_AFTER), Ordering::Release);
        if !self.outage.swap(true, Ordering::AcqRel) {
            self.stats.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: "stagegate::throttle",
                store = %self.target,
                error = %why,
                nodes = self.settings.nodes,
                "the throttling store cannot be reached: each node counts alone, up to \
                 ceil(limit / nodes) per window, until it answers again"
            );
        }
    }

    fn up(&self) {
        if self.outage.swap(false, Ordering::AcqRel) {
            tracing::info!(
                target: "stagegate::throttle",
                store = %self.target,
                "the throttling store answers again: limits hold across the cluster"
            );
        }
    }
}

/// Where a lease's tokens go.
#[derive(Clone, Copy)]
enum Fill {
    /// The lease of the window asked for.
    Current,
    /// Ahead, for a window not begun yet.
    Next,
}

/// How long before a window's end its next window is leased ahead: its last tenth, at most
/// 2 s.
fn prefetch_ms(unit: ThrottleUnit) -> u64 {
    (unit.seconds() * 100).min(2_000)
}

const REFUSED: Acquired = Acquired {
    admitted: false,
    remaining: 0,
};

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `S`, `M`, `H` or `D`, then the window's number: a changed unit is a new count.
fn window_suffix(window: Window) -> String {
    let unit = match window.unit {
        ThrottleUnit::Second => 'S',
        ThrottleUnit::Minute => 'M',
        ThrottleUnit::Hour => 'H',
        ThrottleUnit::Day => 'D',
    };
    format!("{unit}{}", window.index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiId, AppId, PolicyId, Stage};
    use parking_lot::Mutex;
    use std::collections::HashMap;

    /// The store in memory, as the Lua script does it; can be switched off, slowed down,
    /// and remembers every request.
    #[derive(Default)]
    struct Fake {
        counts: Mutex<HashMap<String, u64>>,
        calls: Mutex<Vec<LeaseRequest>>,
        down: AtomicBool,
        /// Answers after this long (a frozen server).
        delay_ms: AtomicU64,
    }

    impl LeaseBackend for Arc<Fake> {
        fn lease(&self, req: LeaseRequest) -> LeaseFuture {
            let this = Arc::clone(self);
            Box::pin(async move {
                this.calls.lock().push(req.clone());
                let delay = this.delay_ms.load(Ordering::Relaxed);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if this.down.load(Ordering::Relaxed) {
                    return Err("connection refused".into());
                }
                let mut counts = this.counts.lock();
                let used = counts.entry(req.key).or_insert(0);
                let left = u64::from(req.limit).saturating_sub(*used);
                let share = left.div_ceil(u64::from(req.nodes));
                let grant = u64::from(req.want).min(left).min(share);
                *used += grant;
                Ok(Lease {
                    granted: u32::try_from(grant).unwrap(),
                    used: *used,
                })
            })
        }
    }

    struct Keys {
        policy: PolicyId,
        api: ApiId,
        app: AppId,
    }

    impl Keys {
        fn new() -> Self {
            Self {
                policy: PolicyId::generate(),
                api: ApiId::generate(),
                app: AppId::parse("1001").unwrap(),
            }
        }
        fn key(&self) -> CounterKey<'_> {
            CounterKey {
                policy: &self.policy,
                api: &self.api,
                stage: &Stage::RELEASE,
                app: None,
            }
        }
    }

    fn node(fake: &Arc<Fake>, batch: u32, nodes: u32) -> Arc<Leasing> {
        Arc::new(Leasing::new(
            Box::new(Arc::clone(fake)),
            "t:".into(),
            Settings {
                batch,
                nodes,
                timeout: Duration::from_millis(50),
            },
            "fake".into(),
        ))
    }

    const W: Window = Window {
        unit: ThrottleUnit::Minute,
        index: 29_000_000,
        reset_after_ms: 30_000,
    };

    /// Lets the spawned background leases run.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    #[tokio::test]
    async fn a_request_under_its_limit_spends_from_memory_and_the_lease_is_topped_up_in_the_background()
     {
        let fake = Arc::new(Fake::default());
        let n = node(&fake, 10, 1);
        let k = Keys::new();
        // The first request of the window asks the store (pending), for a whole batch.
        let first = n.acquire(&k.key(), W, 1000);
        assert!(first.now().is_none());
        assert!(first.resolve().await.admitted);
        assert_eq!(fake.calls.lock().len(), 1);
        assert_eq!(fake.calls.lock()[0].want, 10);
        // The next ones are ready at once, from the 9 tokens held.
        for _ in 0..3 {
            assert!(n.acquire(&k.key(), W, 1000).now().unwrap().admitted);
        }
        settle().await;
        assert_eq!(
            fake.calls.lock().len(),
            1,
            "held 9 tokens, spent 3: no store call"
        );
        // This one leaves 5, the low-water mark: the lease is topped up behind it.
        let a = n.acquire(&k.key(), W, 1000).now().unwrap();
        assert!(a.admitted);
        assert_eq!(
            a.remaining,
            1000 - 10 + 5,
            "left in the store plus held here"
        );
        settle().await;
        let calls = fake.calls.lock().clone();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].want, 4, "topped up to batch - 1 = 9");
        for _ in 0..100 {
            let a = n.acquire(&k.key(), W, 1000);
            match a {
                Acquire::Ready(a) => assert!(a.admitted),
                Acquire::Pending(_) => panic!("a busy node under its limit never waits"),
            }
            settle().await;
        }
        let key = n.store_key(&k.key(), W);
        assert!(
            key.starts_with("t:") && key.ends_with(":-:M29000000"),
            "{key}"
        );
        assert_eq!(fake.calls.lock()[0].ttl_ms, 35_000);
    }

    #[tokio::test]
    async fn nodes_together_never_admit_more_than_the_limit_and_at_least_the_bound_below_it() {
        for (nodes, batch, limit) in [(2, 10, 50), (3, 16, 1000), (3, 16, 40), (5, 4, 7)] {
            let fake = Arc::new(Fake::default());
            let ns: Vec<_> = (0..nodes).map(|_| node(&fake, batch, nodes)).collect();
            let k = Keys::new();
            let mut admitted = 0u32;
            // Round-robin, with background refills running between requests, until every
            // node is refused from memory (exhausted).
            for i in 0..(limit * 3) {
                let n = &ns[i as usize % ns.len()];
                if n.acquire(&k.key(), W, limit).resolve().await.admitted {
                    admitted += 1;
                }
                if i % 7 == 0 {
                    settle().await;
                }
            }
            settle().await;
            let used = fake.counts.lock().values().sum::<u64>();
            assert!(
                used <= u64::from(limit),
                "the store never grants past the limit"
            );
            assert!(admitted <= limit, "{admitted} > {limit}");
            let bound = (nodes - 1) * (batch - 1);
            assert!(
                admitted >= limit.saturating_sub(bound),
                "{admitted} < {limit} - {bound} with {nodes} nodes, batch {batch}"
            );
        }
    }

    #[tokio::test]
    async fn near_a_window_end_the_next_window_is_leased_ahead() {
        let fake = Arc::new(Fake::default());
        let n = node(&fake, 10, 1);
        let k = Keys::new();
        let late = Window {
            reset_after_ms: 1_500,
            ..W
        };
        assert!(n.acquire(&k.key(), late, 1000).resolve().await.admitted);
        settle().await;
        assert_eq!(fake.calls.lock().len(), 1, "the first lease is not ahead");
        // A request in the last 2 s of a minute leases the next minute behind it, once.
        assert!(n.acquire(&k.key(), late, 1000).now().unwrap().admitted);
        assert!(n.acquire(&k.key(), late, 1000).now().unwrap().admitted);
        settle().await;
        let calls = fake.calls.lock().clone();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(calls[1].key.ends_with(&format!(":M{}", W.index + 1)));
        assert_eq!(
            (calls[1].want, calls[1].ttl_ms),
            (9, 1_500 + 60_000 + 5_000)
        );
        // The next window's first request spends them at once.
        let next = Window {
            index: W.index + 1,
            reset_after_ms: 60_000,
            ..W
        };
        let a = n.acquire(&k.key(), next, 1000).now().expect("no wait");
        assert_eq!(
            a,
            Acquired {
                admitted: true,
                remaining: 8 + 991
            }
        );
        assert_eq!(n.stats.waited.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn an_exhausted_window_is_refused_from_memory_until_the_next_window() {
        let fake = Arc::new(Fake::default());
        let n = node(&fake, 4, 1);
        let k = Keys::new();
        for _ in 0..3 {
            assert!(n.acquire(&k.key(), W, 3).resolve().await.admitted);
        }
        settle().await;
        let calls = fake.calls.lock().len();
        for _ in 0..50 {
            let a = n
                .acquire(&k.key(), W, 3)
                .now()
                .expect("refused from memory");
            assert_eq!(a, REFUSED);
        }
        assert_eq!(
            fake.calls.lock().len(),
            calls,
            "no store call once exhausted"
        );
        // The next window is a new count; a give-back in it is spendable at once.
        let next = Window {
            index: W.index + 1,
            ..W
        };
        assert!(n.acquire(&k.key(), next, 3).resolve().await.admitted);
        n.release(&k.key(), W); // the old window: nothing happens
        let app_key = CounterKey {
            app: Some(&k.app),
            ..k.key()
        };
        assert!(n.acquire(&app_key, next, 3).resolve().await.admitted);
        assert!(n.store_key(&app_key, next).contains(":1001:M"));
    }

    #[tokio::test]
    async fn a_given_back_token_is_spent_again_and_never_grows_the_window() {
        let fake = Arc::new(Fake::default());
        let n = node(&fake, 1, 1);
        let k = Keys::new();
        assert!(n.acquire(&k.key(), W, 2).resolve().await.admitted);
        n.release(&k.key(), W);
        assert!(n.acquire(&k.key(), W, 2).now().unwrap().admitted);
        assert!(n.acquire(&k.key(), W, 2).resolve().await.admitted);
        assert!(!n.acquire(&k.key(), W, 2).resolve().await.admitted);
        assert_eq!(fake.counts.lock().values().sum::<u64>(), 2);
    }

    #[tokio::test]
    async fn many_requests_finding_the_lease_empty_share_one_store_call() {
        let fake = Arc::new(Fake::default());
        fake.delay_ms.store(5, Ordering::Relaxed);
        let n = node(&fake, 8, 1);
        let k = Keys::new();
        let pending: Vec<_> = (0..6)
            .map(|_| n.acquire(&k.key(), W, 100).resolve())
            .collect();
        let got = futures_util::future::join_all(pending).await;
        assert!(got.iter().all(|a| a.admitted));
        assert_eq!(fake.calls.lock().len(), 1, "one lease of 8 served all six");
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_open_to_a_share_of_the_limit_in_bounded_time() {
        let fake = Arc::new(Fake::default());
        fake.down.store(true, Ordering::Relaxed);
        let n = node(&fake, 8, 4);
        let k = Keys::new();
        let t = Instant::now();
        // The request that finds the outage waits for one failed call; later ones never wait.
        assert!(n.acquire(&k.key(), W, 40).resolve().await.admitted);
        assert!(n.in_outage());
        let mut admitted = 1;
        for _ in 0..30 {
            let a = n
                .acquire(&k.key(), W, 40)
                .now()
                .expect("decided from memory");
            admitted += u32::from(a.admitted);
        }
        assert_eq!(admitted, 10, "ceil(40 / 4) per node and window");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(n.stats.outages.load(Ordering::Relaxed), 1);
        assert_eq!(n.stats.fallback_admitted.load(Ordering::Relaxed), 10);

        // A frozen store: bounded by the timeout (50 ms), not by the store.
        let frozen = Arc::new(Fake::default());
        frozen.delay_ms.store(10_000, Ordering::Relaxed);
        let f = node(&frozen, 8, 1);
        let t = Instant::now();
        assert!(f.acquire(&k.key(), W, 5).resolve().await.admitted);
        assert!(
            t.elapsed() < Duration::from_millis(1_000),
            "{:?}",
            t.elapsed()
        );
        assert!(f.in_outage());
    }

    #[tokio::test]
    async fn the_outage_ends_when_a_background_probe_gets_an_answer() {
        let fake = Arc::new(Fake::default());
        fake.down.store(true, Ordering::Relaxed);
        let n = node(&fake, 4, 1);
        let k = Keys::new();
        assert!(n.acquire(&k.key(), W, 1000).resolve().await.admitted);
        assert!(n.in_outage());
        fake.down.store(false, Ordering::Relaxed);
        // no probe before the retry interval
        let _ = n.acquire(&k.key(), W, 1000).now().unwrap();
        settle().await;
        assert!(n.in_outage());
        n.retry_at.store(0, Ordering::Release);
        let _ = n.acquire(&k.key(), W, 1000).now().unwrap();
        settle().await;
        assert!(!n.in_outage());
        // leasing again: the probe's tokens are spent first
        assert!(n.acquire(&k.key(), W, 1000).now().unwrap().admitted);
        assert!(fake.counts.lock().values().sum::<u64>() >= 3);
    }
}
