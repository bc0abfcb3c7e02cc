//! The whole configuration as one document: export, and all-or-nothing import.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::live::Targets;
use super::state::State;
use super::{ControlError, ControlPlane};
use crate::model::{
    ApiDefinition, App, Authorization, BackendService, DomainCertificate, Group, StageDefinition,
    ValidationError, VpcAccess,
};
use crate::policy::{Policy, PolicyBinding};
use crate::routing::Snapshot;
use crate::store::{Deployment, Entity, Expect, Key, Loaded, Publication, Versioned, Write};

/// The export format version this build reads and writes.
pub const EXPORT_FORMAT: u32 = 1;

/// Every record of a gateway's configuration, grouped by kind: for declarative set-up,
/// backups and review in version control.
///
/// # Examples
///
/// ```
/// use stagegate::ControlPlane;
/// use stagegate::control::ConfigExport;
/// use stagegate::store::MemoryStore;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
/// let doc: ConfigExport = cp.export().await;
/// let json = serde_json::to_string_pretty(&doc).unwrap();
/// let fresh = ControlPlane::open(MemoryStore::new()).await.unwrap();
/// fresh.import(serde_json::from_str(&json).unwrap()).await.unwrap();
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigExport {
    /// The format version ([`EXPORT_FORMAT`]).
    pub format: u32,
    /// When it was exported.
    pub exported_at: Timestamp,
    /// Backend services with their stage definitions.
    #[serde(default)]
    pub backends: Vec<BackendService>,
    /// VPC access authorizations.
    #[serde(default)]
    pub vpc_access: Vec<VpcAccess>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// API drafts.
    #[serde(default)]
    pub apis: Vec<ApiDefinition>,
    /// Deployment history.
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    /// What is live where.
    #[serde(default)]
    pub publications: Vec<Publication>,
    /// Apps with their credentials.
    #[serde(default)]
    pub apps: Vec<App>,
    /// Grants.
    #[serde(default)]
    pub authorizations: Vec<Authorization>,
    /// Traffic policies (a backend signature's secret included, as apps' secrets are).
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// Which policy is bound to which API in which stage.
    #[serde(default)]
    pub policy_bindings: Vec<PolicyBinding>,
    /// The TLS certificates of group domains, their private keys included (as apps' secrets
    /// are): keep an export as safe as the keys themselves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain_certificates: Vec<DomainCertificate>,
}

/// How many records an import wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// Records in the imported document.
    pub records: usize,
    /// Records of the previous configuration that were removed.
    pub removed: usize,
}

