//! Plans: what applying a [`ConfigDocument`] would create, change, publish, unpublish and
//! delete, and applying one atomically.
//!
//! [`ControlPlane::plan`] compares the document with the live configuration under the writer
//! lock and answers a [`Plan`]: typed [`Step`]s, the per-API cascade reports that the single
//! operations give ([`ApiReport`]), and the store revision it was made at. Every problem of the
//! document is collected (each naming its object and field) before anything is refused, and the
//! configuration the plan leads to is checked as a whole, as an import is (references, unique
//! names and credentials, servable publications, no route conflicts). [`ControlPlane::apply`]
//! commits the plan in one store commit, provided the configuration has not moved since.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::apis::next_version;
use super::config::{ConfigDocument, ConfigIssue};
use super::live::Targets;
use super::state::State;
use super::{ApiReport, ControlError, ControlPlane, ReportResult, Result};
use crate::model::{
    ApiDefinition, ApiId, App, AppId, AppKeyPair, Authorization, BackendBinding, BackendId,
    BackendKind, BackendService, Group, GroupId, Secret, Stage, StageDefinition, VpcAccess,
    VpcAccessId,
};
use crate::store::{Deployment, Entity, Expect, Key, Publication, Revision, StoreError, Write};

/// Which objects of the live configuration a plan may touch.
///
/// # Examples
///
/// ```
/// use stagegate::control::PlanScope;
/// assert_eq!(PlanScope::parse("named").unwrap(), PlanScope::NamedOnly);
/// assert_eq!(PlanScope::default(), PlanScope::Whole);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanScope {
    /// The document is the whole configuration: what it does not name is deleted.
    #[default]
    Whole,
    /// Only what the document names is created or changed (a named API's publications and a
    /// named app's grants included); nothing else is deleted. An API the document does not name
    /// still follows a changed backend definition (the cascade), as with a single change.
    NamedOnly,
}

impl PlanScope {
    /// `whole` or `named` (as the admin API's `?scope=` takes them).
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`] naming `scope` for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "whole" => Ok(Self::Whole),
            "named" | "named_only" => Ok(Self::NamedOnly),
            _ => Err(crate::model::ValidationError::InvalidField {
                field: "scope".into(),
                reason: format!(
                    "`{}` is neither `whole` nor `named`",
                    crate::model::id::truncate(s)
                ),
            }
            .into()),
        }
    }
}

/// The kind of object a [`Step`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ObjectKind {
    /// A VPC access authorization.
    VpcAccess,
    /// A backend service.
    Backend,
    /// A group.
    Group,
    /// An API (its draft; publishing is a step of its own).
    Api,
    /// An app.
    App,
    /// A grant of an app for an API in a stage.
    Authorization,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::VpcAccess => "vpc_access",
            Self::Backend => "backend",
            Self::Group => "group",
            Self::Api => "api",
            Self::App => "app",
            Self::Authorization => "authorization",
        })
    }
}

/// One thing a plan does. Objects are named as the document names them: an API as
/// `group/api`, a grant as `app -> group/api in STAGE`. A step never shows a secret: a change
/// of an app's credentials is the field `keys` or `codes`.
///
/// # Examples
///
/// ```
/// use stagegate::control::{ObjectKind, Step};
/// let s = Step::Change { kind: ObjectKind::Backend, name: "users_http".into(), fields: vec!["stages.TEST".into()] };
/// assert_eq!(s.to_string(), "~ backend users_http (stages.TEST)");
/// assert_eq!(serde_json::to_value(&s).unwrap()["action"], "change");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Step {
    /// A new object.
    Create {
        /// Its kind.
        kind: ObjectKind,
        /// Its name.
        name: String,
    },
    /// An object whose fields change.
    Change {
        /// Its kind.
        kind: ObjectKind,
        /// Its name.
        name: String,
        /// The fields that change (`stages.TEST` for one stage definition).
        fields: Vec<String>,
    },
    /// The API (as the plan leaves its draft) goes live in a stage as a new deployment.
    Publish {
        /// The API, `group/api`.
        api: String,
        /// The stage.
        stage: Stage,
    },
    /// The API is taken out of a stage.
    Unpublish {
        /// The API, `group/api`.
        api: String,
        /// The stage.
        stage: Stage,
    },
    /// An object is deleted (an API with its deployment history and grants, an app with its
    /// grants).
    Delete {
        /// Its kind.
        kind: ObjectKind,
        /// Its name.
        name: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create { kind, name } => write!(f, "+ {kind} {name}"),
            Self::Change { kind, name, fields } => {
                write!(f, "~ {kind} {name} ({})", fields.join(", "))
            }
            Self::Publish { api, stage } => write!(f, "> publish api {api} in {stage}"),
            Self::Unpublish { api, stage } => write!(f, "< unpublish api {api} from {stage}"),
            Self::Delete { kind, name } => write!(f, "- {kind} {name}"),
        }
    }
}

/// What applying a [`ConfigDocument`] would do, computed against one store revision.
///
/// `Display` gives a human diff, one line per step (`+` create, `~` change, `>` publish,
/// `<` unpublish, `-` delete), the cascade reports, and a summary line. The writes the plan
/// will commit are kept inside it and never serialized.
///
/// # Examples
///
/// ```
/// use stagegate::control::{ConfigDocument, PlanScope};
/// use stagegate::{ControlPlane, store::MemoryStore};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
/// let doc = ConfigDocument::from_json(r#"{"groups": [{"name": "shop_api"}]}"#).unwrap();
/// let plan = cp.plan(&doc, PlanScope::Whole).await.unwrap();
/// assert_eq!(plan.to_string(), "+ group shop_api\nPlan: 1 to create, 0 to change, 0 to publish, 0 to unpublish, 0 to delete.\n");
/// # });
/// ```
#[derive(Clone, Serialize)]
pub struct Plan {
    /// The scope it was made with.
    pub scope: PlanScope,
    /// The store revision it was made at: [`ControlPlane::apply`] refuses it once the
    /// configuration has moved past it.
    pub revision: Revision,
    /// What it does, in the order it is committed (all in one commit).
    pub steps: Vec<Step>,
    /// What the changed backend definitions do to the APIs published with them, per API, as
    /// [`set_stage_definition`](ControlPlane::set_stage_definition) reports it.
    pub reports: Vec<ApiReport>,
    #[serde(skip)]
    writes: Vec<Write>,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("scope", &self.scope)
            .field("revision", &self.revision)
            .field("steps", &self.steps)
            .field("reports", &self.reports)
            .field("writes", &self.writes.len())
            .finish()
    }
}

