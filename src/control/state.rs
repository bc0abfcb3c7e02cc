//! The control plane's in-memory view of the store, with the indexes cascades need.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use super::error::ControlError;

use crate::model::{
    ApiDefinition, ApiId, App, AppId, Authorization, BackendId, BackendService, DomainCertificate,
    Group, GroupId, PolicyId, Stage, StageDefinition, VpcAccess, VpcAccessId,
};
use crate::policy::{Policy, PolicyBinding};
use crate::store::{
    Change, Deployment, Entity, EntityKind, Key, Loaded, Publication, Revision, Version, Versioned,
};

/// What a set of changes touched in the live configuration.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Affected {
    /// Route tables to rebuild.
    pub(crate) tables: HashSet<(GroupId, Stage)>,
    /// The host → group index changed.
    pub(crate) groups: bool,
    /// App credentials changed.
    pub(crate) credentials: bool,
    /// Authorizations changed.
    pub(crate) grants: bool,
    /// Policies or their bindings changed.
    pub(crate) policies: bool,
    /// Domain certificates changed.
    pub(crate) certificates: bool,
}

/// A live publication: the deployment that is live, shared. The publication record itself is
/// not kept: its API and stage are the key it is filed under and its version the deployment's.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) version: Version,
    pub(crate) deployment: Arc<Deployment>,
}

impl Live {
    /// The publication record.
    pub(crate) fn publication(&self) -> Publication {
        Publication {
            api_id: self.deployment.api_id.clone(),
            stage: self.deployment.stage.clone(),
            version: self.deployment.version.clone(),
        }
    }
}

/// The control plane's maps: keyed by ids and names only the operator defines, so a fast
/// non-keyed hash (SipHash was a tenth of the start-up at 100 000 APIs).
pub(crate) type FxMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

/// An API draft as the state holds it: its own value, or, when it is equal to the snapshot of
/// one of its latest deployments (an API published and not edited since, the common case), that
/// deployment, so that the draft and the published snapshot are held once.
#[derive(Debug, Clone)]
pub(crate) enum Draft {
    Own(Arc<ApiDefinition>),
    Deployed(Arc<Deployment>),
}

impl std::ops::Deref for Draft {
    type Target = ApiDefinition;

    fn deref(&self) -> &ApiDefinition {
        match self {
            Self::Own(a) => a,
            Self::Deployed(d) => &d.snapshot,
        }
    }
}

impl Draft {
    /// An owned copy of the definition.
    pub(crate) fn to_definition(&self) -> ApiDefinition {
        ApiDefinition::clone(self)
    }
}

/// The deployments of one (API, stage), by version: a sorted vector rather than a `BTreeMap`,
/// whose first node alone takes about 450 bytes while nearly every history holds one or two
/// deployments.
#[derive(Debug, Default, Clone)]
pub(crate) struct DeploymentHistory(Vec<Versioned<Arc<Deployment>>>);

