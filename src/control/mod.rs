//! The control plane: every console operation of the gateway, on any [`Store`], with the
//! model's invariants and cascades (a backend's definition per stage, APIs published as
//! snapshots, apps granted per API and stage).
//!
//! Each operation validates its input, takes the single writer lock, commits one atomic batch to
//! the store and then swaps in the next live [`Snapshot`], rebuilding only the
//! (group, stage) route tables it touched. A refused or failed operation changes nothing.
//!
//! # Examples
//!
//! ```
//! use stagegate::ControlPlane;
//! use stagegate::control::NewBackend;
//! use stagegate::model::{BackendKind, HttpDefinition, Stage, StageDefinition};
//! use stagegate::store::MemoryStore;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
//! let b = cp.create_backend(NewBackend::new("testHttp", BackendKind::Http)).await.unwrap();
//! let change = cp
//!     .set_stage_definition(&b.id, Stage::TEST, StageDefinition::Http(HttpDefinition::new("http://127.0.0.1:8081")))
//!     .await
//!     .unwrap();
//! assert!(change.report.is_empty()); // nothing published yet
//! # });
//! ```

// One file per resource, each with its own `impl ControlPlane`: `backends` (backend services
// and their stage definitions), `vpc` (VPC access authorizations), `groups`, `apis` (drafts,
// publishing, deployments, rollback), `apps` (apps, credentials, authorizations), `policies` (traffic policies and their bindings), `export`
// (export and import), `config` (the declarative document by name, and its export) and `plan`
// (plan and apply). Below them: `state` (the in-memory view and its lookups), `live` (the
// next snapshot), `error`, `report`. This file holds the type and the commit machinery.
mod apis;
mod apps;
mod backends;
mod certificates;
mod config;
mod error;
mod export;
mod follower;
mod groups;
mod live;
mod plan;
mod policies;
mod report;
mod state;
mod vpc;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub use apis::DeploymentInfo;
pub use apps::{AppPatch, NewApp};
pub use backends::{BackendPatch, DefinitionChange, NewBackend};
pub use config::{
    ApiSpec, AppSpec, BackendSpec, BindingSpec, CONFIG_FORMAT, ConfigDocument, ConfigFormat,
    ConfigIssue, GrantSpec, KeySpec, Policies, VpcAccessSpec,
};
pub use error::ControlError;
pub use export::{ConfigExport, EXPORT_FORMAT, ImportSummary};
pub use follower::{Follower, Freshness};
pub use groups::NewGroup;
pub use plan::{ObjectKind, Plan, PlanScope, Step};
pub use policies::NewPolicy;
pub use report::{ApiReport, ReportResult};
pub(crate) use state::{Affected, State};

use crate::model::{GroupId, Stage};
use crate::routing::{RouteTable, Snapshot, SnapshotHandle};
use crate::store::{Change, Entity, Expect, Key, Revision, Store, StoreError, Versioned, Write};

type Result<T, E = ControlError> = std::result::Result<T, E>;

/// How many deployments per API and stage the history keeps by default: 50.
///
/// # Examples
///
/// ```
/// assert_eq!(stagegate::control::DEFAULT_DEPLOYMENT_HISTORY, 50);
/// ```
pub const DEFAULT_DEPLOYMENT_HISTORY: usize = 50;

/// The console's operations over a [`Store`], keeping the live [`Snapshot`] in step.
pub struct ControlPlane {
    store: Arc<dyn Store>,
    state: tokio::sync::Mutex<State>,
    live: SnapshotHandle,
    /// Deployments kept per API and stage.
    history: usize,
    /// What this node has applied of the store, and when (for [`ControlPlane::freshness`]).
    sync: parking_lot::Mutex<SyncStatus>,
    /// Counts the changes to domain certificates (see [`ControlPlane::watch_certificates`]).
    certificates_changed: tokio::sync::watch::Sender<u64>,
}

/// The last revision applied and when; the last time the node knew it had everything.
#[derive(Clone, Debug)]
struct SyncStatus {
    applied: Revision,
    applied_at: Instant,
    applied_wall: SystemTime,
    /// The last time a look at the feed found nothing newer.
    caught_up_at: Instant,
    /// The last failure to read the store while following, until a read succeeds.
    error: Option<String>,
}