impl Plan {
    /// Whether applying it changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// How many steps of each action: (create, change, publish, unpublish, delete).
    #[must_use]
    pub fn counts(&self) -> (usize, usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0, 0);
        for s in &self.steps {
            match s {
                Step::Create { .. } => c.0 += 1,
                Step::Change { .. } => c.1 += 1,
                Step::Publish { .. } => c.2 += 1,
                Step::Unpublish { .. } => c.3 += 1,
                Step::Delete { .. } => c.4 += 1,
            }
        }
        c
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "No changes: the configuration matches the document.");
        }
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        for r in &self.reports {
            let result = match r.result {
                ReportResult::Republished => "follows the new definition",
                ReportResult::Unpublished => "unpublished",
                ReportResult::Failed => "cannot use the new definition: unpublished",
            };
            write!(f, "  cascade: api {} in {}: {result}", r.api_name, r.stage)?;
            match &r.error {
                Some(e) => writeln!(f, " ({e})")?,
                None => writeln!(f)?,
            }
        }
        let (c, ch, p, u, d) = self.counts();
        writeln!(
            f,
            "Plan: {c} to create, {ch} to change, {p} to publish, {u} to unpublish, {d} to delete."
        )
    }
}

/// The description of the deployments a plan publishes.
const DEPLOYMENT_DESCRIPTION: &str = "applied from a configuration document";

/// The top-level fields in which two records differ.
fn changed_fields<T: Serialize>(old: &T, new: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["*".into()];
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// How an issue names an object of the document: its kind and name, shortened (a hostile name
/// is not quoted back whole).
fn object(kind: ObjectKind, name: &str) -> String {
    format!("{kind} `{}`", crate::model::id::truncate(name))
}

/// A plan being made: the state it is made against and what it has found so far.
struct Planner<'s> {
    state: &'s State,
    scope: PlanScope,
    now: Timestamp,
    issues: Vec<ConfigIssue>,
    steps: Vec<Step>,
    /// Puts and the publications' changes, in commit order.
    writes: Vec<Write>,
    /// Deletes of whole objects, committed after `writes`.
    deletes: Vec<Write>,
    written: HashSet<Key>,
    /// The deletes of groups, backends and VPC access authorizations, listed after the rest.
    late_steps: Vec<Step>,
    reports: Vec<ApiReport>,
    /// What each name will be after the plan.
    vpc: HashMap<String, VpcAccessId>,
    backends: HashMap<String, (BackendId, BackendKind, BTreeSet<Stage>)>,
    groups: HashMap<String, GroupId>,
    apis: HashMap<(String, String), ApiId>,
    /// The (backend, stage) definitions that change: the new one, or none when removed.
    changed_definitions: Vec<(BackendId, Stage, Option<StageDefinition>)>,
    /// The APIs the document names: their publications are decided by it.
    named_apis: HashSet<ApiId>,
}

impl<'s> Planner<'s> {
    fn new(state: &'s State, scope: PlanScope) -> Self {
        Self {
            state,
            scope,
            now: Timestamp::now(),
            issues: Vec::new(),
            steps: Vec::new(),
            writes: Vec::new(),
            deletes: Vec::new(),
            written: HashSet::new(),
            late_steps: Vec::new(),
            reports: Vec::new(),
            vpc: HashMap::new(),
            backends: HashMap::new(),
            groups: HashMap::new(),
            apis: HashMap::new(),
            changed_definitions: Vec::new(),
            named_apis: HashSet::new(),
        }
    }

    fn issue(&mut self, object: &str, field: &str, reason: impl Into<String>) {
        self.issues.push(ConfigIssue::new(object, field, reason));
    }

    fn put(&mut self, entity: Entity) {
        let key = entity.key();
        if self.written.insert(key.clone()) {
            let expect = self
                .state
                .version_of(&key)
                .map_or(Expect::Absent, Expect::Version);
            self.writes.push(Write::put(entity, expect));
        }
    }

    /// Deletes `key` (if it exists) after the puts (`late`) or among them.
    fn delete(&mut self, key: Key, late: bool) {
        if let Some(v) = self.state.version_of(&key)
            && self.written.insert(key.clone())
        {
            let w = Write::delete(key, Expect::Version(v));
            if late {
                self.deletes.push(w);
            } else {
                self.writes.push(w);
            }
        }
    }