impl DeploymentHistory {
    fn position(&self, version: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|d| d.value.version.as_str().cmp(version))
    }

    /// The deployment of `version`.
    pub(crate) fn get(&self, version: &str) -> Option<&Versioned<Arc<Deployment>>> {
        self.position(version).ok().map(|i| &self.0[i])
    }

    /// Adds a deployment, or replaces the one of the same version.
    pub(crate) fn insert(&mut self, d: Versioned<Arc<Deployment>>) {
        match self.position(&d.value.version) {
            Ok(i) => self.0[i] = d,
            Err(i) => {
                // Nearly every history holds one or two deployments: no spare room.
                self.0.reserve_exact(1);
                self.0.insert(i, d);
            }
        }
    }

    /// Removes the deployment of `version`.
    pub(crate) fn remove(&mut self, version: &str) {
        if let Ok(i) = self.position(version) {
            self.0.remove(i);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The deployments, oldest first.
    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &Versioned<Arc<Deployment>>> {
        self.0.iter()
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct State {
    pub(crate) revision: Revision,
    pub(crate) backends: FxMap<BackendId, Versioned<BackendService>>,
    pub(crate) groups: FxMap<GroupId, Versioned<Group>>,
    pub(crate) apis: FxMap<ApiId, Versioned<Draft>>,
    pub(crate) deployments: FxMap<(ApiId, Stage), DeploymentHistory>,
    pub(crate) publications: FxMap<(ApiId, Stage), Live>,
    pub(crate) apps: FxMap<AppId, Versioned<App>>,
    pub(crate) authorizations: FxMap<(AppId, ApiId, Stage), Versioned<Authorization>>,
    pub(crate) vpc_access: FxMap<VpcAccessId, Versioned<VpcAccess>>,
    pub(crate) policies: FxMap<PolicyId, Versioned<Policy>>,
    /// Policy bindings by (API, stage, policy).
    pub(crate) bindings: FxMap<(ApiId, Stage, PolicyId), Versioned<PolicyBinding>>,
    /// Published APIs by (group, stage).
    pub(crate) published_in: FxMap<(GroupId, Stage), BTreeSet<ApiId>>,
    /// Published APIs by (backend, stage).
    pub(crate) published_by_backend: FxMap<(BackendId, Stage), BTreeSet<ApiId>>,
    /// API drafts by (group, name): the uniqueness check of a create or rename without a scan
    /// of every API. A set, so that a store written elsewhere with a duplicate still indexes
    /// both.
    pub(crate) api_names: FxMap<(GroupId, String), IdSet>,
    /// Domain certificates by (group, domain).
    pub(crate) certificates: FxMap<(GroupId, String), Versioned<DomainCertificate>>,
}

/// A small set of API ids, sorted: nearly always one id (names are unique in a group), for which
/// a `BTreeSet` would allocate a whole node of about 200 bytes and this one 16.
#[derive(Debug, Default, Clone)]
pub(crate) struct IdSet(Vec<ApiId>);

impl IdSet {
    fn insert(&mut self, id: &ApiId) {
        if let Err(i) = self.0.binary_search(id) {
            self.0.reserve_exact(1);
            self.0.insert(i, id.clone());
        }
    }

    fn remove(&mut self, id: &ApiId) {
        if let Ok(i) = self.0.binary_search(id) {
            self.0.remove(i);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> std::slice::Iter<'_, ApiId> {
        self.0.iter()
    }

    /// The first id (names are unique in a group: the only one).
    pub(crate) fn first(&self) -> Option<&ApiId> {
        self.0.first()
    }
}

/// While a state is loaded: one shared copy of each group, backend and API id, however many
/// records repeat it (every deployment names its group and backend, every publication its API).
#[derive(Debug, Default)]
struct Ids {
    groups: FxSet<GroupId>,
    backends: FxSet<BackendId>,
}

/// A set keyed like [`FxMap`].
type FxSet<T> = HashSet<T, rustc_hash::FxBuildHasher>;

impl Ids {
    fn group(&mut self, id: &mut GroupId) {
        match self.groups.get(id) {
            Some(shared) => *id = shared.clone(),
            None => {
                self.groups.insert(id.clone());
            }
        }
    }

    fn backend(&mut self, id: &mut BackendId) {
        match self.backends.get(id) {
            Some(shared) => *id = shared.clone(),
            None => {
                self.backends.insert(id.clone());
            }
        }
    }
}

impl State {
    pub(crate) fn from_loaded(loaded: Loaded) -> Self {
        let mut state = Self::default();
        // Deployments must be in place before the publications (and drafts) that point at them,
        // and groups and backends before the deployments, whose ids then share theirs. The
        // records are moved into the state, not cloned, in three passes over the one vector the
        // store returned (`Option` adds no size: the vector is reused in place), rather than
        // moved into a second vector of everything but the deployments.
        let mut affected = Affected::default();
        let mut ids = Ids::default();
        let mut records: Vec<Option<Versioned<Entity>>> =
            loaded.records.into_iter().map(Some).collect();
        state.reserve_for(records.iter().flatten().map(|r| &r.value));
        let passes: [fn(&Entity) -> bool; 3] = [
            |e| matches!(e, Entity::Group(_) | Entity::Backend(_)),
            |e| matches!(e, Entity::Deployment(_)),
            |_| true,
        ];
        for pass in passes {
            for slot in &mut records {
                if let Some(r) = slot.take_if(|r| pass(&r.value)) {
                    let value = match r.value {
                        Entity::Group(mut g) => {
                            ids.group(&mut g.id);
                            Entity::Group(g)
                        }
                        Entity::Backend(mut b) => {
                            ids.backend(&mut b.id);
                            Entity::Backend(b)
                        }
                        Entity::Deployment(mut d) => {
                            ids.group(&mut d.snapshot.group_id);
                            ids.backend(&mut d.snapshot.backend.backend_id);
                            Entity::Deployment(d)
                        }
                        other => other,
                    };
                    state.put(value, r.version, &mut affected);
                }
            }
        }
        state.revision = loaded.revision;
        state
    }

    /// Sizes the maps for `entities` up front: growing them one doubling at a time rehashes every
    /// entry again at each step (100 000 APIs take 17 doublings).
    fn reserve_for<'a>(&mut self, entities: impl Iterator<Item = &'a Entity>) {
        let mut n = [0usize; 11];
        for e in entities {
            let i = match e {
                Entity::Backend(_) => 0,
                Entity::Group(_) => 1,
                Entity::Api(_) => 2,
                Entity::Deployment(_) => 3,
                Entity::Publication(_) => 4,
                Entity::App(_) => 5,
                Entity::Authorization(_) => 6,
                Entity::VpcAccess(_) => 7,
                Entity::Policy(_) => 8,
                Entity::PolicyBinding(_) => 9,
                Entity::DomainCertificate(_) => 10,
            };
            n[i] += 1;
        }
        self.backends.reserve(n[0]);
        self.groups.reserve(n[1]);
        self.apis.reserve(n[2]);
        self.api_names.reserve(n[2]);
        // Histories hold one or two deployments each; publications one per history at most.
        self.deployments.reserve(n[4].max(n[3] / 2));
        self.publications.reserve(n[4]);
        self.apps.reserve(n[5]);
        self.authorizations.reserve(n[6]);
        self.vpc_access.reserve(n[7]);
        self.policies.reserve(n[8]);
        self.bindings.reserve(n[9]);
        self.certificates.reserve(n[10]);
    }

    /// The current version of a key, if it exists.
    pub(crate) fn version_of(&self, key: &Key) -> Option<Version> {
        let id = key.id.as_str();
        match key.kind {
            EntityKind::Backend => self
                .backends
                .get(&BackendId::parse(id).ok()?)
                .map(|v| v.version),
            EntityKind::Group => self
                .groups
                .get(&GroupId::parse(id).ok()?)
                .map(|v| v.version),
            EntityKind::Api => self.apis.get(&ApiId::parse(id).ok()?).map(|v| v.version),
            EntityKind::App => self.apps.get(&AppId::parse(id).ok()?).map(|v| v.version),
            EntityKind::VpcAccess => self
                .vpc_access
                .get(&VpcAccessId::parse(id).ok()?)
                .map(|v| v.version),
            EntityKind::Deployment => {
                let (api, stage, version) = split3(id)?;
                self.deployments
                    .get(&(api, stage))?
                    .get(version)
                    .map(|v| v.version)
            }
            EntityKind::Publication => {
                let (api, stage) = split2(id)?;
                self.publications.get(&(api, stage)).map(|l| l.version)
            }
            EntityKind::Policy => self
                .policies
                .get(&PolicyId::parse(id).ok()?)
                .map(|v| v.version),
            EntityKind::PolicyBinding => self.bindings.get(&split_binding(id)?).map(|v| v.version),
            EntityKind::DomainCertificate => self
                .certificates
                .get(&split_certificate(id)?)
                .map(|v| v.version),
            EntityKind::Authorization => {
                let mut it = id.splitn(3, ':');
                let app = AppId::parse(it.next()?).ok()?;
                let api = ApiId::parse(it.next()?).ok()?;
                let stage = Stage::parse(it.next()?).ok()?;
                self.authorizations
                    .get(&(app, api, stage))
                    .map(|v| v.version)
            }
        }
    }

    /// Every record, sorted by key: what a store holding this state would load.
    pub(crate) fn records(&self) -> Vec<Versioned<Entity>> {
        let mut out: Vec<Versioned<Entity>> = Vec::new();
        self.records_of(&mut out, Entity::Backend);
        self.records_of(&mut out, Entity::Group);
        self.records_of(&mut out, |d: Draft| Entity::Api(d.to_definition()));
        self.records_of(&mut out, Entity::App);
        self.records_of(&mut out, Entity::VpcAccess);
        self.records_of(&mut out, Entity::Policy);
        out.extend(self.bindings.values().map(|b| Versioned {
            value: Entity::PolicyBinding(b.value.clone()),
            version: b.version,
        }));
        out.extend(self.certificates.values().map(|c| Versioned {
            value: Entity::DomainCertificate(c.value.clone()),
            version: c.version,
        }));
        let v = |value: Entity, version| Versioned { value, version };
        out.extend(
            self.deployments
                .values()
                .flat_map(|m| m.values())
                .map(|d| v(Entity::Deployment((*d.value).clone()), d.version)),
        );
        out.extend(
            self.publications
                .values()
                .map(|l| v(Entity::Publication(l.publication()), l.version)),
        );
        out.extend(
            self.authorizations
                .values()
                .map(|b| v(Entity::Authorization(b.value.clone()), b.version)),
        );
        out.sort_by_key(|a| a.value.key());
        out
    }

    /// Appends every record of kind `R`, as `entity` makes it an [`Entity`].
    fn records_of<R: Resource>(&self, out: &mut Vec<Versioned<Entity>>, entity: fn(R) -> Entity) {
        out.extend(R::map(self).values().map(|r| Versioned {
            value: entity(r.value.clone()),
            version: r.version,
        }));
    }

    /// Applies one change (from a local commit or the store's feed) and notes what it touched.
    pub(crate) fn apply(&mut self, change: Change, affected: &mut Affected) {
        self.revision = self.revision.max(change.revision);
        match change.value {
            Some(Versioned { value, version }) => self.put(value, version, affected),
            None => self.delete(&change.key, affected),
        }
    }

    fn put(&mut self, entity: Entity, version: Version, affected: &mut Affected) {
        match entity {
            Entity::Backend(b) => {
                let id = b.id.clone();
                let old = self.backends.get(&id).map(|o| &o.value.stages);
                for stage in Stage::BUILT_IN {
                    let before = old.and_then(|s| s.get(&stage));
                    if before != b.stages.get(&stage) {
                        self.touch_backend_stage(&id, &stage, affected);
                    }
                }
                self.backends.insert(id, Versioned { value: b, version });
            }
            Entity::Group(g) => {
                let id = g.id.clone();
                let changed = self.groups.get(&id).is_none_or(|o| {
                    o.value.base_path != g.base_path
                        || o.value.domains != g.domains
                        || o.value.pass_appcode_to_backend != g.pass_appcode_to_backend
                });
                if changed {
                    affected.groups = true;
                    for stage in Stage::BUILT_IN {
                        if self
                            .published_in
                            .get(&(id.clone(), stage.clone()))
                            .is_some_and(|s| !s.is_empty())
                        {
                            affected.tables.insert((id.clone(), stage));
                        }
                    }
                }
                self.groups.insert(id, Versioned { value: g, version });
            }
            Entity::Api(a) => {
                // Indexed by the draft's ids: when it is held as its deployment, those are the
                // shared ones, not the record's copies.
                let value = self.draft(a);
                self.index_api_name(&value.group_id, &value.name, &value.id);
                if let Some(old) = self
                    .apis
                    .insert(value.id.clone(), Versioned { value, version })
                {
                    let new = &self.apis[&old.value.id].value;
                    if old.value.group_id != new.group_id || old.value.name != new.name {
                        self.unindex_api_name(&old.value);
                    }
                }
            }
            Entity::Deployment(mut d) => {
                if d.api_id == d.snapshot.id {
                    d.api_id = d.snapshot.id.clone();
                }
                let d = Arc::new(d);
                // A deployment of the current draft (a publish): the draft shares its snapshot.
                if let Some(draft) = self.apis.get_mut(&d.api_id)
                    && matches!(draft.value, Draft::Own(_))
                    && *draft.value == d.snapshot
                {
                    draft.value = Draft::Deployed(Arc::clone(&d));
                }
                self.deployments
                    .entry((d.api_id.clone(), d.stage.clone()))
                    .or_default()
                    .insert(Versioned { value: d, version });
            }
            Entity::Publication(p) => {
                let mut key = (p.api_id.clone(), p.stage.clone());
                self.unindex(&key, affected);
                let Some(deployment) = self
                    .deployments
                    .get(&key)
                    .and_then(|m| m.get(&p.version))
                    .map(|d| Arc::clone(&d.value))
                else {
                    // A publication whose deployment is missing cannot be served; it is kept out
                    // of the live configuration (the conformance of stores makes this unreachable).
                    tracing::warn!(api = %p.api_id, stage = %p.stage, version = %p.version, "publication without deployment ignored");
                    return;
                };
                // The id is the deployment's, not a copy of it.
                key.0 = deployment.api_id.clone();
                let group = deployment.snapshot.group_id.clone();
                let backend = deployment.snapshot.backend.backend_id.clone();
                self.published_in
                    .entry((group.clone(), p.stage.clone()))
                    .or_default()
                    .insert(key.0.clone());
                self.published_by_backend
                    .entry((backend, p.stage.clone()))
                    .or_default()
                    .insert(key.0.clone());
                affected.tables.insert((group, p.stage));
                self.publications.insert(
                    key,
                    Live {
                        version,
                        deployment,
                    },
                );
            }
            Entity::App(a) => {
                affected.credentials = true;
                self.apps
                    .insert(a.id.clone(), Versioned { value: a, version });
            }
            Entity::Authorization(a) => {
                affected.grants = true;
                self.authorizations.insert(
                    (a.app_id.clone(), a.api_id.clone(), a.stage.clone()),
                    Versioned { value: a, version },
                );
            }
            Entity::VpcAccess(v) => {
                let id = v.id.clone();
                if self.vpc_access.get(&id).is_some_and(|o| o.value != v) {
                    self.touch_vpc(&id, affected);
                }
                self.vpc_access.insert(id, Versioned { value: v, version });
            }
            Entity::Policy(p) => {
                affected.policies = true;
                self.policies
                    .insert(p.id.clone(), Versioned { value: p, version });
            }
            Entity::PolicyBinding(b) => {
                affected.policies = true;
                self.bindings.insert(
                    (b.api_id.clone(), b.stage.clone(), b.policy_id.clone()),
                    Versioned { value: b, version },
                );
            }
            Entity::DomainCertificate(c) => {
                affected.certificates = true;
                self.certificates.insert(
                    (c.group_id.clone(), c.domain.clone()),
                    Versioned { value: c, version },
                );
            }
        }
    }

    fn delete(&mut self, key: &Key, affected: &mut Affected) {
        let id = key.id.as_str();
        match key.kind {
            EntityKind::Backend => {
                if let Ok(bid) = BackendId::parse(id) {
                    for stage in Stage::BUILT_IN {
                        self.touch_backend_stage(&bid, &stage, affected);
                    }
                    self.backends.remove(&bid);
                }
            }
            EntityKind::Group => {
                if let Ok(gid) = GroupId::parse(id) {
                    affected.groups = true;
                    for stage in Stage::BUILT_IN {
                        affected.tables.insert((gid.clone(), stage));
                    }
                    self.groups.remove(&gid);
                }
            }
            EntityKind::Api => {
                if let Ok(aid) = ApiId::parse(id)
                    && let Some(old) = self.apis.remove(&aid)
                {
                    self.unindex_api_name(&old.value);
                }
            }
            EntityKind::Deployment => {
                if let Some((api, stage, version)) = split3(id) {
                    let k = (api, stage);
                    if let Some(m) = self.deployments.get_mut(&k) {
                        m.remove(version);
                        if m.is_empty() {
                            self.deployments.remove(&k);
                        }
                    }
                }
            }
            EntityKind::Publication => {
                if let Some(k) = split2(id) {
                    self.unindex(&k, affected);
                    self.publications.remove(&k);
                }
            }
            EntityKind::App => {
                if let Ok(aid) = AppId::parse(id) {
                    affected.credentials = true;
                    self.apps.remove(&aid);
                }
            }
            EntityKind::Authorization => {
                let mut it = id.splitn(3, ':');
                if let (Some(Ok(app)), Some(Ok(api)), Some(Ok(stage))) = (
                    it.next().map(AppId::parse),
                    it.next().map(ApiId::parse),
                    it.next().map(Stage::parse),
                ) {
                    affected.grants = true;
                    self.authorizations.remove(&(app, api, stage));
                }
            }
            EntityKind::VpcAccess => {
                if let Ok(vid) = VpcAccessId::parse(id) {
                    self.touch_vpc(&vid, affected);
                    self.vpc_access.remove(&vid);
                }
            }
            EntityKind::Policy => {
                if let Ok(pid) = PolicyId::parse(id) {
                    affected.policies = true;
                    self.policies.remove(&pid);
                }
            }
            EntityKind::PolicyBinding => {
                if let Some(k) = split_binding(id) {
                    affected.policies = true;
                    self.bindings.remove(&k);
                }
            }
            EntityKind::DomainCertificate => {
                if let Some(k) = split_certificate(id) {
                    affected.certificates = true;
                    self.certificates.remove(&k);
                }
            }
        }
    }

    /// How to hold a new draft: as the snapshot of its latest deployment in some stage when it
    /// is equal to it, else on its own.
    fn draft(&self, api: ApiDefinition) -> Draft {
        for stage in Stage::BUILT_IN {
            if let Some(d) = self.history(&api.id, &stage).next_back()
                && d.value.snapshot == api
            {
                return Draft::Deployed(Arc::clone(&d.value));
            }
        }
        Draft::Own(Arc::new(api))
    }

    fn index_api_name(&mut self, group: &GroupId, name: &str, id: &ApiId) {
        self.api_names
            .entry((group.clone(), name.to_owned()))
            .or_default()
            .insert(id);
    }

    fn unindex_api_name(&mut self, api: &ApiDefinition) {
        let key = (api.group_id.clone(), api.name.clone());
        if let Some(ids) = self.api_names.get_mut(&key) {
            ids.remove(&api.id);
            if ids.is_empty() {
                self.api_names.remove(&key);
            }
        }
    }

    /// Whether an API draft other than `id` is named `name` in `group`.
    pub(crate) fn api_name_taken(&self, group: &GroupId, name: &str, id: &ApiId) -> bool {
        // The key is built once per check; the map is keyed by owned values.
        self.api_names
            .get(&(group.clone(), name.to_owned()))
            .is_some_and(|ids| ids.iter().any(|o| o != id))
    }

    /// Removes a publication from the indexes (it stays in `publications` until replaced).
    fn unindex(&mut self, key: &(ApiId, Stage), affected: &mut Affected) {
        if let Some(old) = self.publications.get(key) {
            let group = old.deployment.snapshot.group_id.clone();
            let backend = old.deployment.snapshot.backend.backend_id.clone();
            if let Some(s) = self.published_in.get_mut(&(group.clone(), key.1.clone())) {
                s.remove(&key.0);
            }
            if let Some(s) = self.published_by_backend.get_mut(&(backend, key.1.clone())) {
                s.remove(&key.0);
            }
            affected.tables.insert((group, key.1.clone()));
        }
    }

    fn touch_backend_stage(&self, backend: &BackendId, stage: &Stage, affected: &mut Affected) {
        for l in self.published_using(backend, stage) {
            affected
                .tables
                .insert((l.deployment.snapshot.group_id.clone(), stage.clone()));
        }
    }

    fn touch_vpc(&self, vpc: &VpcAccessId, affected: &mut Affected) {
        for b in self.backends.values() {
            for (stage, def) in &b.value.stages {
                if matches!(def, StageDefinition::Vpc(d) if &d.vpc_access_id == vpc) {
                    self.touch_backend_stage(&b.value.id, stage, affected);
                }
            }
        }
    }

    /// The APIs published in `stage` that use `backend`, in id order.
    pub(crate) fn published_using<'s>(
        &'s self,
        backend: &BackendId,
        stage: &'s Stage,
    ) -> impl Iterator<Item = &'s Live> {
        self.published(&self.published_by_backend, backend, stage)
            .map(|(_, l)| l)
    }

    /// The APIs published in `stage` in `group`, in id order, with their publications.
    pub(crate) fn published_in_group<'s>(
        &'s self,
        group: &GroupId,
        stage: &'s Stage,
    ) -> impl Iterator<Item = (&'s ApiId, &'s Live)> {
        self.published(&self.published_in, group, stage)
    }

    /// The publications in `stage` of the APIs `index` files under (`key`, `stage`).
    fn published<'s, K: Hash + Eq + Clone>(
        &'s self,
        index: &'s FxMap<(K, Stage), BTreeSet<ApiId>>,
        key: &K,
        stage: &'s Stage,
    ) -> impl Iterator<Item = (&'s ApiId, &'s Live)> {
        index
            .get(&(key.clone(), stage.clone()))
            .into_iter()
            .flatten()
            .filter_map(move |api| {
                self.publications
                    .get(&(api.clone(), stage.clone()))
                    .map(|l| (api, l))
            })
    }
}

