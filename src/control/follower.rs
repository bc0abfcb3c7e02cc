//! [`Follower`]: the task that keeps a node's live configuration in step with a shared store,
//! and [`Freshness`]: how far behind the node is, for health checks.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::ControlPlane;
use crate::store::Revision;

/// A running follower (see [`ControlPlane::spawn_follower`]). Dropping it stops the task at
/// its next await point; [`stop`](Self::stop) stops it and waits until it has.
///
/// Stopping is safe at any point: the follower applies a batch of changes to the control plane
/// between two awaits, so it never leaves a half-applied batch behind, and what it did not
/// apply yet is applied by the next follower or [`ControlPlane::follow`].
#[derive(Debug)]
pub struct Follower {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Follower {
    /// Stops the follower and waits for its task to end.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use stagegate::ControlPlane;
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let cp = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
    /// let follower = cp.spawn_follower(Duration::from_secs(1));
    /// assert!(follower.is_running());
    /// follower.stop().await;
    /// # });
    /// ```
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Whether the task still runs (it ends when stopped, or when its control plane is
    /// dropped).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// How fresh a node's configuration is (see [`ControlPlane::freshness`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Freshness {
    /// Whether the store answered just now.
    pub store_reachable: bool,
    /// Why it did not (the store's error message), when it did not.
    pub store_error: Option<String>,
    /// The store's latest revision, when it answered.
    pub store_revision: Option<Revision>,
    /// The revision this node serves.
    pub applied_revision: Revision,
    /// When this node last applied a change (or loaded the store), by the wall clock.
    pub last_applied_at: SystemTime,
    /// How long ago that was.
    pub since_applied: Duration,
    /// How long ago this node last found it had every change the store had.
    pub since_caught_up: Duration,
    /// The last failure to follow the store, until following succeeds again.
    pub follow_error: Option<String>,
}

impl Freshness {
    /// How many revisions the node is behind the store (none: the store did not answer).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::ControlPlane;
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// assert_eq!(cp.freshness().await.behind(), Some(0));
    /// # });
    /// ```
    #[must_use]
    pub fn behind(&self) -> Option<u64> {
        self.store_revision
            .map(|r| r.saturating_sub(self.applied_revision))
    }

    /// Whether the node may be serving stale configuration: the store cannot be reached, or
    /// the node is behind it and has not caught up within `max_lag`. A health check answers
    /// "failing" while this is true.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use stagegate::ControlPlane;
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// assert!(!cp.freshness().await.is_stale(Duration::from_secs(10)));
    /// # });
    /// ```
    #[must_use]
    pub fn is_stale(&self, max_lag: Duration) -> bool {
        match self.behind() {
            None => true,
            Some(0) => false,
            Some(_) => self.since_caught_up > max_lag,
        }
    }
}

impl ControlPlane {
    /// Starts a task that follows the store by itself: it applies the store's changes
    /// ([`follow`](Self::follow)) whenever the store signals one ([`Store::subscribe`]) and at
    /// least every `poll` (a lost signal, a store that cannot signal, or a signal connection
    /// that dropped delays a change by at most `poll`). A failure to read the store is logged,
    /// shown by [`freshness`](Self::freshness), and retried at the next poll.
    ///
    /// The task holds the control plane weakly: it ends when the control plane is dropped, or
    /// when the returned [`Follower`] is stopped or dropped. Needs a tokio runtime.
    ///
    /// [`Store::subscribe`]: crate::store::Store::subscribe
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use stagegate::{model::BackendKind, ControlPlane, control::NewBackend};
    /// use stagegate::store::{MemoryStore, Store};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    /// let writer = ControlPlane::open_shared(Arc::clone(&store)).await.unwrap();
    /// let reader = Arc::new(ControlPlane::open_shared(store).await.unwrap());
    /// let follower = reader.spawn_follower(Duration::from_secs(60));
    /// writer.create_backend(NewBackend::new("orders", BackendKind::Mock)).await.unwrap();
    /// // woken by the store's signal, long before the next poll
    /// tokio::time::timeout(Duration::from_secs(5), async {
    ///     while reader.freshness().await.applied_revision < 1 {
    ///         tokio::time::sleep(Duration::from_millis(5)).await;
    ///     }
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(reader.backends().await.len(), 1);
    /// follower.stop().await;
    /// # });
    /// ```
    pub fn spawn_follower(self: &Arc<Self>, poll: Duration) -> Follower {
        let (stop, stopped) = watch::channel(false);
        let signal = self.store.subscribe();
        let task = tokio::spawn(follow_loop(Arc::downgrade(self), poll, signal, stopped));
        Follower {
            stop,
            task: Some(task),
        }
    }

    /// How fresh this node's configuration is: whether the store answers and at which
    /// revision, the revision this node applied and when, and how long since it last had
    /// everything. Asks the store for its revision (one cheap read).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::ControlPlane;
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// let f = cp.freshness().await;
    /// assert!(f.store_reachable);
    /// assert_eq!((f.applied_revision, f.store_revision), (0, Some(0)));
    /// # });
    /// ```
    pub async fn freshness(&self) -> Freshness {
        let store = self.store.revision().await;
        self.freshness_with(store)
    }

    /// [`freshness`](Self::freshness) without asking the store (for a store that did not
    /// answer in time): reported as unreachable.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn freshness_local(&self) -> Freshness {
        self.freshness_with(Err(crate::store::StoreError::Unavailable {
            store: "the store".into(),
            source: "no answer in time".into(),
        }))
    }

    fn freshness_with(&self, store: Result<Revision, crate::store::StoreError>) -> Freshness {
        let s = self.sync.lock().clone();
        Freshness {
            store_reachable: store.is_ok(),
            store_error: store.as_ref().err().map(ToString::to_string),
            store_revision: store.ok(),
            applied_revision: s.applied,
            last_applied_at: s.applied_wall,
            since_applied: s.applied_at.elapsed(),
            since_caught_up: s.caught_up_at.elapsed(),
            follow_error: s.error,
        }
    }
}

async fn follow_loop(
    cp: Weak<ControlPlane>,
    poll: Duration,
    mut signal: Option<watch::Receiver<Revision>>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        {
            let Some(cp) = cp.upgrade() else { return };
            if let Err(e) = cp.follow().await {
                tracing::warn!(error = %e, "following the store failed; retrying at the next poll");
            }
        }
        let woken = async {
            match signal.as_mut() {
                Some(s) => s.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(poll) => {}
            alive = woken => {
                if !alive {
                    signal = None; // the store dropped its signal: poll only
                }
            }
        }
        if *stopped.borrow() {
            return;
        }
    }
}