    fn step(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// Creates, changes or leaves a record, with its step.
    fn reconcile<T: Serialize + PartialEq>(
        &mut self,
        kind: ObjectKind,
        name: &str,
        old: Option<&T>,
        new: &T,
        entity: impl FnOnce() -> Entity,
    ) -> bool {
        match old {
            None => {
                self.put(entity());
                self.step(Step::Create {
                    kind,
                    name: name.to_owned(),
                });
                true
            }
            Some(o) if o != new => {
                let fields = changed_fields(o, new);
                self.put(entity());
                self.step(Step::Change {
                    kind,
                    name: name.to_owned(),
                    fields,
                });
                true
            }
            Some(_) => false,
        }
    }

    /// A name seen twice in one list of the document.
    fn duplicate(&mut self, seen: &mut HashSet<String>, name: &str, object: &str) -> bool {
        if seen.insert(name.to_owned()) {
            return false;
        }
        self.issue(object, "name", "appears twice in the document");
        true
    }

    /// `group/api` for an API of the state.
    fn api_label(&self, id: &ApiId) -> String {
        match self.state.apis.get(id) {
            Some(a) => {
                let group = self
                    .state
                    .groups
                    .get(&a.value.group_id)
                    .map_or_else(|| a.value.group_id.to_string(), |g| g.value.name.clone());
                format!("{group}/{}", a.value.name)
            }
            None => id.to_string(),
        }
    }

    fn vpc_access(&mut self, doc: &ConfigDocument) {
        let existing: HashMap<&str, &VpcAccess> = self
            .state
            .vpc_access
            .values()
            .map(|v| (v.value.name.as_str(), &v.value))
            .collect();
        let mut seen = HashSet::new();
        for spec in &doc.vpc_access {
            let object = object(ObjectKind::VpcAccess, &spec.name);
            if self.duplicate(&mut seen, &spec.name, &object) {
                continue;
            }
            let old = existing.get(spec.name.as_str()).copied();
            let v = VpcAccess {
                id: old.map_or_else(VpcAccessId::generate, |o| o.id.clone()),
                name: spec.name.clone(),
                vpc_id: spec.vpc_id.clone(),
                instance_id: spec.instance_id.clone(),
                port: spec.port,
                address: spec.address.clone(),
                created_at: old.map_or(self.now, |o| o.created_at),
            };
            self.vpc.insert(v.name.clone(), v.id.clone());
            if let Err(e) = v.validate() {
                self.issues.push(ConfigIssue::invalid(&object, "", &e));
                continue;
            }
            self.reconcile(ObjectKind::VpcAccess, &v.name, old, &v, || {
                Entity::VpcAccess(v.clone())
            });
        }
        for (name, old) in existing {
            if seen.contains(name) {
                continue;
            }
            match self.scope {
                PlanScope::NamedOnly => {
                    self.vpc.insert(name.to_owned(), old.id.clone());
                }
                PlanScope::Whole => {
                    self.delete(Key::vpc_access(&old.id), true);
                    self.late_steps.push(Step::Delete {
                        kind: ObjectKind::VpcAccess,
                        name: name.to_owned(),
                    });
                }
            }
        }
    }

    /// A stage definition of the document: its `vpc_access` name resolved to the id.
    fn definition(
        &mut self,
        object: &str,
        kind: BackendKind,
        stage: &Stage,
        value: &serde_json::Value,
    ) -> Option<StageDefinition> {
        let prefix = format!("stages.{stage}");
        let mut value = value.clone();
        if let Some(obj) = value.as_object_mut() {
            if obj.contains_key("vpc_access_id") {
                self.issue(
                    object,
                    &format!("{prefix}.vpc_access_id"),
                    "name the VPC access authorization by its name, as `vpc_access`",
                );
                return None;
            }
            if let Some(v) = obj.remove("vpc_access") {
                let Some(name) = v.as_str() else {
                    self.issue(object, &format!("{prefix}.vpc_access"), "must be a name");
                    return None;
                };
                let Some(id) = self.vpc.get(name) else {
                    self.issue(
                        object,
                        &format!("{prefix}.vpc_access"),
                        format!(
                            "no VPC access authorization named `{}`",
                            crate::model::id::truncate(name)
                        ),
                    );
                    return None;
                };
                obj.insert(
                    "vpc_access_id".into(),
                    serde_json::Value::String(id.to_string()),
                );
            }
        }
        match StageDefinition::from_json(kind, value) {
            Ok(d) => Some(d),
            Err(e) => {
                self.issues.push(ConfigIssue::invalid(object, &prefix, &e));
                None
            }
        }
    }

    fn backends(&mut self, doc: &ConfigDocument) {
        let state = self.state;
        let existing: HashMap<&str, &BackendService> = state
            .backends
            .values()
            .map(|b| (b.value.name.as_str(), &b.value))
            .collect();
        let mut seen = HashSet::new();
        for spec in &doc.backends {
            let object = object(ObjectKind::Backend, &spec.name);
            if self.duplicate(&mut seen, &spec.name, &object) {
                continue;
            }
            let old = existing.get(spec.name.as_str()).copied();
            if let Some(o) = old
                && o.kind != spec.kind
            {
                self.issue(
                    &object,
                    "type",
                    format!(
                        "is {} and cannot change to {}: a backend's type is fixed (give the new one another name)",
                        o.kind, spec.kind
                    ),
                );
                self.backends.insert(
                    o.name.clone(),
                    (o.id.clone(), o.kind, o.stages.keys().cloned().collect()),
                );
                continue;
            }
            let before = self.issues.len();
            let mut stages = BTreeMap::new();
            for (stage, value) in &spec.stages {
                if let Some(d) = self.definition(&object, spec.kind, stage, value) {
                    stages.insert(stage.clone(), d);
                }
            }
            let b = BackendService {
                id: old.map_or_else(BackendId::generate, |o| o.id.clone()),
                name: spec.name.clone(),
                kind: spec.kind,
                description: spec.description.clone(),
                stages,
                created_at: old.map_or(self.now, |o| o.created_at),
                modified_at: old.map_or(self.now, |o| o.modified_at),
            };
            self.backends.insert(
                b.name.clone(),
                (b.id.clone(), b.kind, spec.stages.keys().cloned().collect()),
            );
            if let Err(e) = b.validate() {
                self.issues.push(ConfigIssue::invalid(&object, "", &e));
            }
            if self.issues.len() > before {
                continue;
            }
            match old {
                None => {
                    self.put(Entity::Backend(b.clone()));
                    self.step(Step::Create {
                        kind: ObjectKind::Backend,
                        name: b.name,
                    });
                }
                Some(o) if o != &b => {
                    let mut fields = Vec::new();
                    if o.description != b.description {
                        fields.push("description".to_owned());
                    }
                    let all: BTreeSet<&Stage> = o.stages.keys().chain(b.stages.keys()).collect();
                    for stage in all {
                        let new = b.stages.get(stage);
                        if o.stages.get(stage) != new {
                            fields.push(format!("stages.{stage}"));
                            self.changed_definitions.push((
                                b.id.clone(),
                                stage.clone(),
                                new.cloned(),
                            ));
                        }
                    }
                    let mut b = b;
                    b.modified_at = self.now;
                    let name = b.name.clone();
                    self.put(Entity::Backend(b));
                    self.step(Step::Change {
                        kind: ObjectKind::Backend,
                        name,
                        fields,
                    });
                }
                Some(_) => {}
            }
        }
        for (name, old) in existing {
            if seen.contains(name) {
                continue;
            }
            match self.scope {
                PlanScope::NamedOnly => {
                    self.backends.insert(
                        name.to_owned(),
                        (
                            old.id.clone(),
                            old.kind,
                            old.stages.keys().cloned().collect(),
                        ),
                    );
                }
                PlanScope::Whole => {
                    self.delete(Key::backend(&old.id), true);
                    self.late_steps.push(Step::Delete {
                        kind: ObjectKind::Backend,
                        name: name.to_owned(),
                    });
                }
            }
        }
    }

    fn groups(&mut self, doc: &ConfigDocument) {
        let state = self.state;
        let existing: HashMap<&str, &Group> = state
            .groups
            .values()
            .map(|g| (g.value.name.as_str(), &g.value))
            .collect();
        let mut seen = HashSet::new();
        for spec in &doc.groups {
            let object = object(ObjectKind::Group, &spec.name);
            if self.duplicate(&mut seen, &spec.name, &object) {
                continue;
            }
            let old = existing.get(spec.name.as_str()).copied();
            let g = Group {
                id: old.map_or_else(GroupId::generate, |o| o.id.clone()),
                name: spec.name.clone(),
                description: spec.description.clone(),
                base_path: spec.base_path.clone(),
                domains: spec.domains.clone(),
                pass_appcode_to_backend: spec.pass_appcode_to_backend,
                created_at: old.map_or(self.now, |o| o.created_at),
            };
            self.groups.insert(g.name.clone(), g.id.clone());
            if let Err(e) = g.validate() {
                self.issues.push(ConfigIssue::invalid(&object, "", &e));
                continue;
            }
            // the certificates of domains the group no longer lists go with them
            if let Some(o) = old {
                for w in state.dropped_certificates(&o.id, Some(&g.domains)) {
                    self.delete(w.key(), true);
                }
            }
            self.reconcile(ObjectKind::Group, &g.name, old, &g, || {
                Entity::Group(g.clone())
            });
        }
        // deleted after the APIs in them
        for (name, old) in existing {
            if seen.contains(name) {
                continue;
            }
            match self.scope {
                PlanScope::NamedOnly => {
                    self.groups.insert(name.to_owned(), old.id.clone());
                }
                PlanScope::Whole => {
                    for w in state.dropped_certificates(&old.id, None) {
                        self.delete(w.key(), true);
                    }
                    self.delete(Key::group(&old.id), true);
                    self.late_steps.push(Step::Delete {
                        kind: ObjectKind::Group,
                        name: name.to_owned(),
                    });
                }
            }
        }
    }

    fn apis(&mut self, doc: &ConfigDocument) {
        let state = self.state;
        let mut seen = HashSet::new();
        for spec in &doc.apis {
            let label = format!("{}/{}", spec.group, spec.name);
            let object = object(ObjectKind::Api, &label);
            if self.duplicate(&mut seen, &label, &object) {
                continue;
            }
            let group = self.groups.get(&spec.group).cloned();
            if group.is_none() {
                self.issue(
                    &object,
                    "group",
                    format!(
                        "no group named `{}`",
                        crate::model::id::truncate(&spec.group)
                    ),
                );
            }
            let backend = self.backends.get(&spec.backend.name).cloned();
            if backend.is_none() {
                self.issue(
                    &object,
                    "backend.name",
                    format!(
                        "no backend named `{}`",
                        crate::model::id::truncate(&spec.backend.name)
                    ),
                );
            }
            let (Some(group_id), Some((backend_id, kind, defined))) = (group, backend) else {
                continue;
            };
            let old = state
                .api_names
                .get(&(group_id.clone(), spec.name.clone()))
                .and_then(|ids| ids.first())
                .and_then(|id| state.apis.get(id))
                .map(|a| a.value.to_definition());
            let def = ApiDefinition {
                id: old.as_ref().map_or_else(ApiId::generate, |o| o.id.clone()),
                group_id,
                name: spec.name.clone(),
                description: spec.description.clone(),
                auth: spec.auth,
                appcode_auth: spec.appcode_auth,
                signature_methods: spec.signature_methods.clone(),
                force_nonce_check: spec.force_nonce_check,
                request: spec.request.clone(),
                parameters: spec.parameters.clone(),
                constant_parameters: spec.constant_parameters.clone(),
                system_parameters: spec.system_parameters.clone(),
                backend: BackendBinding {
                    backend_id,
                    path: spec.backend.path.clone(),
                    method: spec.backend.method.clone(),
                    timeout_ms: spec.backend.timeout_ms,
                    content_type: spec.backend.content_type,
                    content_type_value: spec.backend.content_type_value.clone(),
                    oss: spec.backend.oss.clone(),
                },
                response: spec.response.clone(),
            };
            self.apis
                .insert((spec.group.clone(), spec.name.clone()), def.id.clone());
            self.named_apis.insert(def.id.clone());
            let before = self.issues.len();
            if let Err(e) = def.validate() {
                self.issues.push(ConfigIssue::invalid(&object, "", &e));
            }
            if kind == BackendKind::Oss && def.backend.oss.is_none() {
                self.issue(
                    &object,
                    "backend.oss",
                    "an API on an OSS backend needs an action and an object key",
                );
            }
            let mut stages = BTreeSet::new();
            for stage in &spec.publish {
                if !stages.insert(stage.clone()) {
                    self.issue(&object, "publish", format!("{stage} is listed twice"));
                } else if !defined.contains(stage) {
                    self.issue(
                        &object,
                        "publish",
                        format!(
                            "backend `{}` has no definition in stage {stage}",
                            spec.backend.name
                        ),
                    );
                }
            }
            if self.issues.len() > before {
                continue;
            }
            self.reconcile(ObjectKind::Api, &label, old.as_ref(), &def, || {
                Entity::Api(def.clone())
            });
            self.publications(&def, &label, &stages);
        }
        if self.scope == PlanScope::NamedOnly {
            for (id, a) in &state.apis {
                if !self.named_apis.contains(id)
                    && let Some(g) = state.groups.get(&a.value.group_id)
                {
                    self.apis
                        .insert((g.value.name.clone(), a.value.name.clone()), id.clone());
                }
            }
            return;
        }
        let mut unnamed: Vec<(String, ApiId)> = state
            .apis
            .keys()
            .filter(|id| !self.named_apis.contains(*id))
            .map(|id| (self.api_label(id), id.clone()))
            .collect();
        unnamed.sort();
        for (label, id) in unnamed {
            for stage in Stage::BUILT_IN {
                if state.live(&id, &stage).is_some() {
                    self.delete(Key::publication(&id, &stage), true);
                    self.step(Step::Unpublish {
                        api: label.clone(),
                        stage: stage.clone(),
                    });
                }
            }
            for stage in Stage::BUILT_IN {
                let versions: Vec<String> = state
                    .history(&id, &stage)
                    .map(|d| d.value.version.clone())
                    .collect();
                for v in versions {
                    self.delete(Key::deployment(&id, &stage, &v), true);
                }
            }
            let grants: Vec<Key> = state
                .authorizations
                .keys()
                .filter(|(_, api, _)| api == &id)
                .map(|(app, api, stage)| Key::authorization(app, api, stage))
                .collect();
            for k in grants {
                self.delete(k, true);
            }
            // an API's policy bindings go with it, as with `ControlPlane::delete_api`
            let bindings: Vec<Key> = state
                .bindings
                .keys()
                .filter(|(api, _, _)| api == &id)
                .map(|(api, stage, policy)| Key::policy_binding(api, stage, policy))
                .collect();
            for k in bindings {
                self.delete(k, true);
            }
            self.delete(Key::api(&id), true);
            self.step(Step::Delete {
                kind: ObjectKind::Api,
                name: label,
            });
        }
    }

    /// Publishes `def` where it is to be live and is not yet as it is, unpublishes it elsewhere.
    fn publications(&mut self, def: &ApiDefinition, label: &str, stages: &BTreeSet<Stage>) {
        let state = self.state;
        for stage in Stage::BUILT_IN {
            let live = state.live(&def.id, &stage);
            if stages.contains(&stage) {
                if live.is_some_and(|l| l.deployment.snapshot == *def) {
                    continue;
                }
                let prev = state
                    .history(&def.id, &stage)
                    .next_back()
                    .map(|d| d.value.version.clone());
                let deployment = Deployment {
                    api_id: def.id.clone(),
                    stage: stage.clone(),
                    version: next_version(prev.as_deref()),
                    description: Some(DEPLOYMENT_DESCRIPTION.to_owned()),
                    deployed_at: self.now,
                    snapshot: def.clone(),
                };
                let publication = Publication {
                    api_id: def.id.clone(),
                    stage: stage.clone(),
                    version: deployment.version.clone(),
                };
                self.put(Entity::Deployment(deployment));
                self.put(Entity::Publication(publication));
                self.step(Step::Publish {
                    api: label.to_owned(),
                    stage,
                });
            } else if live.is_some() {
                self.delete(Key::publication(&def.id, &stage), false);
                self.step(Step::Unpublish {
                    api: label.to_owned(),
                    stage,
                });
            }
        }
    }

    fn apps(&mut self, doc: &ConfigDocument) {
        let state = self.state;
        let existing: HashMap<&str, &App> = state
            .apps
            .values()
            .map(|a| (a.value.name.as_str(), &a.value))
            .collect();
        let mut seen = HashSet::new();
        for spec in &doc.apps {
            let object = object(ObjectKind::App, &spec.name);
            if self.duplicate(&mut seen, &spec.name, &object) {
                continue;
            }
            let old = existing.get(spec.name.as_str()).copied();
            let keys = match &spec.keys {
                Some(ks) => ks
                    .iter()
                    .map(|k| AppKeyPair {
                        app_key: k.app_key.clone(),
                        app_secret: k
                            .app_secret
                            .clone()
                            .or_else(|| {
                                old.and_then(|o| o.keys.iter().find(|x| x.app_key == k.app_key))
                                    .map(|x| x.app_secret.clone())
                            })
                            .unwrap_or_else(Secret::generate),
                    })
                    .collect(),
                None => old.map_or_else(|| vec![AppKeyPair::generate()], |o| o.keys.clone()),
            };
            let codes = match &spec.codes {
                Some(c) => c.clone(),
                None => old.map_or_else(|| vec![Secret::generate()], |o| o.codes.clone()),
            };
            let app = App {
                id: old.map_or_else(AppId::generate_numeric, |o| o.id.clone()),
                name: spec.name.clone(),
                description: spec.description.clone(),
                disabled: spec.disabled,
                keys,
                codes,
                created_at: old.map_or(self.now, |o| o.created_at),
            };
            let before = self.issues.len();
            if let Err(e) = app.validate() {
                self.issues.push(ConfigIssue::invalid(&object, "", &e));
            }
            let grants = self.grants_of(&object, &app.id, spec);
            if self.issues.len() > before {
                continue;
            }
            self.reconcile(ObjectKind::App, &app.name, old, &app, || {
                Entity::App(app.clone())
            });
            let current: Vec<(ApiId, Stage)> = state
                .authorizations
                .keys()
                .filter(|(a, _, _)| a == &app.id)
                .map(|(_, api, stage)| (api.clone(), stage.clone()))
                .collect();
            for (api, stage, expires_at, label) in &grants {
                let key = (app.id.clone(), api.clone(), stage.clone());
                let old = state.authorizations.get(&key).map(|a| &a.value);
                let grant = Authorization {
                    app_id: app.id.clone(),
                    api_id: api.clone(),
                    stage: stage.clone(),
                    expires_at: *expires_at,
                    created_at: old.map_or(self.now, |o| o.created_at),
                };
                let name = format!("{} -> {label} in {stage}", app.name);
                self.reconcile(ObjectKind::Authorization, &name, old, &grant, || {
                    Entity::Authorization(grant.clone())
                });
            }
            let mut gone: Vec<(String, Key)> = current
                .into_iter()
                .filter(|(api, stage)| !grants.iter().any(|g| &g.0 == api && &g.1 == stage))
                .map(|(api, stage)| {
                    (
                        format!("{} -> {} in {stage}", app.name, self.api_label(&api)),
                        Key::authorization(&app.id, &api, &stage),
                    )
                })
                .collect();
            gone.sort();
            for (name, key) in gone {
                self.delete(key, false);
                self.step(Step::Delete {
                    kind: ObjectKind::Authorization,
                    name,
                });
            }
        }
        if self.scope == PlanScope::Whole {
            let mut unnamed: Vec<(&str, &App)> = existing
                .into_iter()
                .filter(|(name, _)| !seen.contains(*name))
                .collect();
            unnamed.sort_by_key(|(n, _)| *n);
            for (name, old) in unnamed {
                let grants: Vec<Key> = state
                    .authorizations
                    .keys()
                    .filter(|(app, _, _)| app == &old.id)
                    .map(|(app, api, stage)| Key::authorization(app, api, stage))
                    .collect();
                for k in grants {
                    self.delete(k, true);
                }
                self.delete(Key::app(&old.id), true);
                self.step(Step::Delete {
                    kind: ObjectKind::App,
                    name: name.to_owned(),
                });
            }
        }
    }

    /// The grants an app spec lists: (api, stage, expiry, `group/api`).
    fn grants_of(
        &mut self,
        object: &str,
        _app: &AppId,
        spec: &super::config::AppSpec,
    ) -> Vec<(ApiId, Stage, Option<Timestamp>, String)> {
        let mut out: Vec<(ApiId, Stage, Option<Timestamp>, String)> = Vec::new();
        for (i, g) in spec.grants.iter().enumerate() {
            let field = format!("grants[{i}]");
            let label = format!("{}/{}", g.group, g.api);
            let Some(api) = self.apis.get(&(g.group.clone(), g.api.clone())).cloned() else {
                self.issue(
                    object,
                    &field,
                    format!("no api `{}`", crate::model::id::truncate(&label)),
                );
                continue;
            };
            if g.expires_at.is_some_and(|e| e <= self.now) {
                self.issue(
                    object,
                    &format!("{field}.expires_at"),
                    "must be in the future",
                );
            }
            if g.stages.is_empty() {
                self.issue(object, &format!("{field}.stages"), "at least one stage");
            }
            for stage in &g.stages {
                if out.iter().any(|o| o.0 == api && &o.1 == stage) {
                    self.issue(
                        object,
                        &format!("{field}.stages"),
                        format!("{label} in {stage} is granted twice"),
                    );
                    continue;
                }
                out.push((api.clone(), stage.clone(), g.expires_at, label.clone()));
            }
        }
        out
    }

    /// The per-API reports of the changed backend definitions; in the named scope, an API the
    /// document does not name and that cannot use the new definition is unpublished.
    fn cascade(&mut self) {
        let state = self.state;
        let changed = std::mem::take(&mut self.changed_definitions);
        for (backend, stage, definition) in changed {
            let lives: Vec<_> = state.published_using(&backend, &stage).cloned().collect();
            for live in lives {
                let api = &live.deployment.snapshot;
                let pub_key = Key::publication(&api.id, &stage);
                let unpublished = self.written.contains(&pub_key)
                    && (self.writes.iter().chain(&self.deletes))
                        .any(|w| matches!(w, Write::Delete { key, .. } if key == &pub_key));
                let (result, error) =
                    if self.named_apis.contains(&api.id) || self.scope == PlanScope::Whole {
                        if unpublished {
                            (ReportResult::Unpublished, None)
                        } else {
                            (ReportResult::Republished, None)
                        }
                    } else {
                        let label = self.api_label(&api.id);
                        let outcome = match &definition {
                            None => Err(None),
                            Some(d) => state
                                .compile_route(
                                    &live.deployment,
                                    &stage,
                                    Some(d),
                                    None,
                                    &mut Targets::default(),
                                )
                                .map(|_| ())
                                .map_err(Some),
                        };
                        match outcome {
                            Ok(()) => (ReportResult::Republished, None),
                            Err(e) => {
                                self.delete(pub_key, false);
                                self.step(Step::Unpublish {
                                    api: label,
                                    stage: stage.clone(),
                                });
                                match e {
                                    None => (ReportResult::Unpublished, None),
                                    Some(e) => (ReportResult::Failed, Some(e.to_string())),
                                }
                            }
                        }
                    };
                self.reports
                    .push(ApiReport::new(api, &stage, result, error));
            }
        }
    }

    /// The configuration the writes lead to, checked as a whole as an import is.
    fn check_target(&mut self) {
        let mut records: BTreeMap<Key, Entity> = self
            .state
            .records()
            .into_iter()
            .map(|r| (r.value.key(), r.value))
            .collect();
        for w in self.writes.iter().chain(&self.deletes) {
            match w {
                Write::Put { entity, .. } => {
                    records.insert(entity.key(), entity.clone());
                }
                Write::Delete { key, .. } => {
                    records.remove(key);
                }
            }
        }
        let entities: Vec<Entity> = records.into_values().collect();
        if let Err(e) = super::export::check(&entities) {
            let reason = match e {
                ControlError::Validation(crate::model::ValidationError::InvalidField {
                    reason,
                    ..
                }) => reason,
                e => e.to_string(),
            };
            self.issue("configuration", "", reason);
        }
    }

    fn finish(mut self, revision: Revision) -> Result<Plan> {
        if self.issues.is_empty() {
            self.cascade();
        }
        if self.issues.is_empty() && !(self.writes.is_empty() && self.deletes.is_empty()) {
            self.check_target();
        }
        if !self.issues.is_empty() {
            return Err(ControlError::InvalidConfig {
                issues: self.issues,
            });
        }
        // groups before the backends and VPC access authorizations, as they are deleted
        self.late_steps.sort_by_key(|s| match s {
            Step::Delete {
                kind: ObjectKind::Group,
                ..
            } => 0,
            Step::Delete {
                kind: ObjectKind::Backend,
                ..
            } => 1,
            _ => 2,
        });
        let mut steps = self.steps;
        steps.extend(self.late_steps);
        let mut writes = self.writes;
        writes.extend(self.deletes);
        Ok(Plan {
            scope: self.scope,
            revision,
            steps,
            reports: self.reports,
            writes,
        })
    }
}

/// The plan that takes `state` to `doc`.
pub(super) fn make_plan(state: &State, doc: &ConfigDocument, scope: PlanScope) -> Result<Plan> {
    let mut p = Planner::new(state, scope);
    if doc.format != super::config::CONFIG_FORMAT {
        p.issue(
            "document",
            "format",
            format!(
                "unsupported format {} (expected {})",
                doc.format,
                super::config::CONFIG_FORMAT
            ),
        );
    }
    p.vpc_access(doc);
    p.backends(doc);
    p.groups(doc);
    p.apis(doc);
    p.apps(doc);
    // whole objects are deleted leaves first: grants and publications, then deployments and
    // drafts, apps, groups, backends, VPC access authorizations
    p.deletes.sort_by_key(|w| match w {
        Write::Delete { key, .. } => delete_rank(key),
        Write::Put { .. } => 0,
    });
    let revision = state.revision;
    p.finish(revision)
}

fn delete_rank(key: &Key) -> u8 {
    use crate::store::EntityKind as K;
    match key.kind {
        K::Authorization => 0,
        K::Publication => 1,
        K::Deployment => 2,
        K::Api => 3,
        K::App => 4,
        K::Group => 5,
        K::Backend => 6,
        K::VpcAccess => 7,
        K::PolicyBinding => 0,
        K::DomainCertificate => 0,
        K::Policy => 8,
    }
}

impl ControlPlane {
    /// What applying `doc` would create, change, publish, unpublish and delete, with the
    /// per-API cascade reports, at the current revision. Nothing changes.
    ///
    /// # Errors
    ///
    /// [`ControlError::InvalidConfig`] listing every problem of the document found (each naming
    /// its object and field), and any the configuration it leads to would have (a route
    /// conflict, a credential listed twice).
    pub async fn plan(&self, doc: &ConfigDocument, scope: PlanScope) -> Result<Plan> {
        let state = self.state.lock().await;
        make_plan(&state, doc, scope)
    }