/// A record the state files by id in a map of its own: how the lookups, the name checks and
/// the lists of the control plane find it and what its errors call it.
pub(crate) trait Resource: Clone {
    /// Its id.
    type Id: Hash + Eq + fmt::Display;
    /// What an error calls it ("backend service `b1` not found").
    const WHAT: &'static str;
    /// The map of the state that holds it.
    fn map(state: &State) -> &FxMap<Self::Id, Versioned<Self>>;
    /// Its name.
    fn name(&self) -> &str;
}

/// Implements [`Resource`] for a record filed in `State::$field` and named by its `name`.
macro_rules! resource {
    ($ty:ty, $id:ty, $what:literal, $field:ident) => {
        impl Resource for $ty {
            type Id = $id;
            const WHAT: &'static str = $what;
            fn map(state: &State) -> &FxMap<$id, Versioned<Self>> {
                &state.$field
            }
            fn name(&self) -> &str {
                &self.name
            }
        }
    };
}

resource!(BackendService, BackendId, "backend service", backends);
resource!(Group, GroupId, "group", groups);
resource!(
    VpcAccess,
    VpcAccessId,
    "vpc access authorization",
    vpc_access
);
resource!(App, AppId, "app", apps);
resource!(Policy, PolicyId, "policy", policies);
resource!(Draft, ApiId, "api", apis);

