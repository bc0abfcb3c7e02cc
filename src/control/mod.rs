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

mod error;
mod export;
mod live;
mod report;
mod state;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use error::ControlError;
pub use export::{ConfigExport, EXPORT_FORMAT, ImportSummary};
pub use report::{ApiReport, ReportResult};
pub(crate) use state::{Affected, State};

use crate::model::{
    ApiDefinition, ApiId, App, AppId, AppKeyPair, Authorization, BackendId, BackendKind,
    BackendService, Group, GroupId, Secret, Stage, StageDefinition, ValidationError, VpcAccess,
    VpcAccessId,
};
use crate::routing::{Snapshot, SnapshotHandle};
use crate::store::{
    Change, Deployment, Entity, Expect, Key, Publication, Store, StoreError, Versioned, Write,
};
use live::TableBuildError;

type Result<T, E = ControlError> = std::result::Result<T, E>;

/// What to create a backend service with.
///
/// # Examples
///
/// ```
/// use stagegate::{NewBackend, BackendKind};
/// let nb = NewBackend::new("testHttp", BackendKind::Http).description("the test echo service");
/// assert_eq!(nb.name, "testHttp");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBackend {
    /// Name.
    pub name: String,
    /// Kind, fixed from now on.
    #[serde(rename = "type")]
    pub kind: BackendKind,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

impl NewBackend {
    /// A backend named `name` of `kind`.
    #[must_use]
    pub fn new(name: impl Into<String>, kind: BackendKind) -> Self {
        Self {
            name: name.into(),
            kind,
            description: None,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }
}

/// Changes to a backend service's name and description (its kind never changes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendPatch {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
}

/// What to create a group with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// Name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Base path in front of every API path.
    #[serde(default)]
    pub base_path: Option<String>,
    /// Host names bound to the group (none: any host).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Pass the AppCode credential on to backends (default `false`: stripped); see
    /// [`Group::pass_appcode_to_backend`].
    #[serde(default)]
    pub pass_appcode_to_backend: bool,
}

/// What to create an app with; keys, secret and code are generated unless supplied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// Name, 4–26 characters.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Your own AppKey.
    #[serde(default)]
    pub app_key: Option<String>,
    /// Your own AppSecret.
    #[serde(default)]
    pub app_secret: Option<Secret>,
    /// Your own AppCode.
    #[serde(default)]
    pub app_code: Option<Secret>,
}

/// Changes to an app.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPatch {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
    /// Enable or disable.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// The result of replacing a backend's definition in a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefinitionChange {
    /// The definition now in force.
    pub definition: StageDefinition,
    /// What happened to each API published in that stage that uses the backend.
    pub report: Vec<ApiReport>,
}

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

fn put(state: &State, entity: Entity) -> Write {
    let expect = state
        .version_of(&entity.key())
        .map_or(Expect::Absent, Expect::Version);
    Write::put(entity, expect)
}

fn delete(state: &State, key: Key) -> Write {
    let expect = state.version_of(&key).map_or(Expect::Any, Expect::Version);
    Write::delete(key, expect)
}