impl SyncStatus {
    fn new(applied: Revision) -> Self {
        Self {
            applied,
            applied_at: Instant::now(),
            applied_wall: SystemTime::now(),
            caught_up_at: Instant::now(),
            error: None,
        }
    }
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

/// The write that puts `entity`, expecting the version the state holds (or none).
fn put(state: &State, entity: Entity) -> Write {
    let expect = state
        .version_of(&entity.key())
        .map_or(Expect::Absent, Expect::Version);
    Write::put(entity, expect)
}

/// The write that deletes `key`, expecting the version the state holds.
fn delete(state: &State, key: Key) -> Write {
    let expect = state.version_of(&key).map_or(Expect::Any, Expect::Version);
    Write::delete(key, expect)
}

impl ControlPlane {
    /// Opens the control plane on `store`, loading everything it holds and building the first
    /// live snapshot.
    ///
    /// # Errors
    ///
    /// [`ControlError::Store`] when the store cannot be read.
    pub async fn open(store: impl Store) -> Result<Self> {
        Self::open_shared(Arc::new(store)).await
    }

    /// Like [`open`](Self::open), for a store already behind an `Arc`.
    ///
    /// # Errors
    ///
    /// [`ControlError::Store`] when the store cannot be read.
    pub async fn open_shared(store: Arc<dyn Store>) -> Result<Self> {
        let state = State::from_loaded(store.load().await?);
        let live = SnapshotHandle::default();
        live.store(state.full_snapshot(0));
        Ok(Self {
            store,
            sync: parking_lot::Mutex::new(SyncStatus::new(state.revision)),
            state: tokio::sync::Mutex::new(state),
            live,
            history: DEFAULT_DEPLOYMENT_HISTORY,
            certificates_changed: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Keeps the newest `deployments` deployments per API and stage (at least 1; the default is
    /// [`DEFAULT_DEPLOYMENT_HISTORY`]): each publish deletes the older ones in its own commit,
    /// so years of publishing do not slow start-up. A rollback to a pruned version is refused
    /// with [`ControlError::Refused`] saying so.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::ControlPlane;
    /// use stagegate::store::MemoryStore;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap().with_deployment_history(10);
    /// assert_eq!(cp.deployment_history(), 10);
    /// # });
    /// ```
    #[must_use]
    pub fn with_deployment_history(mut self, deployments: usize) -> Self {
        self.history = deployments.max(1);
        self
    }

    /// How many deployments per API and stage the history keeps.
    #[must_use]
    pub fn deployment_history(&self) -> usize {
        self.history
    }

    /// Tells the watchers of domain certificates when `affected` says they changed.
    fn note_certificates(&self, affected: &Affected) {
        if affected.certificates {
            self.certificates_changed.send_modify(|n| *n += 1);
        }
    }

    /// Notes that `state` is what this node serves now, and (`caught_up`) that it had
    /// everything the store had when it last looked.
    fn note_applied(&self, state: &State, caught_up: bool) {
        let mut s = self.sync.lock();
        if state.revision != s.applied {
            s.applied = state.revision;
            s.applied_at = Instant::now();
            s.applied_wall = SystemTime::now();
        }
        if caught_up {
            s.caught_up_at = Instant::now();
            s.error = None;
        }
    }

    /// The handle the data plane reads the live configuration through.
    #[must_use]
    pub fn snapshot_handle(&self) -> SnapshotHandle {
        self.live.clone()
    }

    /// The current live snapshot.
    #[must_use]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load_full()
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Commits `writes`, applies them to `state` and swaps in the next snapshot.
    async fn commit(
        &self,
        state: &mut State,
        writes: Vec<Write>,
        prebuilt: HashMap<(GroupId, Stage), RouteTable>,
    ) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let changes: Vec<(Key, Option<Entity>)> = writes
            .iter()
            .map(|w| match w {
                Write::Put { entity, .. } => (entity.key(), Some(entity.clone())),
                Write::Delete { key, .. } => (key.clone(), None),
            })
            .collect();
        let revision = match self.store.commit(writes).await {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, StoreError::Conflict { .. }) {
                    // Someone else wrote to the store: catch up so the next attempt can succeed.
                    if let Err(e) = self.resync(state).await {
                        tracing::error!(error = %e, "resync after a store conflict failed");
                    }
                }
                return Err(e.into());
            }
        };
        if revision != state.revision + 1 {
            // Other nodes committed between what this one last applied and its own commit:
            // apply their changes first, in order, then ours, as the feed has them (with the
            // versions the store gave). Skipping them would lose them for good, since the
            // state's revision moves past them.
            if let Err(e) = self.catch_up(state, revision).await {
                tracing::warn!(error = %e, "catching up before applying a commit failed; reloading");
                self.resync(state).await?;
            }
            return Ok(());
        }
        let mut affected = Affected::default();
        for (key, entity) in changes {
            let value = entity.map(|value| {
                let version = state.version_of(&key).map_or(1, |v| v + 1);
                Versioned { value, version }
            });
            state.apply(
                Change {
                    revision,
                    key,
                    value,
                },
                &mut affected,
            );
        }
        state.revision = revision;
        let prev = self.live.load_full();
        self.live
            .store(state.next_snapshot(&prev, &affected, prebuilt));
        self.note_certificates(&affected);
        self.note_applied(state, false);
        Ok(())
    }

    /// Applies the feed from the state's revision up to `target` at least, and swaps in the
    /// next snapshot; `Compacted` (or a feed that ends early) reloads everything instead.
    async fn catch_up(&self, state: &mut State, target: Revision) -> Result<()> {
        let mut affected = Affected::default();
        while state.revision < target {
            let changes = match self.store.changes_since(state.revision, 1024).await {
                Ok(c) => c,
                Err(StoreError::Compacted(_)) => return self.resync(state).await,
                Err(e) => return Err(e.into()),
            };
            if changes.is_empty() {
                // The feed ends before our own commit: the store cannot be followed; reload.
                return self.resync(state).await;
            }
            for c in changes {
                state.apply(c, &mut affected);
            }
        }
        let prev = self.live.load();
        self.live
            .store(state.next_snapshot(&prev, &affected, HashMap::new()));
        self.note_certificates(&affected);
        self.note_applied(state, false);
        Ok(())
    }

    async fn commit_one(&self, state: &mut State, write: Write) -> Result<()> {
        self.commit(state, vec![write], HashMap::new()).await
    }

    async fn resync(&self, state: &mut State) -> Result<()> {
        let fresh = State::from_loaded(self.store.load().await?);
        let generation = self.live.load().generation();
        self.live.store(fresh.full_snapshot(generation));
        *state = fresh;
        self.note_certificates(&Affected {
            certificates: true,
            ..Affected::default()
        });
        self.note_applied(state, false);
        Ok(())
    }

    /// Applies changes other processes committed to the shared store since this one last looked
    /// (the change feed), and swaps in the next snapshot. Returns how many changes were applied.
    ///
    /// When this node is so far behind that the store compacted the changes it needs
    /// ([`StoreError::Compacted`]), it reloads every record instead and carries on from there (the reloaded records are not
    /// counted). To follow
    /// continuously, use [`spawn_follower`](Self::spawn_follower).
    ///
    /// # Errors
    ///
    /// [`ControlError::Store`] when the feed cannot be read.
    pub async fn follow(&self) -> Result<usize> {
        let mut state = self.state.lock().await;
        let result = self.follow_locked(&mut state).await;
        if let Err(e) = &result {
            self.sync.lock().error = Some(e.to_string());
        }
        result
    }

    async fn follow_locked(&self, state: &mut State) -> Result<usize> {
        let mut total = 0;
        loop {
            let changes = match self.store.changes_since(state.revision, 1024).await {
                Ok(c) => c,
                Err(StoreError::Compacted(_)) => {
                    self.resync(state).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if changes.is_empty() {
                self.note_applied(state, true);
                return Ok(total);
            }
            total += changes.len();
            let mut affected = Affected::default();
            for c in changes {
                state.apply(c, &mut affected);
            }
            let prev = self.live.load_full();
            self.live
                .store(state.next_snapshot(&prev, &affected, HashMap::new()));
            self.note_certificates(&affected);
            self.note_applied(state, false);
        }
    }

    /// Every record, as a store holding this state would load them (for export and checks).
    pub async fn records(&self) -> Vec<Versioned<Entity>> {
        self.state.lock().await.records()
    }
}
