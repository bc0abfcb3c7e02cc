//! The control plane: every console operation of the gateway, on any [`Store`], with the
//! spec's invariants and cascades.
//!
//! Each operation validates its input, takes the single writer lock, commits one atomic batch to
//! the store and then swaps in the next live [`Snapshot`], rebuilding only the
//! (group, stage) route tables it touched. A refused or failed operation changes nothing.
//!
//! # Examples
//!
//! ```
//! use stagegate::{ControlPlane, BackendKind, NewBackend, HttpDefinition, StageDefinition, Stage};
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
// (export and import). Below them: `state` (the in-memory view and its lookups), `live` (the
// next snapshot), `error`, `report`. This file holds the type and the commit machinery.
mod apis;
mod apps;
mod backends;
mod error;
mod export;
mod groups;
mod live;
mod policies;
mod report;
mod state;
mod vpc;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

pub use apis::DeploymentInfo;
pub use apps::{AppPatch, NewApp};
pub use backends::{BackendPatch, DefinitionChange, NewBackend};
pub use error::ControlError;
pub use export::{ConfigExport, EXPORT_FORMAT, ImportSummary};
pub use groups::NewGroup;
pub use policies::NewPolicy;
pub use report::{ApiReport, ReportResult};
pub(crate) use state::{Affected, State};

use crate::model::{GroupId, Stage};
use crate::routing::{RouteTable, Snapshot, SnapshotHandle};
use crate::store::{Change, Entity, Expect, Key, Store, StoreError, Versioned, Write};

type Result<T, E = ControlError> = std::result::Result<T, E>;

/// The console's operations over a [`Store`], keeping the live [`Snapshot`] in step.
pub struct ControlPlane {
    store: Arc<dyn Store>,
    state: tokio::sync::Mutex<State>,
    live: SnapshotHandle,
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
            state: tokio::sync::Mutex::new(state),
            live,
        })
    }

    /// The handle the data plane reads the live configuration through.
    #[must_use]
    pub fn snapshot_handle(&self) -> SnapshotHandle {
        self.live.clone()
    }

    /// The current live snapshot.
    #[must_use]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load()
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
        let prev = self.live.load();
        self.live
            .store(state.next_snapshot(&prev, &affected, prebuilt));
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
        Ok(())
    }

    /// Applies changes other processes committed to the shared store since this one last looked
    /// (the change feed), and swaps in the next snapshot. Returns how many changes were applied.
    ///
    /// # Errors
    ///
    /// [`ControlError::Store`] when the feed cannot be read.
    pub async fn follow(&self) -> Result<usize> {
        let mut state = self.state.lock().await;
        let mut total = 0;
        loop {
            let changes = match self.store.changes_since(state.revision, 1024).await {
                Ok(c) => c,
                Err(StoreError::Compacted(_)) => {
                    self.resync(&mut state).await?;
                    return Ok(total);
                }
                Err(e) => return Err(e.into()),
            };
            if changes.is_empty() {
                return Ok(total);
            }
            total += changes.len();
            let mut affected = Affected::default();
            for c in changes {
                state.apply(c, &mut affected);
            }
            let prev = self.live.load();
            self.live
                .store(state.next_snapshot(&prev, &affected, HashMap::new()));
        }
    }

    /// Every record, as a store holding this state would load them (for export and checks).
    pub async fn records(&self) -> Vec<Versioned<Entity>> {
        self.state.lock().await.records()
    }
}