    /// Commits `plan` in one atomic store commit and swaps in the next snapshot; returns it.
    /// An empty plan changes nothing (no commit, no new deployment).
    ///
    /// # Errors
    ///
    /// [`ControlError::Stale`] when the configuration changed since the plan was made (here, or
    /// in another process sharing the store, which this one then catches up with): nothing is
    /// applied, plan again.
    /// [`ControlError::Store`] when the store fails (nothing is applied either).
    pub async fn apply(&self, plan: &Plan) -> Result<()> {
        let mut state = self.state.lock().await;
        let stale = ControlError::Stale {
            planned: plan.revision,
            current: state.revision,
        };
        if state.revision != plan.revision || self.moved(&mut state).await? {
            return Err(stale);
        }
        self.commit_plan(&mut state, plan).await
    }

    /// Whether another process sharing the store committed since `state` was read; if so,
    /// `state` catches up. (The store's preconditions guard every record the plan writes; this
    /// also catches a new record of a name the plan creates, which they cannot.)
    async fn moved(&self, state: &mut State) -> Result<bool> {
        let moved = match self.store.changes_since(state.revision, 1).await {
            Ok(c) => !c.is_empty(),
            Err(StoreError::Compacted(_)) => true,
            Err(e) => return Err(e.into()),
        };
        if moved {
            self.resync(state).await?;
        }
        Ok(moved)
    }