/// A clone of the record under `id`, or [`ControlError::NotFound`].
fn cloned<K, V, S>(map: &HashMap<K, Versioned<V>, S>, id: &K, what: &'static str) -> Result<V>
where
    K: std::hash::Hash + Eq + fmt::Display,
    S: std::hash::BuildHasher,
    V: Clone,
{
    map.get(id)
        .map(|v| v.value.clone())
        .ok_or_else(|| ControlError::not_found(what, id))
}

/// Checks that the published routes of `group`, with its new domains and base path, collide
/// with no route of another group that can then receive the same requests.
fn check_moved_group(state: &State, live: &Snapshot, group: &Group) -> Result<()> {
    for ((_, stage), table) in live.tables.iter().filter(|((g, _), _)| *g == group.id) {
        for r in table.routes() {
            let api = r.api();
            let template = api.request.path.with_base(group.base_path.as_deref())?;
            let others = live
                .tables
                .iter()
                .filter(|((_, s), _)| s == stage)
                .map(|((g, _), t)| (g, &**t));
            if let Some(existing) = state.cross_group_conflict(
                &group.id,
                &group.domains,
                &api.request.method,
                &template,
                others,
            ) {
                return Err(state.route_conflict(&api.request.method, &template, stage, existing));
            }
        }
    }
    Ok(())
}

fn next_version(prev: Option<&str>) -> String {
    let now = Deployment::format_version(Timestamp::now());
    match prev {
        Some(p) if p >= now.as_str() && p.len() == now.len() => {
            p.parse::<u64>().map_or(now, |n| (n + 1).to_string())
        }
        _ => now,
    }
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
        prebuilt: HashMap<(GroupId, Stage), crate::routing::RouteTable>,
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

    // ----- backend services -----

    /// Creates a backend service. Its kind can never change afterwards.
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`] for a bad name or description, [`ControlError::AlreadyExists`]
    /// for a taken name.
    pub async fn create_backend(&self, spec: NewBackend) -> Result<BackendService> {
        let mut b = BackendService::new(spec.name, spec.kind)?;
        b.description = spec.description;
        b.validate()?;
        let mut state = self.state.lock().await;
        if state.backends.values().any(|o| o.value.name == b.name) {
            return Err(ControlError::AlreadyExists {
                what: "backend service",
                name: b.name,
            });
        }
        let w = put(&state, Entity::Backend(b.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(b)
    }

    /// Renames a backend service or changes its description.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn update_backend(
        &self,
        id: &BackendId,
        patch: BackendPatch,
    ) -> Result<BackendService> {
        let mut state = self.state.lock().await;
        let mut b = state
            .backends
            .get(id)
            .ok_or_else(|| ControlError::not_found("backend service", id))?
            .value
            .clone();
        if let Some(n) = patch.name {
            if state
                .backends
                .values()
                .any(|o| o.value.name == n && &o.value.id != id)
            {
                return Err(ControlError::AlreadyExists {
                    what: "backend service",
                    name: n,
                });
            }
            b.name = n;
        }
        if let Some(d) = patch.description {
            b.description = Some(d);
        }
        b.modified_at = Timestamp::now();
        b.validate()?;
        let w = put(&state, Entity::Backend(b.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(b)
    }

    /// Deletes a backend service; refused while any API (draft or published) uses it.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::InUse`].
    pub async fn delete_backend(&self, id: &BackendId) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state.backends.contains_key(id) {
            return Err(ControlError::not_found("backend service", id));
        }
        let mut users: Vec<String> = state
            .apis
            .values()
            .filter(|a| &a.value.backend.backend_id == id)
            .map(|a| a.value.name.clone())
            .collect();
        for stage in Stage::BUILT_IN {
            users.extend(
                state
                    .published_using(id, &stage)
                    .iter()
                    .map(|l| format!("{} ({stage})", l.deployment.snapshot.name)),
            );
        }
        if !users.is_empty() {
            users.sort();
            users.dedup();
            return Err(ControlError::InUse {
                what: "backend service",
                id: id.to_string(),
                users: users.join(", "),
            });
        }
        let w = delete(&state, Key::backend(id));
        self.commit_one(&mut state, w).await
    }

    /// One backend service.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn backend(&self, id: &BackendId) -> Result<BackendService> {
        let state = self.state.lock().await;
        cloned(&state.backends, id, "backend service")
    }

    /// Every backend service, by name.
    pub async fn backends(&self) -> Vec<BackendService> {
        let state = self.state.lock().await;
        let mut v: Vec<_> = state.backends.values().map(|b| b.value.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Defines or replaces a backend's definition in a stage. Every API published in that stage
    /// that uses the backend follows at once, without a republish; the report says, per API,
    /// whether it was re-pointed or (when it cannot use the new definition) taken out.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] (backend, or a VPC access authorization the definition names),
    /// [`ControlError::Validation`] (a bad field, or a kind the backend cannot hold).
    pub async fn set_stage_definition(
        &self,
        id: &BackendId,
        stage: Stage,
        definition: StageDefinition,
    ) -> Result<DefinitionChange> {
        definition.validate()?;
        let mut state = self.state.lock().await;
        let mut b = state
            .backends
            .get(id)
            .ok_or_else(|| ControlError::not_found("backend service", id))?
            .value
            .clone();
        if !b.kind.accepts(definition.kind()) {
            return Err(ValidationError::InvalidField {
                field: "type".into(),
                reason: format!(
                    "a {} backend cannot hold a {} definition",
                    b.kind,
                    definition.kind()
                ),
            }
            .into());
        }
        if let StageDefinition::Vpc(v) = &definition
            && !state.vpc_access.contains_key(&v.vpc_access_id)
        {
            return Err(ControlError::not_found(
                "vpc access authorization",
                &v.vpc_access_id,
            ));
        }
        let mut writes = Vec::new();
        let mut report = Vec::new();
        for live in state.published_using(id, &stage) {
            let api = &live.deployment.snapshot;
            let (result, error) = match state.compile_route(
                &live.deployment,
                &stage,
                Some(&definition),
                None,
                &mut live::Targets::default(),
            ) {
                Ok(_) => (ReportResult::Republished, None),
                Err(e) => {
                    writes.push(delete(&state, Key::publication(&api.id, &stage)));
                    (ReportResult::Failed, Some(e))
                }
            };
            report.push(ApiReport {
                api_id: api.id.clone(),
                api_name: api.name.clone(),
                stage: stage.clone(),
                result,
                error,
            });
        }
        b.stages.insert(stage, definition.clone());
        b.modified_at = Timestamp::now();
        writes.insert(0, put(&state, Entity::Backend(b)));
        self.commit(&mut state, writes, HashMap::new()).await?;
        Ok(DefinitionChange { definition, report })
    }

    /// A backend's definition in a stage, if it has one.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown backend.
    pub async fn stage_definition(
        &self,
        id: &BackendId,
        stage: &Stage,
    ) -> Result<Option<StageDefinition>> {
        let state = self.state.lock().await;
        let b = state
            .backends
            .get(id)
            .ok_or_else(|| ControlError::not_found("backend service", id))?;
        Ok(b.value.stages.get(stage).cloned())
    }

    /// Deletes a backend's definition in a stage, unpublishing (atomically) every API published
    /// in that stage that uses it; other stages are untouched.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown backend or a stage without a definition.
    pub async fn delete_stage_definition(
        &self,
        id: &BackendId,
        stage: &Stage,
    ) -> Result<Vec<ApiReport>> {
        let mut state = self.state.lock().await;
        let mut b = state
            .backends
            .get(id)
            .ok_or_else(|| ControlError::not_found("backend service", id))?
            .value
            .clone();
        if b.stages.remove(stage).is_none() {
            return Err(ControlError::not_found(
                "stage definition",
                format!("{id}/{stage}"),
            ));
        }
        b.modified_at = Timestamp::now();
        let mut writes = vec![put(&state, Entity::Backend(b))];
        let mut report = Vec::new();
        for live in state.published_using(id, stage) {
            let api = &live.deployment.snapshot;
            writes.push(delete(&state, Key::publication(&api.id, stage)));
            report.push(ApiReport {
                api_id: api.id.clone(),
                api_name: api.name.clone(),
                stage: stage.clone(),
                result: ReportResult::Unpublished,
                error: None,
            });
        }
        self.commit(&mut state, writes, HashMap::new()).await?;
        Ok(report)
    }

    /// The APIs that use a backend: the drafts when `stage` is none, else the snapshots
    /// published in that stage.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown backend.
    pub async fn apis_using_backend(
        &self,
        id: &BackendId,
        stage: Option<&Stage>,
    ) -> Result<Vec<ApiDefinition>> {
        let state = self.state.lock().await;
        if !state.backends.contains_key(id) {
            return Err(ControlError::not_found("backend service", id));
        }
        let mut v: Vec<ApiDefinition> = match stage {
            None => state
                .apis
                .values()
                .filter(|a| &a.value.backend.backend_id == id)
                .map(|a| a.value.to_definition())
                .collect(),
            Some(s) => state
                .published_using(id, s)
                .iter()
                .map(|l| l.deployment.snapshot.clone())
                .collect(),
        };
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    // ----- VPC access authorizations -----

    /// Creates a VPC access authorization.
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn create_vpc_access(&self, v: VpcAccess) -> Result<VpcAccess> {
        v.validate()?;
        let mut state = self.state.lock().await;
        if state
            .vpc_access
            .values()
            .any(|o| o.value.name == v.name || o.value.id == v.id)
        {
            return Err(ControlError::AlreadyExists {
                what: "vpc access authorization",
                name: v.name,
            });
        }
        let w = put(&state, Entity::VpcAccess(v.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(v)
    }

    /// Replaces a VPC access authorization (e.g. a new address); routes using it follow.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`].
    pub async fn update_vpc_access(&self, v: VpcAccess) -> Result<VpcAccess> {
        v.validate()?;
        let mut state = self.state.lock().await;
        if !state.vpc_access.contains_key(&v.id) {
            return Err(ControlError::not_found("vpc access authorization", &v.id));
        }
        let w = put(&state, Entity::VpcAccess(v.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(v)
    }

    /// Deletes a VPC access authorization; refused while a stage definition uses it.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::InUse`].
    pub async fn delete_vpc_access(&self, id: &VpcAccessId) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state.vpc_access.contains_key(id) {
            return Err(ControlError::not_found("vpc access authorization", id));
        }
        let users: Vec<String> = state
            .backends
            .values()
            .flat_map(|b| {
                b.value.stages.iter().filter_map(move |(s, d)| match d {
                    StageDefinition::Vpc(v) if &v.vpc_access_id == id => {
                        Some(format!("{} ({s})", b.value.name))
                    }
                    _ => None,
                })
            })
            .collect();
        if !users.is_empty() {
            return Err(ControlError::InUse {
                what: "vpc access authorization",
                id: id.to_string(),
                users: users.join(", "),
            });
        }
        let w = delete(&state, Key::vpc_access(id));
        self.commit_one(&mut state, w).await
    }

    /// Every VPC access authorization.
    pub async fn vpc_accesses(&self) -> Vec<VpcAccess> {
        let state = self.state.lock().await;
        let mut v: Vec<_> = state.vpc_access.values().map(|v| v.value.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One VPC access authorization.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn vpc_access(&self, id: &VpcAccessId) -> Result<VpcAccess> {
        let state = self.state.lock().await;
        cloned(&state.vpc_access, id, "vpc access authorization")
    }

    // ----- groups -----

    /// Creates a group.
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn create_group(&self, spec: NewGroup) -> Result<Group> {
        let mut g = Group::new(spec.name)?;
        g.description = spec.description;
        g.base_path = spec.base_path;
        g.domains = spec.domains;
        g.pass_appcode_to_backend = spec.pass_appcode_to_backend;
        g.validate()?;
        let mut state = self.state.lock().await;
        if state.groups.values().any(|o| o.value.name == g.name) {
            return Err(ControlError::AlreadyExists {
                what: "group",
                name: g.name,
            });
        }
        let w = put(&state, Entity::Group(g.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(g)
    }

    /// Replaces a group's name, description, base path and domains. Routes of its published
    /// APIs follow at once.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`],
    /// [`ControlError::RouteConflict`] when the new base path or domains make its published
    /// routes collide with those of another group that can receive the same requests.
    pub async fn update_group(&self, id: &GroupId, spec: NewGroup) -> Result<Group> {
        let mut state = self.state.lock().await;
        let old = state
            .groups
            .get(id)
            .ok_or_else(|| ControlError::not_found("group", id))?
            .value
            .clone();
        let g = Group {
            name: spec.name,
            description: spec.description,
            base_path: spec.base_path,
            domains: spec.domains,
            pass_appcode_to_backend: spec.pass_appcode_to_backend,
            ..old
        };
        g.validate()?;
        if state
            .groups
            .values()
            .any(|o| o.value.name == g.name && &o.value.id != id)
        {
            return Err(ControlError::AlreadyExists {
                what: "group",
                name: g.name,
            });
        }
        if old.domains != g.domains || old.base_path != g.base_path {
            check_moved_group(&state, &self.live.load(), &g)?;
        }
        let w = put(&state, Entity::Group(g.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(g)
    }

    /// Deletes a group; refused while it holds APIs.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::InUse`].
    pub async fn delete_group(&self, id: &GroupId) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state.groups.contains_key(id) {
            return Err(ControlError::not_found("group", id));
        }
        let users: Vec<String> = state
            .apis
            .values()
            .filter(|a| &a.value.group_id == id)
            .map(|a| a.value.name.clone())
            .collect();
        let published = state
            .published_in
            .iter()
            .any(|((g, _), s)| g == id && !s.is_empty());
        if !users.is_empty() || published {
            return Err(ControlError::InUse {
                what: "group",
                id: id.to_string(),
                users: users.join(", "),
            });
        }
        let w = delete(&state, Key::group(id));
        self.commit_one(&mut state, w).await
    }

    /// One group.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn group(&self, id: &GroupId) -> Result<Group> {
        let state = self.state.lock().await;
        cloned(&state.groups, id, "group")
    }

    /// Every group, by name.
    pub async fn groups(&self) -> Vec<Group> {
        let state = self.state.lock().await;
        let mut v: Vec<_> = state.groups.values().map(|g| g.value.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    // ----- APIs -----

    fn check_api(state: &State, api: &ApiDefinition) -> Result<()> {
        api.validate()?;
        if !state.groups.contains_key(&api.group_id) {
            return Err(ControlError::not_found("group", &api.group_id));
        }
        let backend = state
            .backends
            .get(&api.backend.backend_id)
            .ok_or_else(|| ControlError::not_found("backend service", &api.backend.backend_id))?;
        if backend.value.kind == BackendKind::Oss && api.backend.oss.is_none() {
            return Err(ValidationError::InvalidField {
                field: "backend.oss".into(),
                reason: "an API on an OSS backend needs an action and an object key".into(),
            }
            .into());
        }
        if state.api_name_taken(&api.group_id, &api.name, &api.id) {
            return Err(ControlError::AlreadyExists {
                what: "api",
                name: api.name.clone(),
            });
        }
        Ok(())
    }

    /// Creates an API draft (its `id` is kept if unused).
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`], [`ControlError::NotFound`] (group or backend),
    /// [`ControlError::AlreadyExists`] (name taken in the group, or id taken).
    pub async fn create_api(&self, api: ApiDefinition) -> Result<ApiDefinition> {
        let mut state = self.state.lock().await;
        if state.apis.contains_key(&api.id) {
            return Err(ControlError::AlreadyExists {
                what: "api id",
                name: api.id.to_string(),
            });
        }
        Self::check_api(&state, &api)?;
        let w = put(&state, Entity::Api(api.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(api)
    }

    /// Replaces an API draft. Nothing live changes until it is published again.
    ///
    /// # Errors
    ///
    /// As [`create_api`](Self::create_api), and [`ControlError::NotFound`] for an unknown id.
    pub async fn update_api(&self, api: ApiDefinition) -> Result<ApiDefinition> {
        let mut state = self.state.lock().await;
        if !state.apis.contains_key(&api.id) {
            return Err(ControlError::not_found("api", &api.id));
        }
        Self::check_api(&state, &api)?;
        let w = put(&state, Entity::Api(api.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(api)
    }

    /// Deletes an API with its history and authorizations; refused while it is published.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::InUse`].
    pub async fn delete_api(&self, id: &ApiId) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state.apis.contains_key(id) {
            return Err(ControlError::not_found("api", id));
        }
        let stages: Vec<String> = Stage::BUILT_IN
            .iter()
            .filter(|s| state.publications.contains_key(&(id.clone(), (*s).clone())))
            .map(ToString::to_string)
            .collect();
        if !stages.is_empty() {
            return Err(ControlError::InUse {
                what: "api",
                id: id.to_string(),
                users: format!(
                    "its publications in {} (unpublish first)",
                    stages.join(", ")
                ),
            });
        }
        let mut writes = vec![delete(&state, Key::api(id))];
        for stage in Stage::BUILT_IN {
            for version in state
                .deployments
                .get(&(id.clone(), stage.clone()))
                .into_iter()
                .flat_map(|m| m.keys())
            {
                writes.push(delete(&state, Key::deployment(id, &stage, version)));
            }
        }
        for (app, api, stage) in state.authorizations.keys() {
            if api == id {
                writes.push(delete(&state, Key::authorization(app, api, stage)));
            }
        }
        self.commit(&mut state, writes, HashMap::new()).await
    }

    /// One API draft.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn api(&self, id: &ApiId) -> Result<ApiDefinition> {
        let state = self.state.lock().await;
        state
            .apis
            .get(id)
            .map(|a| a.value.to_definition())
            .ok_or_else(|| ControlError::not_found("api", id))
    }

    /// Every API draft, optionally of one group, by name.
    pub async fn apis(&self, group: Option<&GroupId>) -> Vec<ApiDefinition> {
        let state = self.state.lock().await;
        let mut v: Vec<_> = state
            .apis
            .values()
            .filter(|a| group.is_none_or(|g| &a.value.group_id == g))
            .map(|a| a.value.to_definition())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    // ----- publishing -----

    /// Publishes the API's current draft into `stage` as a new deployment.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] (API, group or backend), [`ControlError::NoDefinition`] when its
    /// backend has no definition in `stage`, [`ControlError::RouteConflict`] when another
    /// published API of the group would match the same requests, or one of another group that
    /// can receive the same requests (a shared domain, or either group without domains) would
    /// match any of them, [`ControlError::Refused`] when
    /// the API cannot use the backend's definition.
    pub async fn publish(
        &self,
        id: &ApiId,
        stage: Stage,
        description: Option<String>,
    ) -> Result<Deployment> {
        if let Some(d) = &description {
            crate::model::validate_len("description", d, 180)?;
        }
        let mut state = self.state.lock().await;
        let api = state
            .apis
            .get(id)
            .ok_or_else(|| ControlError::not_found("api", id))?
            .value
            .to_definition();
        let prev = state
            .deployments
            .get(&(id.clone(), stage.clone()))
            .and_then(|m| m.keys().next_back())
            .cloned();
        let deployment = Deployment {
            api_id: id.clone(),
            stage: stage.clone(),
            version: next_version(prev.as_deref()),
            description,
            deployed_at: Timestamp::now(),
            snapshot: api,
        };
        let prebuilt = self.check_publishable(&state, &deployment)?;
        let writes = vec![
            put(&state, Entity::Deployment(deployment.clone())),
            put(
                &state,
                Entity::Publication(Publication {
                    api_id: id.clone(),
                    stage: stage.clone(),
                    version: deployment.version.clone(),
                }),
            ),
        ];
        self.commit(&mut state, writes, prebuilt).await?;
        Ok(deployment)
    }

    /// Checks that `deployment` can go live and builds its group's next table: no route of its
    /// group nor of another group that can receive the same requests may collide with it.
    fn check_publishable(
        &self,
        state: &State,
        deployment: &Deployment,
    ) -> Result<HashMap<(GroupId, Stage), crate::routing::RouteTable>> {
        let api = &deployment.snapshot;
        let stage = &deployment.stage;
        let Some(group) = state.groups.get(&api.group_id).map(|g| &g.value) else {
            return Err(ControlError::not_found("group", &api.group_id));
        };
        let backend = state
            .backends
            .get(&api.backend.backend_id)
            .ok_or_else(|| ControlError::not_found("backend service", &api.backend.backend_id))?;
        if !backend.value.stages.contains_key(stage) {
            return Err(ControlError::NoDefinition {
                backend_id: backend.value.id.clone(),
                backend_name: backend.value.name.clone(),
                stage: stage.clone(),
            });
        }
        // the full path, as requests match it
        let template = api.request.path.with_base(group.base_path.as_deref())?;
        let snapshot = self.live.load();
        let arc = Arc::new(deployment.clone());
        let table = state
            .build_table(
                &snapshot,
                &api.group_id,
                stage,
                Some((&api.id, &arc)),
                &mut live::Targets::default(),
            )
            .map_err(|e| match e {
                TableBuildError::Compile(m) => ControlError::Refused(m),
                TableBuildError::Conflict(c) => {
                    let existing_name = state
                        .publications
                        .get(&(c.existing.clone(), stage.clone()))
                        .map(|l| l.deployment.snapshot.name.clone())
                        .unwrap_or_default();
                    ControlError::RouteConflict {
                        method: api.request.method.clone(),
                        path: template.clone(),
                        existing: c.existing,
                        existing_name,
                        existing_group: group.id.clone(),
                        stage: stage.clone(),
                    }
                }
            })?;
        let others = snapshot
            .tables
            .iter()
            .filter(|((_, s), _)| s == stage)
            .map(|((g, _), t)| (g, &**t));
        if let Some(existing) = state.cross_group_conflict(
            &group.id,
            &group.domains,
            &api.request.method,
            &template,
            others,
        ) {
            return Err(state.route_conflict(&api.request.method, &template, stage, existing));
        }
        let mut prebuilt = HashMap::new();
        prebuilt.insert((api.group_id.clone(), stage.clone()), table);
        Ok(prebuilt)
    }

    /// Takes an API out of a stage.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotPublished`].
    pub async fn unpublish(&self, id: &ApiId, stage: &Stage) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state
            .publications
            .contains_key(&(id.clone(), stage.clone()))
        {
            return Err(ControlError::NotPublished {
                api: id.clone(),
                stage: stage.clone(),
            });
        }
        let w = delete(&state, Key::publication(id, stage));
        self.commit_one(&mut state, w).await
    }

    /// The deployment live in a stage, if any.
    pub async fn published(&self, id: &ApiId, stage: &Stage) -> Option<Deployment> {
        let state = self.state.lock().await;
        state
            .publications
            .get(&(id.clone(), stage.clone()))
            .map(|l| (*l.deployment).clone())
    }

    /// The deployment history of an API, per stage, oldest first; `live` marks the one in force.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown API.
    pub async fn deployments(&self, id: &ApiId) -> Result<Vec<DeploymentInfo>> {
        let state = self.state.lock().await;
        if !state.apis.contains_key(id) {
            return Err(ControlError::not_found("api", id));
        }
        let mut out = Vec::new();
        for stage in Stage::BUILT_IN {
            let live = state
                .publications
                .get(&(id.clone(), stage.clone()))
                .map(|l| l.deployment.version.clone());
            for d in state
                .deployments
                .get(&(id.clone(), stage.clone()))
                .into_iter()
                .flat_map(|m| m.values())
            {
                let v = &d.value.version;
                out.push(DeploymentInfo {
                    stage: stage.clone(),
                    version: v.clone(),
                    description: d.value.description.clone(),
                    deployed_at: d.value.deployed_at,
                    live: live.as_deref() == Some(v.as_str()),
                });
            }
        }
        Ok(out)
    }

    /// Makes an earlier deployment of an API live again in a stage.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown API or version, and the publish refusals.
    pub async fn rollback(&self, id: &ApiId, stage: &Stage, version: &str) -> Result<Deployment> {
        let mut state = self.state.lock().await;
        let deployment = state
            .deployments
            .get(&(id.clone(), stage.clone()))
            .and_then(|m| m.get(version))
            .map(|d| (*d.value).clone())
            .ok_or_else(|| {
                ControlError::not_found("deployment", format!("{id}/{stage}/{version}"))
            })?;
        let prebuilt = self.check_publishable(&state, &deployment)?;
        let w = put(
            &state,
            Entity::Publication(Publication {
                api_id: id.clone(),
                stage: stage.clone(),
                version: version.to_owned(),
            }),
        );
        self.commit(&mut state, vec![w], prebuilt).await?;
        Ok(deployment)
    }

    // ----- apps -----

    fn check_credentials_unique(state: &State, app: &App) -> Result<()> {
        for other in state.apps.values().filter(|o| o.value.id != app.id) {
            if other.value.name == app.name {
                return Err(ControlError::AlreadyExists {
                    what: "app",
                    name: app.name.clone(),
                });
            }
            for k in &app.keys {
                if other.value.keys.iter().any(|o| o.app_key == k.app_key) {
                    return Err(ControlError::AlreadyExists {
                        what: "app key",
                        name: k.app_key.clone(),
                    });
                }
            }
            for c in &app.codes {
                if other.value.codes.iter().any(|o| o == c) {
                    return Err(ControlError::AlreadyExists {
                        what: "app code",
                        name: "****".into(),
                    });
                }
            }
        }
        let mut keys: Vec<&str> = app.keys.iter().map(|k| k.app_key.as_str()).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(ControlError::AlreadyExists {
                what: "app key",
                name: keys.join(","),
            });
        }
        Ok(())
    }

    async fn save_app(&self, state: &mut State, app: App) -> Result<App> {
        app.validate()?;
        Self::check_credentials_unique(state, &app)?;
        let w = put(state, Entity::App(app.clone()));
        self.commit_one(state, w).await?;
        Ok(app)
    }

    async fn with_app<T>(
        &self,
        id: &AppId,
        f: impl FnOnce(&mut App) -> Result<T>,
    ) -> Result<(App, T)> {
        let mut state = self.state.lock().await;
        let mut app = state
            .apps
            .get(id)
            .ok_or_else(|| ControlError::not_found("app", id))?
            .value
            .clone();
        let out = f(&mut app)?;
        let app = self.save_app(&mut state, app).await?;
        Ok((app, out))
    }

    /// Creates an app with one key pair and one AppCode (generated unless supplied).
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`], [`ControlError::AlreadyExists`] (name, key or code taken).
    pub async fn create_app(&self, spec: NewApp) -> Result<App> {
        let mut app = App::new(spec.name)?;
        app.description = spec.description;
        if let Some(k) = spec.app_key {
            app.keys[0].app_key = k;
        }
        if let Some(s) = spec.app_secret {
            app.keys[0].app_secret = s;
        }
        if let Some(c) = spec.app_code {
            app.codes[0] = c;
        }
        let mut state = self.state.lock().await;
        self.save_app(&mut state, app).await
    }

    /// Renames, describes, enables or disables an app.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn update_app(&self, id: &AppId, patch: AppPatch) -> Result<App> {
        self.with_app(id, |app| {
            if let Some(n) = patch.name {
                app.name = n;
            }
            if let Some(d) = patch.description {
                app.description = Some(d);
            }
            if let Some(d) = patch.disabled {
                app.disabled = d;
            }
            Ok(())
        })
        .await
        .map(|(a, ())| a)
    }

    /// Deletes an app and its authorizations.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn delete_app(&self, id: &AppId) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state.apps.contains_key(id) {
            return Err(ControlError::not_found("app", id));
        }
        let mut writes = vec![delete(&state, Key::app(id))];
        for (app, api, stage) in state.authorizations.keys() {
            if app == id {
                writes.push(delete(&state, Key::authorization(app, api, stage)));
            }
        }
        self.commit(&mut state, writes, HashMap::new()).await
    }

    /// One app.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn app(&self, id: &AppId) -> Result<App> {
        let state = self.state.lock().await;
        cloned(&state.apps, id, "app")
    }

    /// Apps whose name contains `text` (case-insensitive), or all, by name.
    pub async fn apps(&self, name_contains: Option<&str>) -> Vec<App> {
        let needle = name_contains.map(str::to_lowercase);
        let state = self.state.lock().await;
        let mut v: Vec<_> = state
            .apps
            .values()
            .filter(|a| {
                needle
                    .as_deref()
                    .is_none_or(|n| a.value.name.to_lowercase().contains(n))
            })
            .map(|a| a.value.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Adds a key pair to an app (generated unless supplied).
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn add_app_key(&self, id: &AppId, pair: Option<AppKeyPair>) -> Result<AppKeyPair> {
        let pair = pair.unwrap_or_else(AppKeyPair::generate);
        let added = pair.clone();
        self.with_app(id, move |app| {
            app.keys.push(pair);
            Ok(())
        })
        .await?;
        Ok(added)
    }

    /// Removes a key pair from an app; calls signed with it fail from the next request on.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown app or key.
    pub async fn remove_app_key(&self, id: &AppId, app_key: &str) -> Result<()> {
        self.with_app(id, |app| {
            let before = app.keys.len();
            app.keys.retain(|k| k.app_key != app_key);
            if app.keys.len() == before {
                return Err(ControlError::not_found("app key", app_key));
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Gives an app key a new secret (generated unless supplied); the old secret stops working
    /// on the next request.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown app or key, [`ControlError::Validation`].
    pub async fn rotate_app_secret(
        &self,
        id: &AppId,
        app_key: &str,
        secret: Option<Secret>,
    ) -> Result<AppKeyPair> {
        let secret = secret.unwrap_or_else(Secret::generate);
        let (_, pair) = self
            .with_app(id, |app| {
                let k = app
                    .keys
                    .iter_mut()
                    .find(|k| k.app_key == app_key)
                    .ok_or_else(|| ControlError::not_found("app key", app_key))?;
                k.app_secret = secret;
                Ok(k.clone())
            })
            .await?;
        Ok(pair)
    }

    /// Adds an AppCode to an app (generated unless supplied).
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn add_app_code(&self, id: &AppId, code: Option<Secret>) -> Result<Secret> {
        let code = code.unwrap_or_else(Secret::generate);
        let added = code.clone();
        self.with_app(id, move |app| {
            app.codes.push(code);
            Ok(())
        })
        .await?;
        Ok(added)
    }

    /// Removes an AppCode from an app.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown app or code.
    pub async fn remove_app_code(&self, id: &AppId, code: &str) -> Result<()> {
        self.with_app(id, |app| {
            let before = app.codes.len();
            app.codes.retain(|c| !c.ct_eq_str(code));
            if app.codes.len() == before {
                return Err(ControlError::not_found("app code", "****"));
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    // ----- authorizations -----

    /// Lets `app` call `api` in `stage` (until `expires_at`, if given). Authorizing again
    /// replaces the expiry.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown app or API, [`ControlError::Validation`] for an
    /// expiry in the past.
    pub async fn authorize(
        &self,
        app: &AppId,
        api: &ApiId,
        stage: Stage,
        expires_at: Option<Timestamp>,
    ) -> Result<Authorization> {
        let mut state = self.state.lock().await;
        if !state.apps.contains_key(app) {
            return Err(ControlError::not_found("app", app));
        }
        if !state.apis.contains_key(api) {
            return Err(ControlError::not_found("api", api));
        }
        let now = Timestamp::now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(ValidationError::InvalidField {
                field: "expires_at".into(),
                reason: "must be in the future".into(),
            }
            .into());
        }
        let a = Authorization {
            app_id: app.clone(),
            api_id: api.clone(),
            stage,
            expires_at,
            created_at: now,
        };
        let w = put(&state, Entity::Authorization(a.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(a)
    }

    /// Withdraws a grant; the next call is refused.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] when there is no such grant.
    pub async fn revoke(&self, app: &AppId, api: &ApiId, stage: &Stage) -> Result<()> {
        let mut state = self.state.lock().await;
        if !state
            .authorizations
            .contains_key(&(app.clone(), api.clone(), stage.clone()))
        {
            return Err(ControlError::not_found(
                "authorization",
                format!("{app}/{api}/{stage}"),
            ));
        }
        let w = delete(&state, Key::authorization(app, api, stage));
        self.commit_one(&mut state, w).await
    }

    /// The grants of an API, or of an app, or all.
    pub async fn authorizations(
        &self,
        api: Option<&ApiId>,
        app: Option<&AppId>,
    ) -> Vec<Authorization> {
        let state = self.state.lock().await;
        let mut v: Vec<_> = state
            .authorizations
            .values()
            .filter(|a| {
                api.is_none_or(|x| &a.value.api_id == x) && app.is_none_or(|x| &a.value.app_id == x)
            })
            .map(|a| a.value.clone())
            .collect();
        v.sort_by(|a, b| (&a.api_id, &a.app_id, &a.stage).cmp(&(&b.api_id, &b.app_id, &b.stage)));
        v
    }

    /// Every record, as a store holding this state would load them (for export and checks).
    pub async fn records(&self) -> Vec<Versioned<Entity>> {
        self.state.lock().await.records()
    }
}

/// One entry of an API's deployment history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentInfo {
    /// The stage.
    pub stage: Stage,
    /// The version.
    pub version: String,
    /// Free text given at publish time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When.
    pub deployed_at: Timestamp,
    /// Whether this version is the one live in its stage.
    pub live: bool,
}