/// Lookups: a record by its id, or [`ControlError::NotFound`] naming it.
impl State {
    /// The record of kind `R` under `id`.
    pub(crate) fn get<R: Resource>(&self, id: &R::Id) -> Result<&R, ControlError> {
        R::map(self)
            .get(id)
            .map(|v| &v.value)
            .ok_or_else(|| ControlError::not_found(R::WHAT, id))
    }

    /// A backend service.
    pub(crate) fn backend(&self, id: &BackendId) -> Result<&BackendService, ControlError> {
        self.get(id)
    }

    /// A group.
    pub(crate) fn group(&self, id: &GroupId) -> Result<&Group, ControlError> {
        self.get(id)
    }

    /// An API draft.
    pub(crate) fn api(&self, id: &ApiId) -> Result<&Draft, ControlError> {
        self.get(id)
    }

    /// An app.
    pub(crate) fn app(&self, id: &AppId) -> Result<&App, ControlError> {
        self.get(id)
    }

    /// A VPC access authorization.
    pub(crate) fn vpc_access(&self, id: &VpcAccessId) -> Result<&VpcAccess, ControlError> {
        self.get(id)
    }

    /// The deployment `version` of an API in a stage.
    pub(crate) fn deployment(
        &self,
        api: &ApiId,
        stage: &Stage,
        version: &str,
    ) -> Result<&Arc<Deployment>, ControlError> {
        self.deployments
            .get(&(api.clone(), stage.clone()))
            .and_then(|m| m.get(version))
            .map(|d| &d.value)
            .ok_or_else(|| {
                ControlError::not_found("deployment", format!("{api}/{stage}/{version}"))
            })
    }