impl ConfigExport {
    fn into_entities(self) -> Vec<Entity> {
        let mut v: Vec<Entity> = Vec::new();
        v.extend(self.backends.into_iter().map(Entity::Backend));
        v.extend(self.vpc_access.into_iter().map(Entity::VpcAccess));
        v.extend(self.groups.into_iter().map(Entity::Group));
        v.extend(self.apis.into_iter().map(Entity::Api));
        v.extend(self.deployments.into_iter().map(Entity::Deployment));
        v.extend(self.publications.into_iter().map(Entity::Publication));
        v.extend(self.apps.into_iter().map(Entity::App));
        v.extend(self.authorizations.into_iter().map(Entity::Authorization));
        v.extend(self.policies.into_iter().map(Entity::Policy));
        v.extend(self.policy_bindings.into_iter().map(Entity::PolicyBinding));
        v.extend(
            self.domain_certificates
                .into_iter()
                .map(Entity::DomainCertificate),
        );
        v
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ControlError {
    ValidationError::InvalidField {
        field: field.to_owned(),
        reason: reason.into(),
    }
    .into()
}

/// Checks a whole configuration against every invariant the individual operations enforce, so
/// that import accepts only a state the operations could have built: every record valid, every
/// reference resolvable, names and credentials unique, every deployment a snapshot of its own
/// API, every publication servable, and the published routes free of conflicts.
///
/// The one place import validation lives: [`check_records`] (each record on its own),
/// [`check_invariants`] (records against each other), then [`check_routes`] (the route tables
/// the publications make). A new rule goes into one of them, never into `import` itself.
pub(super) fn check(entities: &[Entity]) -> Result<State, ControlError> {
    check_records(entities)?;
    let loaded = Loaded {
        revision: 0,
        records: entities
            .iter()
            .cloned()
            .map(|value| Versioned { value, version: 1 })
            .collect(),
    };
    let state = State::from_loaded(loaded);
    check_invariants(&state, entities)?;
    check_routes(&state)?;
    Ok(state)
}

/// Each record on its own: valid, and its key not taken by another record of the document.
fn check_records(entities: &[Entity]) -> Result<(), ControlError> {
    let mut seen = std::collections::HashSet::new();
    for e in entities {
        if !seen.insert(e.key()) {
            return Err(invalid("import", format!("{} appears twice", e.key())));
        }
        match e {
            Entity::Backend(b) => b.validate()?,
            Entity::VpcAccess(v) => v.validate()?,
            Entity::Group(g) => g.validate()?,
            Entity::Api(a) => a.validate()?,
            Entity::Deployment(d) => d.snapshot.validate()?,
            Entity::App(a) => a.validate()?,
            Entity::Policy(p) => p.validate()?,
            Entity::DomainCertificate(c) => check_certificate(c)?,
            Entity::Publication(_) | Entity::Authorization(_) | Entity::PolicyBinding(_) => {}
        }
    }
    Ok(())
}

/// A domain certificate on its own: with the `tls` feature, the pair parses, the key is the
/// certificate's and it covers its domain (its validity is not checked: a backup with an
/// expired certificate still restores, and serving it logs the expiry).
fn check_certificate(c: &DomainCertificate) -> Result<(), ControlError> {
    #[cfg(feature = "tls")]
    {
        let pair =
            crate::tls::CertificatePair::from_pem_any_time(&c.certificate, c.private_key.expose())
                .and_then(|p| p.check_domain(&c.domain))
                .map_err(|e| {
                    invalid(
                        "import",
                        format!(
                            "certificate of domain `{}` of group `{}`: {e}",
                            c.domain, c.group_id
                        ),
                    )
                });
        pair?;
    }
    #[cfg(not(feature = "tls"))]
    let _ = c;
    Ok(())
}

/// Records against each other: names and credentials unique (as `create_*` and `update_*`
/// refuse a taken one), references resolvable, deployments and publications consistent.
fn check_invariants(state: &State, entities: &[Entity]) -> Result<(), ControlError> {
    let unique = |what: &str, names: Vec<String>| -> Result<(), ControlError> {
        let mut sorted = names;
        sorted.sort();
        match sorted.windows(2).find(|w| w[0] == w[1]) {
            Some(w) => Err(invalid(
                "import",
                format!("{what} `{}` appears twice", w[0]),
            )),
            None => Ok(()),
        }
    };
    unique("backend name", state.names::<BackendService>())?;
    unique("group name", state.names::<Group>())?;
    unique("app name", state.names::<App>())?;
    unique(
        "app key",
        state
            .apps
            .values()
            .flat_map(|a| a.value.keys.iter().map(|k| k.app_key.clone()))
            .collect(),
    )?;
    // An AppCode identifies its app alone: one listed twice would authenticate as either app.
    // The message never shows the code.
    let mut codes: HashMap<&str, &str> = HashMap::new();
    for a in state.apps.values() {
        for c in &a.value.codes {
            if let Some(other) = codes.insert(c.expose(), &a.value.name) {
                return Err(invalid(
                    "import",
                    format!(
                        "an AppCode is listed twice (apps `{other}` and `{}`)",
                        a.value.name
                    ),
                ));
            }
        }
    }
    for c in state.certificates.values().map(|c| &c.value) {
        let bound = state
            .groups
            .get(&c.group_id)
            .is_some_and(|g| g.value.domains.iter().any(|d| d == &c.domain));
        if !bound {
            return Err(invalid(
                "import",
                format!(
                    "certificate of domain `{}` names a group `{}` without that domain",
                    c.domain, c.group_id
                ),
            ));
        }
    }
    unique("vpc access authorization name", state.names::<VpcAccess>())?;
    unique("policy name", state.names::<Policy>())?;
    super::policies::check_policy_references(state).map_err(|e| invalid("import", e))?;
    unique(
        "api name",
        state
            .apis
            .values()
            .map(|a| format!("{}/{}", a.value.group_id, a.value.name))
            .collect(),
    )?;
    for b in state.backends.values() {
        for (stage, def) in &b.value.stages {
            if let StageDefinition::Vpc(v) = def
                && !state.vpc_access.contains_key(&v.vpc_access_id)
            {
                return Err(invalid(
                    "import",
                    format!(
                        "backend `{}` ({stage}) names unknown vpc access `{}`",
                        b.value.name, v.vpc_access_id
                    ),
                ));
            }
        }
    }
    for a in state.apis.values() {
        if !state.groups.contains_key(&a.value.group_id) {
            return Err(invalid(
                "import",
                format!(
                    "api `{}` is in unknown group `{}`",
                    a.value.name, a.value.group_id
                ),
            ));
        }
        let Some(backend) = state.backends.get(&a.value.backend.backend_id) else {
            return Err(invalid(
                "import",
                format!(
                    "api `{}` uses unknown backend `{}`",
                    a.value.name, a.value.backend.backend_id
                ),
            ));
        };
        if backend.value.kind == crate::model::BackendKind::Oss && a.value.backend.oss.is_none() {
            return Err(invalid(
                "import",
                format!(
                    "api `{}` is on an OSS backend without backend.oss (action and object key)",
                    a.value.name
                ),
            ));
        }
    }
    for ((api, stage), m) in &state.deployments {
        if !state.apis.contains_key(api) {
            return Err(invalid(
                "import",
                format!("deployment of unknown api `{api}`"),
            ));
        }
        if m.values()
            .any(|d| &d.value.api_id != api || &d.value.stage != stage)
        {
            return Err(invalid("import", "deployment key mismatch"));
        }
        // Publishing snapshots the API itself: a deployment of `api` holding another API's
        // definition would serve that one's routes and authentication under this one's name.
        if let Some(d) = m.values().find(|d| &d.value.snapshot.id != api) {
            return Err(invalid(
                "import",
                format!(
                    "deployment {} of api `{api}` in {stage} is a snapshot of another api `{}`",
                    d.value.version, d.value.snapshot.id
                ),
            ));
        }
    }
    for e in entities {
        if let Entity::Publication(p) = e
            && state.live(&p.api_id, &p.stage).is_none()
        {
            return Err(invalid(
                "import",
                format!(
                    "publication of `{}` in {} has no deployment {}",
                    p.api_id, p.stage, p.version
                ),
            ));
        }
        if let Entity::Authorization(a) = e
            && (!state.apps.contains_key(&a.app_id) || !state.apis.contains_key(&a.api_id))
        {
            return Err(invalid(
                "import",
                format!(
                    "authorization of app `{}` for api `{}` names an unknown app or api",
                    a.app_id, a.api_id
                ),
            ));
        }
    }
    Ok(())
}

/// The route tables the publications make: every publication compiles, and no two routes of a
/// table conflict. (Route-conflict rules across groups plug in here.)
fn check_routes(state: &State) -> Result<(), ControlError> {
    let empty = Snapshot::default();
    let mut targets = Targets::default();
    let tables: Vec<_> = state.published_in.keys().cloned().collect();
    let mut built = HashMap::new();
    for (group, stage) in tables {
        for (_, live) in state.published_in_group(&group, &stage) {
            state
                .compile_route(&live.deployment, &stage, None, None, &mut targets)
                .map_err(|e| {
                    invalid(
                        "import",
                        format!(
                            "api `{}` cannot be published in {stage}: {e}",
                            live.deployment.snapshot.name
                        ),
                    )
                })?;
        }
        let table = state
            .build_table(&empty, &group, &stage, None, &mut targets)
            .map_err(|e| {
                invalid(
                    "import",
                    format!("published routes of group `{group}` in {stage} conflict: {e:?}"),
                )
            })?;
        built.insert((group, stage), table);
    }
    // routes of different groups that can receive the same request
    state.first_cross_group_conflict(&built)?;
    Ok(())
}

impl ControlPlane {
    /// The whole configuration as one document.
    pub async fn export(&self) -> ConfigExport {
        let state = self.state.lock().await;
        let mut doc = ConfigExport {
            format: EXPORT_FORMAT,
            exported_at: Timestamp::now(),
            backends: vec![],
            vpc_access: vec![],
            groups: vec![],
            apis: vec![],
            deployments: vec![],
            publications: vec![],
            apps: vec![],
            authorizations: vec![],
            policies: vec![],
            policy_bindings: vec![],
            domain_certificates: vec![],
        };
        for r in state.records() {
            match r.value {
                Entity::Backend(x) => doc.backends.push(x),
                Entity::VpcAccess(x) => doc.vpc_access.push(x),
                Entity::Group(x) => doc.groups.push(x),
                Entity::Api(x) => doc.apis.push(x),
                Entity::Deployment(x) => doc.deployments.push(x),
                Entity::Publication(x) => doc.publications.push(x),
                Entity::App(x) => doc.apps.push(x),
                Entity::Authorization(x) => doc.authorizations.push(x),
                Entity::Policy(x) => doc.policies.push(x),
                Entity::PolicyBinding(x) => doc.policy_bindings.push(x),
                Entity::DomainCertificate(x) => doc.domain_certificates.push(x),
            }
        }
        doc
    }

    /// Replaces the whole configuration with `doc`, all or nothing: the document is checked as
    /// a whole (every record valid, references resolvable, names unique, publications servable,
    /// no route conflicts) and written in one atomic commit.
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`] describing the first problem (nothing changes),
    /// [`ControlError::RouteConflict`] when published APIs of two groups that can receive the
    /// same request (a shared domain, or a group without domains) would match the same
    /// request, or [`ControlError::Store`].
    pub async fn import(&self, doc: ConfigExport) -> Result<ImportSummary, ControlError> {
        if doc.format != EXPORT_FORMAT {
            return Err(invalid(
                "format",
                format!(
                    "unsupported export format {} (expected {EXPORT_FORMAT})",
                    doc.format
                ),
            ));
        }
        let entities = doc.into_entities();
        check(&entities)?;
        let mut state = self.state.lock().await;
        let current: HashMap<Key, u64> = state
            .records()
            .into_iter()
            .map(|r| (r.value.key(), r.version))
            .collect();
        let incoming: BTreeMap<Key, Entity> = entities.into_iter().map(|e| (e.key(), e)).collect();
        let mut writes = Vec::new();
        let mut removed = 0;
        for (key, version) in &current {
            if !incoming.contains_key(key) {
                writes.push(Write::delete(key.clone(), Expect::Version(*version)));
                removed += 1;
            }
        }
        let records = incoming.len();
        for (key, e) in incoming {
            let expect = current
                .get(&key)
                .map_or(Expect::Absent, |v| Expect::Version(*v));
            writes.push(Write::put(e, expect));
        }
        if !writes.is_empty() {
            self.store.commit(writes).await?;
        }
        self.resync(&mut state).await?;
        Ok(ImportSummary { records, removed })
    }
}