    async fn commit_plan(&self, state: &mut State, plan: &Plan) -> Result<()> {
        match self
            .commit(state, plan.writes.clone(), HashMap::new())
            .await
        {
            Err(ControlError::Store(StoreError::Conflict { .. })) => Err(ControlError::Stale {
                planned: plan.revision,
                current: state.revision,
            }),
            other => other,
        }
    }

    /// Plans `doc` and applies the plan at once, under one lock (nothing can move in between);
    /// returns the plan applied.
    ///
    /// # Errors
    ///
    /// As [`plan`](Self::plan) and [`apply`](Self::apply).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::control::{ConfigDocument, PlanScope};
    /// use stagegate::{ControlPlane, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    /// let doc = ConfigDocument::from_json(r#"{"apps": [{"name": "mobile_app"}]}"#).unwrap();
    /// assert_eq!(cp.apply_document(&doc, PlanScope::Whole).await.unwrap().steps.len(), 1);
    /// assert!(cp.apply_document(&doc, PlanScope::Whole).await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn apply_document(&self, doc: &ConfigDocument, scope: PlanScope) -> Result<Plan> {
        let mut state = self.state.lock().await;
        // catch up with other processes first: the plan is then made against the store as is
        self.moved(&mut state).await?;
        let plan = make_plan(&state, doc, scope)?;
        self.commit_plan(&mut state, &plan).await?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn doc(v: serde_json::Value) -> ConfigDocument {
        ConfigDocument::from_json(&v.to_string()).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "backends": [{"name": "users_http", "type": "HTTP",
                          "stages": {"TEST": {"url": "http://127.0.0.1:9"}}}],
            "groups": [{"name": "shop_api"}],
            "apis": [{"name": "getUser", "group": "shop_api",
                      "request": {"method": "GET", "path": "/users"},
                      "backend": {"name": "users_http"}, "publish": ["TEST"]}],
            "apps": [{"name": "mobile_app",
                      "grants": [{"group": "shop_api", "api": "getUser", "stages": ["TEST"]}]}]
        })
    }

    #[test]
    fn changed_fields_are_the_top_level_fields_that_differ() {
        let a = serde_json::json!({"name": "x", "domains": ["a"], "description": "d"});
        let b = serde_json::json!({"name": "x", "domains": ["b"], "base_path": "/v1"});
        assert_eq!(
            changed_fields(&a, &b),
            ["base_path", "description", "domains"]
        );
        assert!(changed_fields(&a, &a).is_empty());
    }

    #[test]
    fn scopes_parse_and_refuse_anything_else() {
        assert_eq!(PlanScope::parse("whole").unwrap(), PlanScope::Whole);
        assert_eq!(PlanScope::parse("named").unwrap(), PlanScope::NamedOnly);
        let e = PlanScope::parse("everything").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid scope: `everything` is neither `whole` nor `named`"
        );
    }

    #[test]
    fn steps_read_as_a_diff() {
        let steps = [
            Step::Create {
                kind: ObjectKind::VpcAccess,
                name: "orders_vpc".into(),
            },
            Step::Publish {
                api: "shop_api/getUser".into(),
                stage: Stage::PRE,
            },
            Step::Unpublish {
                api: "shop_api/getUser".into(),
                stage: Stage::TEST,
            },
            Step::Delete {
                kind: ObjectKind::Authorization,
                name: "mobile_app -> shop_api/getUser in TEST".into(),
            },
        ];
        let text: Vec<String> = steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "+ vpc_access orders_vpc",
                "> publish api shop_api/getUser in PRE",
                "< unpublish api shop_api/getUser from TEST",
                "- authorization mobile_app -> shop_api/getUser in TEST",
            ]
        );
    }

    /// A draft edited outside the document (the admin API) is put back; one edited and
    /// published there is put back and published again. What equals the live snapshot is never
    /// published again.
    #[tokio::test]
    async fn the_document_wins_over_an_edit_made_elsewhere() {
        let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
        cp.apply_document(&doc(base()), PlanScope::Whole)
            .await
            .unwrap();
        let mut api = cp.apis(None).await.remove(0);
        api.description = Some("edited in the console".into());
        cp.update_api(api.clone()).await.unwrap();
        let draft_only = Step::Change {
            kind: ObjectKind::Api,
            name: "shop_api/getUser".into(),
            fields: vec!["description".into()],
        };
        let plan = cp.plan(&doc(base()), PlanScope::Whole).await.unwrap();
        assert_eq!(plan.steps, std::slice::from_ref(&draft_only));
        cp.publish(&api.id, Stage::TEST, None).await.unwrap();
        let plan = cp.plan(&doc(base()), PlanScope::Whole).await.unwrap();
        assert_eq!(
            plan.steps,
            [
                draft_only,
                Step::Publish {
                    api: "shop_api/getUser".into(),
                    stage: Stage::TEST,
                }
            ]
        );
        cp.apply(&plan).await.unwrap();
        assert_eq!(
            cp.published(&api.id, &Stage::TEST)
                .await
                .unwrap()
                .snapshot
                .description,
            None
        );
        assert!(
            cp.plan(&doc(base()), PlanScope::Whole)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_grant_expiry_is_a_change_and_a_dropped_grant_a_delete() {
        let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
        cp.apply_document(&doc(base()), PlanScope::Whole)
            .await
            .unwrap();
        let mut v = base();
        v["apps"][0]["grants"][0]["expires_at"] = serde_json::json!("2099-01-01T00:00:00Z");
        let plan = cp.apply_document(&doc(v), PlanScope::Whole).await.unwrap();
        assert_eq!(
            plan.steps,
            [Step::Change {
                kind: ObjectKind::Authorization,
                name: "mobile_app -> shop_api/getUser in TEST".into(),
                fields: vec!["expires_at".into()],
            }]
        );
        let mut v = base();
        v["apps"][0]["grants"] = serde_json::json!([]);
        let plan = cp.apply_document(&doc(v), PlanScope::Whole).await.unwrap();
        assert_eq!(
            plan.steps,
            [Step::Delete {
                kind: ObjectKind::Authorization,
                name: "mobile_app -> shop_api/getUser in TEST".into(),
            }]
        );
        assert!(cp.authorizations(None, None).await.is_empty());
    }

    /// Deleting everything commits leaves first, so that no record is left pointing at a
    /// deleted one even inside the commit.
    #[tokio::test]
    async fn whole_objects_are_deleted_leaves_first() {
        let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
        cp.apply_document(&doc(base()), PlanScope::Whole)
            .await
            .unwrap();
        let plan = cp
            .plan(&ConfigDocument::default(), PlanScope::Whole)
            .await
            .unwrap();
        let kinds: Vec<_> = plan.writes.iter().map(|w| w.key().kind).collect();
        use crate::store::EntityKind as K;
        assert_eq!(
            kinds,
            [
                K::Authorization,
                K::Publication,
                K::Deployment,
                K::Api,
                K::App,
                K::Group,
                K::Backend
            ]
        );
        assert_eq!(plan.counts(), (0, 0, 0, 1, 4));
        cp.apply(&plan).await.unwrap();
        assert!(cp.records().await.is_empty());
        assert!(cp.snapshot().tables.is_empty());
    }
}