    /// The deployments of an API in a stage, oldest first.
    pub(crate) fn history(
        &self,
        api: &ApiId,
        stage: &Stage,
    ) -> impl DoubleEndedIterator<Item = &Versioned<Arc<Deployment>>> {
        self.deployments
            .get(&(api.clone(), stage.clone()))
            .into_iter()
            .flat_map(DeploymentHistory::values)
    }

    /// The publication of an API in a stage, if it is published there.
    pub(crate) fn live(&self, api: &ApiId, stage: &Stage) -> Option<&Live> {
        self.publications.get(&(api.clone(), stage.clone()))
    }

    /// The grant of `app` for `api` in `stage`.
    pub(crate) fn authorization(
        &self,
        app: &AppId,
        api: &ApiId,
        stage: &Stage,
    ) -> Result<&Authorization, ControlError> {
        self.authorizations
            .get(&(app.clone(), api.clone(), stage.clone()))
            .map(|a| &a.value)
            .ok_or_else(|| ControlError::not_found("authorization", format!("{app}/{api}/{stage}")))
    }

    /// [`ControlError::AlreadyExists`] when a record of kind `R` other than `except` is named
    /// `name`.
    pub(crate) fn check_name_free<R: Resource>(
        &self,
        name: &str,
        except: Option<&R::Id>,
    ) -> Result<(), ControlError> {
        let taken = R::map(self)
            .iter()
            .any(|(id, r)| r.value.name() == name && except != Some(id));
        if taken {
            return Err(ControlError::AlreadyExists {
                what: R::WHAT,
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// The records of kind `R` that `keep` lets through, cloned and sorted by name: every list
    /// the console shows.
    pub(crate) fn by_name<R: Resource>(&self, keep: impl Fn(&R) -> bool) -> Vec<R> {
        let mut v: Vec<R> = R::map(self)
            .values()
            .filter(|r| keep(&r.value))
            .map(|r| r.value.clone())
            .collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// The names of every record of kind `R` (import's uniqueness checks).
    pub(crate) fn names<R: Resource>(&self) -> Vec<String> {
        R::map(self)
            .values()
            .map(|r| r.value.name().to_owned())
            .collect()
    }
}

/// A policy binding's key id, `api:stage:policy`, as its map key.
fn split_binding(id: &str) -> Option<(ApiId, Stage, PolicyId)> {
    let mut it = id.splitn(3, ':');
    let api = ApiId::parse(it.next()?).ok()?;
    let stage = Stage::parse(it.next()?).ok()?;
    let policy = PolicyId::parse(it.next()?).ok()?;
    Some((api, stage, policy))
}

/// A domain certificate's key id, `group:domain` (the domain may hold a `:port`).
fn split_certificate(id: &str) -> Option<(GroupId, String)> {
    let (g, d) = id.split_once(':')?;
    Some((GroupId::parse(g).ok()?, d.to_owned()))
}

fn split2(id: &str) -> Option<(ApiId, Stage)> {
    let (a, s) = id.split_once(':')?;
    Some((ApiId::parse(a).ok()?, Stage::parse(s).ok()?))
}

fn split3(id: &str) -> Option<(ApiId, Stage, &str)> {
    let mut it = id.splitn(3, ':');
    let api = ApiId::parse(it.next()?).ok()?;
    let stage = Stage::parse(it.next()?).ok()?;
    Some((api, stage, it.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(api: &ApiDefinition, version: &str) -> Deployment {
        Deployment {
            api_id: api.id.clone(),
            stage: Stage::RELEASE,
            version: version.to_owned(),
            description: None,
            deployed_at: jiff::Timestamp::UNIX_EPOCH,
            snapshot: api.clone(),
        }
    }

    fn get_user() -> ApiDefinition {
        let (group, backend) = (GroupId::generate(), BackendId::generate());
        ApiDefinition::new(group, "getUser", "GET", "/users", backend).unwrap()
    }

    fn shared(state: &State, id: &ApiId) -> bool {
        matches!(state.apis[id].value, Draft::Deployed(_))
    }

    /// A draft is held as its deployed snapshot while the two are equal, and on its own once
    /// edited; either way it reads back as the draft.
    #[test]
    fn a_draft_shares_its_deployed_snapshot_until_edited() {
        let mut state = State::default();
        let mut affected = Affected::default();
        let api = get_user();
        state.put(Entity::Api(api.clone()), 1, &mut affected);
        assert!(!shared(&state, &api.id));
        // publish: the deployment's snapshot is the draft
        state.put(
            Entity::Deployment(deployment(&api, "20260101000000000")),
            1,
            &mut affected,
        );
        assert!(shared(&state, &api.id));
        assert_eq!(*state.apis[&api.id].value, api);
        // edit: the draft is its own again, and reads back edited
        let mut edited = api.clone();
        edited.description = Some("edited".into());
        state.put(Entity::Api(edited.clone()), 2, &mut affected);
        assert!(!shared(&state, &api.id));
        assert_eq!(*state.apis[&api.id].value, edited);
        assert_eq!(state.records().len(), 2);
        // an edit back to what is deployed shares again (loading does the same)
        state.put(Entity::Api(api.clone()), 3, &mut affected);
        assert!(shared(&state, &api.id));
        assert_eq!(state.version_of(&Key::api(&api.id)), Some(3));
    }

    /// Every lookup names what it looked for, in the words the operations have always used.
    #[test]
    fn lookups_name_what_is_missing() {
        let state = State::default();
        let (app, api) = (AppId::parse("p1").unwrap(), ApiId::parse("a1").unwrap());
        let missing = [
            state
                .backend(&BackendId::parse("b1").unwrap())
                .map(|_| ())
                .unwrap_err(),
            state
                .group(&GroupId::parse("g1").unwrap())
                .map(|_| ())
                .unwrap_err(),
            state.api(&api).map(|_| ()).unwrap_err(),
            state.app(&app).map(|_| ()).unwrap_err(),
            state
                .vpc_access(&VpcAccessId::parse("v1").unwrap())
                .map(|_| ())
                .unwrap_err(),
            state
                .deployment(&api, &Stage::TEST, "20260101000000000")
                .map(|_| ())
                .unwrap_err(),
            state
                .authorization(&app, &api, &Stage::TEST)
                .map(|_| ())
                .unwrap_err(),
        ];
        let texts: Vec<String> = missing.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "backend service `b1` not found",
                "group `g1` not found",
                "api `a1` not found",
                "app `p1` not found",
                "vpc access authorization `v1` not found",
                "deployment `a1/TEST/20260101000000000` not found",
                "authorization `p1/a1/TEST` not found",
            ]
        );
        assert!(
            missing
                .iter()
                .all(|e| matches!(e, ControlError::NotFound { .. }))
        );
    }

    /// A name is taken unless only the record being renamed holds it; lists are by name.
    #[test]
    fn name_checks_and_lists() {
        let mut state = State::default();
        let mut affected = Affected::default();
        let zeta = BackendService::new("zeta", crate::model::BackendKind::Http).unwrap();
        let alpha = BackendService::new("alpha", crate::model::BackendKind::Http).unwrap();
        state.put(Entity::Backend(zeta.clone()), 1, &mut affected);
        state.put(Entity::Backend(alpha.clone()), 1, &mut affected);
        assert_eq!(state.backend(&zeta.id).unwrap(), &zeta);
        let taken = state
            .check_name_free::<BackendService>("zeta", None)
            .unwrap_err();
        assert!(
            matches!(&taken, ControlError::AlreadyExists { what: "backend service", name } if name == "zeta")
        );
        assert!(
            state
                .check_name_free::<BackendService>("zeta", Some(&zeta.id))
                .is_ok()
        );
        assert!(
            state
                .check_name_free::<BackendService>("zeta", Some(&alpha.id))
                .is_err()
        );
        assert!(state.check_name_free::<Group>("zeta", None).is_ok());
        let names: Vec<String> = state
            .by_name(|_: &BackendService| true)
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(state.by_name(|b: &BackendService| b.name == "zeta"), [zeta]);
        assert_eq!(state.names::<BackendService>().len(), 2);
    }

    /// The history keeps deployments in version order whatever order they arrive in.
    #[test]
    fn deployment_history_is_ordered_by_version() {
        let api = get_user();
        let mut h = DeploymentHistory::default();
        for v in ["20260102", "20260101", "20260103", "20260102"] {
            h.insert(Versioned {
                value: Arc::new(deployment(&api, v)),
                version: 1,
            });
        }
        let keys: Vec<&str> = h.values().map(|d| d.value.version.as_str()).collect();
        assert_eq!(keys, ["20260101", "20260102", "20260103"]);
        assert_eq!(h.values().next_back().unwrap().value.version, "20260103");
        assert!(h.get("20260102").is_some() && h.get("20260104").is_none());
        h.remove("20260102");
        h.remove("20260109");
        let keys: Vec<&str> = h.values().map(|d| d.value.version.as_str()).collect();
        assert_eq!(keys, ["20260101", "20260103"]);
        h.remove("20260101");
        h.remove("20260103");
        assert!(h.is_empty());
    }
}
